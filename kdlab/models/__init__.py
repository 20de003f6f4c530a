"""kdlab's mmrazor components: ``import kdlab.models`` registers every one of them.

Each method of :mod:`kdlab.methods` is made of these plus mmrazor's own (``PKDLoss``, ``MGDLoss``,
``MGDConnector``, ``FpnTeacherDistill``, ``ConfigurableDistiller``); a plain mmrazor config can use them once
this package is imported (``custom_imports = dict(imports=['kdlab.models'])``).

* losses (``mmrazor.registry.MODELS``): ``DCSFKDLoss``, ``FGDLoss``, ``AMDLoss``, ``DMKDLoss``, ``DFMSDLoss``,
  ``DSAMKDLoss``;
* recorder (``mmrazor.registry.TASK_UTILS``): ``DataSamplesRecorder`` (config type ``'DataSamples'``) — hands
  the batch's ``data_samples`` (GT boxes, image shapes) to a loss;
* distillers: ``AutoChannelDistiller`` (fills in the channels of losses and connectors from the necks),
  ``DFMSDDistiller`` (carries DFMSD's masking-enhancement settings);
* algorithms: ``FpnHeadTeacherDistill`` (teacher runs backbone, neck and the dense heads a recorder needs),
  ``DFMSDDistill`` (masking enhancement: a second, augmented pass of teacher and student);
* hooks (``mmengine.registry.HOOKS``): ``InheritTeacherHook`` (the student starts from the teacher's neck and
  heads), ``TeacherOwnInputHook`` (the teacher is fed its own preprocessing), ``DistillLossScaleHook``
  (every distillation loss times the mini scale's loss-scale factor).
"""
import kdlab  # noqa: F401  (applies kdlab.compat: mmrazor imports on torch 2.x)

from kdlab.models import algorithms, distillers, losses, recorders  # noqa: F401,E402

__all__ = ['algorithms', 'distillers', 'losses', 'recorders']
from kdlab.models import crosskd, icd, inherit, loss_scale, optim, teacher_input  # noqa: F401,E402  (CrossKD, ICD, inheriting, the loss-scale rule, split optim, teacher input)

__all__ += ['crosskd', 'icd', 'inherit', 'loss_scale', 'optim', 'teacher_input']
