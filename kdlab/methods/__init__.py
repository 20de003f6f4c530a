"""Distillation methods as mmrazor configs: a method turns (student, teacher, level pairs, params) into the
``model`` of an mmrazor algorithm. The losses themselves are mmrazor-registered components
(:mod:`kdlab.models`); a method here only says which ones, on which levels, with which weights.

``METHODS`` maps a method id (the ids of the paper registry: ``pkd``, ``dcsf_kd``, ...) to its builder.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Optional, Sequence, Tuple

from kdlab.core.levels import LevelPair, levels_of, pair_levels
from kdlab.errors import UnknownNameError


@dataclass
class Method:
    name: str
    build: Callable[..., dict]       # (pairs, **params) -> distiller dict
    defaults: Dict[str, object] = field(default_factory=dict)
    algorithm: str = 'FpnTeacherDistill'
    doc: str = ''
    num_levels: int = 4              # most level pairs handed to ``build`` (official PKD configs: 4)
    configure: Optional[Callable[..., None]] = None   # (cfg, **params): edits the rest of the config
    inherit: Tuple[str, ...] = ()    # modules the student inherits from the teacher by default
    #: a two-stage student distils only its first N neck outputs, those of an FPN conv (P2-P5; P6 is a
    #: max-pool): MGD's and FGD's released two-stage configs (neck.fpn_convs.0-3); None: no such limit
    two_stage_levels: Optional[int] = None
    #: what the method's losses compare: 'features' (neck or backbone maps; mini v2's loss-scale rule carries their
    #: weight to mini shapes) or 'predictions' (head outputs, normalised per sample like the detection losses,
    #: so they keep their balance across scales by construction: factor 1, kdlab.methods.loss_scale)
    compares: str = 'features'


METHODS: Dict[str, Method] = {}
#: how a distilled student's initial weights are drawn (distill_config's ``student_init``)
STUDENT_INITS = ('baseline', 'algorithm')


def register_method(name: str, *, defaults: Optional[dict] = None, algorithm: str = 'FpnTeacherDistill',
                    num_levels: int = 4, configure: Optional[Callable[..., None]] = None,
                    inherit: Sequence[str] = (), two_stage_levels: Optional[int] = None,
                    compares: str = 'features'):
    if compares not in ('features', 'predictions'):
        raise ValueError(f"compares={compares!r}: 'features' or 'predictions'")

    def deco(fn):
        METHODS[name] = Method(name, fn, dict(defaults or {}), algorithm, (fn.__doc__ or '').strip(),
                               num_levels, configure, tuple(inherit), two_stage_levels, compares)
        return fn
    return deco


def get_method(name: str) -> Method:
    _load_builtin()
    if name not in METHODS:
        raise UnknownNameError('method', name, METHODS)
    return METHODS[name]


def _load_builtin() -> None:
    from kdlab.methods import pkd  # noqa: F401  (registers itself)
    from kdlab.methods import icd  # noqa: F401
    from kdlab.methods import crosskd  # noqa: F401
    from kdlab.methods import dcsf_kd, mgd, fgd, amd, dmkd, dfmsd, dsamkd  # noqa: F401  (feature methods)


def fpn_distiller(pairs: List[LevelPair], loss: dict, *, prefix: str,
                  extra_inputs: Optional[Dict[str, dict]] = None) -> dict:
    """A ``ConfigurableDistiller`` with one ``loss`` per level pair on the necks' outputs.

    ``loss_{prefix}_{level}`` compares student output ``pair.student_index`` with teacher output
    ``pair.teacher_index`` (``preds_S`` / ``preds_T``, mmrazor's convention).
    """
    losses, mappings = {}, {}
    for p in pairs:
        name = f'loss_{prefix}_{p.name.replace("<-", "_from_")}'
        losses[name] = copy.deepcopy(loss)
        mappings[name] = dict(
            preds_S=dict(from_student=True, recorder='fpn', data_idx=p.student_index),
            preds_T=dict(from_student=False, recorder='fpn', data_idx=p.teacher_index),
            **copy.deepcopy(extra_inputs or {}))
    return dict(type='ConfigurableDistiller',
                student_recorders=dict(fpn=dict(type='ModuleOutputs', source='neck')),
                teacher_recorders=dict(fpn=dict(type='ModuleOutputs', source='neck')),
                distill_losses=losses, loss_forward_mappings=mappings)


def detector_family(name: str):
    from kdlab.zoo import parse_detector
    return parse_detector(name)[0]


def distill_config(student_cfg, teacher_cfg, *, student: str, teacher: str, teacher_ckpt: Optional[str],
                   method: str = 'pkd', pairing: Optional[str] = None, teacher_run: Optional[str] = None,
                   inherit: Optional[Sequence[str]] = None, teacher_input: str = 'student',
                   loss_scale: Optional[float] = None, student_init: Optional[str] = None, **params):
    """The mmengine config of ``student`` distilled from ``teacher`` with ``method``.

    Data, schedule and runtime come from ``student_cfg`` (the baseline the distilled student is compared
    with); ``model`` becomes the mmrazor algorithm wrapping both detectors. Each of the method's parameters is
    the one given in ``params``, else the official value for the pair (:mod:`kdlab.methods.official`), else the
    method's default.

    ``inherit`` names the student modules initialised from the teacher's (e.g. ``('neck', 'bbox_head')``,
    see :mod:`kdlab.models.inherit`); None: the method's default for a teacher of the student's own detector
    family (modules the pair cannot share are dropped), none across families; ``()``: none.

    ``pairing``: how neck outputs are paired (:mod:`kdlab.core.levels`); None: :func:`kdlab.core.levels.default_pairing`
    for the method and pair, as the planner's runs and the loss-scale rule's measurement use it.

    ``teacher_input``: ``'student'`` (default, the released code: the teacher is fed the student's preprocessed
    batch) or ``'own'`` (each model its own normalisation; :mod:`kdlab.methods.preprocessing`).

    ``loss_scale``: every distillation loss multiplied by this factor (:mod:`kdlab.models.loss_scale`); None:
    the mini-v2 protocol's loss-scale rule for the pair (:func:`kdlab.methods.loss_scale.rule_factor`) when
    ``student_cfg`` is a mini-v2 config, else 1 (no factor, the config as the method defines it).

    ``student_init``: ``'baseline'`` (the student starts from exactly its baseline run's initial weights,
    :class:`kdlab.engine.hooks.StudentInitHook`; the difference to the baseline is then distillation's alone) or
    ``'algorithm'`` (mmrazor's order: the student's random layers are drawn after the teacher was built, as the
    released code runs). None: ``'baseline'`` for a mini-v2 student, else ``'algorithm'`` (the stored mini-v1
    runs were made so; the full scale runs as the authors' code does).
    """
    m = get_method(method)
    unknown = set(params) - set(m.defaults)
    if unknown:
        raise UnknownNameError(f'parameter of method {method!r}', sorted(unknown)[0], m.defaults)
    from kdlab.methods.official import resolve
    resolved, _ = resolve(method, student, teacher, m.defaults, params)   # given > official for the pair > default
    student_levels = levels_of(student)
    if m.two_stage_levels and detector_family(student).kind == 'two_stage':
        student_levels = student_levels[:m.two_stage_levels]
    if pairing is None:
        from kdlab.core.levels import default_pairing
        pairing = default_pairing(method, student, teacher)
    pairs = pair_levels(student_levels, levels_of(teacher), pairing=pairing, num_levels=m.num_levels)
    cfg = copy.deepcopy(student_cfg)
    architecture = dict(_scope_='mmdet', **student_cfg.model.to_dict())
    teacher_model = dict(_scope_='mmdet', **teacher_cfg.model.to_dict())
    distiller = m.build(pairs, **resolved)
    if resolved.get('record', 'neck') != 'neck':     # where each neck level is hooked (MGD, FGD)
        from kdlab.methods._common import record_neck_at
        distiller = record_neck_at(distiller, architecture.get('neck'), teacher_model.get('neck'),
                                   resolved['record'])
    cfg.model = dict(_scope_='mmrazor', type=m.algorithm, architecture=architecture, teacher=teacher_model,
                     teacher_ckpt=teacher_ckpt, distiller=distiller)
    cfg.val_cfg = dict(type='mmrazor.SingleTeacherDistillValLoop')
    cfg.find_unused_parameters = True
    cfg.teacher_run = teacher_run
    explicit = inherit is not None
    if inherit is None and detector_family(student).name != detector_family(teacher).name:
        # The released configs inherit between detectors of one family only (MGD's Cascade -> Faster R-CNN
        # config does not): across families a module of the same type holds other levels (a Swin Mask R-CNN
        # neck's P2-P4 convs would land in a RetinaNet's P3-P5).
        inherit = ()
    inherit = tuple(m.inherit if inherit is None else inherit)
    cfg.kdlab_method = dict(method=method, pairing=pairing, params=resolved,
                            student=student, teacher=teacher)
    from kdlab.methods.preprocessing import teacher_input_hook
    hook, note = teacher_input_hook(architecture, teacher_model, teacher_input)
    if note:
        cfg.kdlab_method['teacher_input'] = note
    if hook:
        cfg.custom_hooks = [h for h in (cfg.get('custom_hooks') or []) if h.get('type') != hook['type']] + [hook]
        from kdlab.methods._common import add_custom_imports
        add_custom_imports(cfg)      # the hook is kdlab's (kdlab.models)
    if m.configure is not None:
        m.configure(cfg, **cfg.kdlab_method['params'])
    v2 = student_cfg.get('kdlab_protocol') == 'mini-v2'
    student_init = student_init or ('baseline' if v2 else 'algorithm')
    if student_init not in STUDENT_INITS:
        raise UnknownNameError('student initialisation', student_init, STUDENT_INITS)
    if student_init == 'baseline':
        cfg.kdlab_student_init = 'baseline'      # read by kdlab.engine.runner (StudentInitHook); in the run key
    source = 'given'
    if loss_scale is None and v2:
        from kdlab.methods.loss_scale import TABLE, rule_factor
        loss_scale = rule_factor(method, student, teacher, pairing=pairing)
        source = f'the mini-v2 loss-scale rule, {TABLE.name}'
    if loss_scale is not None and float(loss_scale) != 1.0:
        cfg.kdlab_method['loss_scale'] = float(loss_scale)
        cfg.custom_hooks = [h for h in (cfg.get('custom_hooks') or []) if h.get('type') != 'DistillLossScaleHook'] + [
            dict(type='DistillLossScaleHook', scale=float(loss_scale), source=source)]
        from kdlab.methods._common import add_custom_imports
        add_custom_imports(cfg)
    if inherit:
        from kdlab.models.inherit import add_inherit_hook
        inherit = add_inherit_hook(cfg, inherit, strict=explicit)   # a method's default skips what cannot match
        if inherit:
            cfg.kdlab_method['inherit'] = list(inherit)
    return cfg
