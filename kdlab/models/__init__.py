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


def build_model(model_cfg, *, init: bool = True, scope: str = 'mmdet'):
    """The model of a ``model`` config (an mmdet detector, or an mmrazor algorithm whose parts are mmdet's), built
    as a runner builds it (a ConfigDict under mmdet's default scope: two-stage detectors read ``train_cfg.rpn``
    by attribute; ``scope``), its weights at their initialisation (``init``; as a run's before it trains). Used where kdlab
    needs a model outside a run: checkpoint checks, the loss-scale rule, the full-scale dry run."""
    import copy
    from mmengine.config import ConfigDict
    from mmengine.registry import DefaultScope
    from mmrazor.registry import MODELS
    cfg = dict(model_cfg.to_dict() if hasattr(model_cfg, 'to_dict') else model_cfg)
    if cfg.get('_scope_') == scope:
        cfg.pop('_scope_')               # e.g. the teacher of a distillation config: built in its scope below
    with DefaultScope.overwrite_default_scope(scope):
        model = MODELS.build(ConfigDict(copy.deepcopy(cfg)))
    if init:
        model.init_weights()
    return model
