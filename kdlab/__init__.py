"""kdlab: a reproducibility workbench for knowledge distillation in object detection.

Importing kdlab applies the torch 2.13 compatibility fixes for the OpenMMLab stack (:mod:`kdlab.compat`).
"""
from kdlab import compat as _compat

_compat.apply()

__version__ = '0.1.0'
