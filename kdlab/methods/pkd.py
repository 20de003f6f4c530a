"""PKD — Cao et al., "PKD: General Distillation Framework for Object Detectors via Pearson Correlation
Coefficient", NeurIPS 2022 (arXiv 2207.02039). Loss: mmrazor 1.0.0's ``PKDLoss`` (the reference code).

Per distilled FPN level, teacher and student maps are z-scored per channel over (N, H, W) and compared
with MSE / 2, i.e. ``(1/C) sum_c (1 - r_c)`` up to ``(M-1)/M``. The loss weight of a pair is its official
config's (:mod:`kdlab.methods.official`: 6 for Faster R-CNN and Swin -> RetinaNet / FCOS, 10 for RetinaNet
X101 -> R50, FCOS -> RetinaNet, RepPoints and GFL -> FCOS, 2 for FCOS -> FCOS and TOOD -> TOOD); 6, the
weight of mmrazor's base config, for a pair no official config covers.
"""
from kdlab.methods import fpn_distiller, register_method


@register_method('pkd', defaults=dict(loss_weight=6.0))
def pkd(pairs, *, loss_weight):
    """PKD on the paired neck outputs, mmrazor's ``PKDLoss`` (resize_stu=True)."""
    return fpn_distiller(pairs, dict(type='PKDLoss', loss_weight=loss_weight, resize_stu=True), prefix='pkd')
