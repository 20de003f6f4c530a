"""DFMSD — Zhang et al., arXiv 2407.13147 (2024). No public code. Loss: :class:`kdlab.models.losses.DFMSDLoss`;
algorithm: :class:`kdlab.models.algorithms.DFMSDDistill`; stage-wise adaptation learning (SAL): :func:`sal_stages`.

One DFMSD *stage* (``distill_config(..., method='dfmsd')``): all five neck outputs, one ``DFMSDLoss`` per level
(DMKD's dual masked reconstruction, Eq. 7, weight ``alpha``), semantic feature alignment on ``sfa_levels``
(Eq. 5), and — when ``me`` is on — masking enhancement: ``DFMSDDistill`` passes an Eq. (4)-augmented copy of
the batch through the teacher and the student and the loss adds Eq. (8) (weight ``beta``) on it.

SAL (section 3.3): an ordered chain of teachers, weaker first; each stage is one single-teacher distillation
whose student starts from the previous stage's student; ME on the stages ``me`` names (default: the last
only, Table 8's best); in a stage after the first, ME's candidate boxes come from the previous stage's teacher
(section 3.4, Fig. 7). :func:`sal_stages` turns a chain into its ordered stage configs; the run engine
executes them, replacing each stage's checkpoint placeholder (:func:`stage_placeholder`) with the checkpoint
the previous stage produced (:func:`resolve_stage_checkpoints`).

Parameter names follow the paper registry's switches (``papers/dfmsd/paper.yaml``): ``sal``, ``me``, ``sfa``,
``sfa_levels``, ``adversarial``.
"""
from __future__ import annotations

import copy
import dataclasses
from typing import Dict, List, Mapping, Optional, Sequence, Union

from kdlab.errors import KdlabError
import kdlab.models  # noqa: F401  (registers the mmrazor components this method uses)
from kdlab.methods import distill_config, register_method
from kdlab.methods._common import by_kind, detector_kind, level_distiller

SFA_DEFAULT = ('P1', 'P2', 'P3')   # Table 9's best row

#: SAL's assistant teacher, by the final teacher's backbone: the paper's chains put the same detector with the
#: next weaker backbone first (Tables 8-9 and 11: Cascade Mask R-CNN and RetinaNet R101 -> X101; Table 10:
#: Swin-T -> Swin-S). Used where a pair names one teacher (the leaderboard), not where a row names its chain.
SAL_ASSISTANT = {'x101': 'r101', 'swin_s': 'swin_t'}


def sal_chain(teacher: str) -> List[str]:
    """The SAL chain DFMSD's paper would distil ``teacher`` (a zoo name) with: its assistant
    (:data:`SAL_ASSISTANT`, same detector) first, if the zoo has it; else the teacher alone."""
    from kdlab.zoo import list_detectors
    for full, short in SAL_ASSISTANT.items():
        if teacher.endswith('_' + full):
            assistant = teacher[:-len(full)] + short
            if assistant in list_detectors():
                return [assistant, teacher]
    return [teacher]


def sfa_indices(sfa_levels: Sequence[Union[str, int]], num_pairs: int) -> List[int]:
    """Positions in the distilled pyramid of the SFA levels: the paper's ``'P1'`` is the first (finest)
    distilled level (registry note "FPN level names"), ``'Pk'`` the k-th; integers are positions already."""
    out = []
    for lv in sfa_levels:
        if isinstance(lv, str):
            if not (lv.upper().startswith('P') and lv[1:].isdigit() and int(lv[1:]) >= 1):
                raise KdlabError(f'unknown SFA level {lv!r}', "name levels as the paper does: 'P1', 'P2', ...")
            i = int(lv[1:]) - 1
        else:
            i = int(lv)
        if not 0 <= i < num_pairs:
            raise KdlabError(f'SFA level {lv!r} is not among the {num_pairs} distilled levels',
                             f"use 'P1'..'P{num_pairs}'")
        out.append(i)
    return sorted(set(out))


@register_method('dfmsd', num_levels=5, algorithm='DFMSDDistill', defaults=dict(
    alpha=5.0e-5, beta=2.5e-5, mask_ratio=None, channel_mask_ratio=None, temperature=0.5, mask_mode='top',
    se_reduction=16, sfa=True, sfa_levels=SFA_DEFAULT, sfa_weight=1.0, enh_normalize='batch',
    me=True, me_boxes='teacher', me_threshold=0.5, noise_sigma=15.0, noise_prob=0.5, crop_scale=(0.7, 1.0),
    box_score_thr=0.3, adversarial=True, adv_eps=2.0, student_kind='auto', sal=True))
def dfmsd(pairs, *, alpha, beta, mask_ratio, channel_mask_ratio, temperature, mask_mode, se_reduction, sfa,
          sfa_levels, sfa_weight, enh_normalize, me, me_boxes, me_threshold, noise_sigma, noise_prob, crop_scale,
          box_score_thr, adversarial, adv_eps, student_kind, sal):
    """One DFMSD stage: ``DFMSDLoss`` on all five levels (Eq. 7 + SFA on ``sfa_levels``), and with ``me`` the
    masking enhancement (Eq. 4, 8) through ``DFMSDDistill``; ``me_boxes``: 'teacher' | 'box_teacher' | 'gt'.

    ``me`` also takes the registry's ``'last'`` (a single stage is the last one: on). ``sal`` is a property of
    the chain (:func:`sal_stages`) and is accepted here only so that the registry's switches pass through."""
    if me == 'last':
        me = True
    elif not isinstance(me, bool):
        raise KdlabError(f'one DFMSD stage takes me=True/False (or \'last\'), got {me!r}',
                         'for one switch per stage use kdlab.methods.dfmsd.sal_stages')
    kind = detector_kind(pairs, student_kind)
    on = set(sfa_indices(sfa_levels, len(pairs))) if sfa else set()
    loss = dict(type='DFMSDLoss', student_channels=None, teacher_channels=None, alpha=alpha, beta=beta,
                mask_ratio=by_kind(mask_ratio, kind, 0.65, 0.45), channel_mask_ratio=channel_mask_ratio,
                temperature=temperature, mask_mode=mask_mode, se_reduction=se_reduction, sfa_weight=sfa_weight,
                enh_normalize=enh_normalize)
    enhance = None
    if me:
        enhance = dict(threshold=me_threshold, noise_sigma=noise_sigma, noise_prob=noise_prob,
                       crop_scale=tuple(crop_scale), boxes=me_boxes, box_score_thr=box_score_thr,
                       adversarial=adversarial, adv_eps=adv_eps)

    def enhanced_inputs(i, p):
        if not me:
            return {}
        return dict(preds_S_enh=dict(from_student=True, recorder='fpn', record_idx=1, data_idx=p.student_index),
                    preds_T_enh=dict(from_student=False, recorder='fpn', record_idx=1, data_idx=p.teacher_index))

    return level_distiller(pairs, loss, prefix='dfmsd', distiller='DFMSDDistiller',
                           per_level=lambda i, p: dict(sfa=i in on), inputs=enhanced_inputs, enhance=enhance)


# ------------------------------------------------------------------------------------------------- SAL
def stage_placeholder(index: int) -> str:
    """The placeholder standing for the checkpoint that stage ``index`` produces (its distilled student)."""
    return f'<kdlab:dfmsd-stage{index}-checkpoint>'


@dataclasses.dataclass
class SALStage:
    """One stage of a SAL chain: which teacher, whether ME is on, where the student starts, and the config."""

    index: int
    teacher: str
    teacher_ckpt: Optional[str]
    me: bool
    init_from: Optional[str]      # placeholder of the previous stage's checkpoint (None for the first stage)
    cfg: object                   # mmengine Config of the stage


def me_per_stage(me, num_stages: int) -> List[bool]:
    """The registry's ``me`` switch per stage: ``'last'``, one bool for all, or one bool per stage."""
    if me == 'last':
        return [i == num_stages - 1 for i in range(num_stages)]
    if isinstance(me, bool):
        return [me] * num_stages
    me = list(me)
    if len(me) != num_stages or not all(isinstance(m, bool) for m in me):
        raise KdlabError(f'me={me!r} does not give one bool per stage ({num_stages} stages)',
                         "use 'last', true/false, or a list with one bool per teacher")
    return me


def sal_stages(student_cfg, teacher_cfgs: Sequence, *, student: str, teachers: Sequence[str],
               teacher_ckpts: Optional[Sequence[Optional[str]]] = None, sal: bool = True, me='last',
               pairing: Optional[str] = None, **params) -> List[SALStage]:
    """The ordered stage configs of a DFMSD chain (section 3.3), weaker teacher first.

    Stage ``k`` distils ``student`` from ``teachers[k]`` with :func:`dfmsd` (``params`` as its parameters).
    For ``k > 0`` the student starts from stage ``k-1``'s result: ``model.architecture.init_cfg`` is a
    ``Pretrained`` init from :func:`stage_placeholder` ``(k-1)`` with prefix ``'architecture.'`` (the stage
    checkpoint is a whole distillation algorithm: loading it with ``load_from`` would also overwrite the new
    stage's teacher with the old one, so kdlab loads only the student's weights), and ``load_from`` stays None.
    ME's candidate boxes come from the previous stage's teacher (``model.box_teacher``), in the first stage
    from the stage's own teacher (the paper is silent there). ``sal=False``: one stage, the last teacher
    (registry note "SAL off").

    ``pairing`` (:mod:`kdlab.core.levels`): None (default) pairs each stage's neck outputs as that stage's
    teacher-student pair is paired on its own (:func:`~kdlab.core.levels.default_pairing`: by stride where a
    Cascade R-CNN stage (P2-P6) teaches a RetinaNet (P3-P7), by index where the pyramids agree), so that a stage
    of a chain distils as the same pair distils alone and the loss-scale rule's factor for that pair applies
    (DFMSD Table 7, Cascade R101 -> RetinaNet-X101). The paper does not say how a chain of unlike pyramids pairs
    and its code is not public (registry note "chain pairing"); give ``'index'`` or ``'stride'`` to pair every
    stage alike.
    """
    teachers, teacher_cfgs = list(teachers), list(teacher_cfgs)
    teacher_ckpts = list(teacher_ckpts) if teacher_ckpts is not None else [None] * len(teachers)
    if not teachers or len(teacher_cfgs) != len(teachers) or len(teacher_ckpts) != len(teachers):
        raise KdlabError(f'a SAL chain needs one config and one checkpoint per teacher (got {len(teachers)} '
                         f'teachers, {len(teacher_cfgs)} configs, {len(teacher_ckpts)} checkpoints)')
    if not sal:
        me_flags = me_per_stage(me, len(teachers))
        teachers, teacher_cfgs, teacher_ckpts = teachers[-1:], teacher_cfgs[-1:], teacher_ckpts[-1:]
        me_flags = me_flags[-1:]
    else:
        me_flags = me_per_stage(me, len(teachers))
    if 'me_boxes' in params:
        raise KdlabError('sal_stages sets me_boxes per stage (previous teacher, or the first stage\'s own)',
                         'leave me_boxes out; choose the stages with me=')
    stages = []
    for k, (name, t_cfg, ckpt, me_k) in enumerate(zip(teachers, teacher_cfgs, teacher_ckpts, me_flags)):
        boxes = 'box_teacher' if (me_k and k > 0) else 'teacher'
        cfg = distill_config(student_cfg, t_cfg, student=student, teacher=name, teacher_ckpt=ckpt,
                             method='dfmsd', pairing=pairing, me=me_k, me_boxes=boxes, **params)
        init_from = stage_placeholder(k - 1) if k > 0 else None
        if init_from is not None:
            cfg.model['architecture']['init_cfg'] = dict(type='Pretrained', checkpoint=init_from,
                                                         prefix='architecture.')
        if me_k and k > 0:
            cfg.model['box_teacher'] = dict(_scope_='mmdet', **teacher_cfgs[k - 1].model.to_dict())
            cfg.model['box_teacher_ckpt'] = teacher_ckpts[k - 1]
        cfg.load_from = None
        cfg.kdlab_stage = dict(index=k, num_stages=len(teachers), teacher=name, me=me_k, init_from=init_from,
                               chain=list(teachers))
        stages.append(SALStage(k, name, ckpt, me_k, init_from, cfg))
    return stages


def resolve_stage_checkpoints(cfg, checkpoints: Mapping[int, str]):
    """A copy of ``cfg`` with every stage placeholder replaced by ``checkpoints[index]``; raises if one is left."""
    cfg = copy.deepcopy(cfg)
    subs: Dict[str, str] = {stage_placeholder(i): str(p) for i, p in checkpoints.items()}

    def walk(node):
        if isinstance(node, dict):
            for k in list(node.keys()):
                node[k] = walk(node[k])
            return node
        if isinstance(node, list):
            return [walk(v) for v in node]
        if isinstance(node, str) and node.startswith('<kdlab:dfmsd-stage'):
            if node not in subs:
                raise KdlabError(f'no checkpoint given for {node}', 'run the earlier stage first and pass its '
                                 'checkpoint in checkpoints={index: path}')
            return subs[node]
        return node

    init = cfg.model['architecture'].get('init_cfg')
    if init is not None:
        cfg.model['architecture']['init_cfg'] = walk(dict(init))
    if cfg.get('kdlab_stage', {}).get('init_from'):
        cfg.kdlab_stage['init_from'] = walk([cfg.kdlab_stage['init_from']])[0]
    return cfg
