"""ICD — Kang et al., "Instance-Conditional Knowledge Distillation for Object Detection", NeurIPS 2021
(arXiv 2110.12724; code github.com/megvii-research/ICD). Models: :mod:`kdlab.models.icd`,
:class:`kdlab.models.losses.icd.ICDLoss`, :class:`kdlab.models.icd.ICDDistill`.

``L = L_det + L_aux + lambda * L_distill`` with ``lambda`` = 8 (one-stage) or 3 (two-stage) — ``loss_weight``
(None: chosen from the student's family). Everything ICD adds is trained by AdamW (``decoder_lr``,
``decoder_weight_decay``) with a gradient-norm clip (``decoder_clip``) and a cosine schedule over the run;
the student keeps its own optimizer and schedule, with its gradients clipped element-wise at ``student_clip``
(released distillation configs: ``SOLVER.CLIP_GRADIENTS.ENABLED: True`` with Detectron2's defaults, type
``value``, 1.0; ``student_clip=None`` keeps the student's own clip). The distillation loss does not reach the
student for the first ``warmup_iters`` iterations. By default the student inherits the teacher's neck and
heads. Queries per image are capped at ``max_instances`` (``MAX_LABELS``: 300 by default, 100 in the R-CNN
configs: :mod:`kdlab.methods.official`).
"""
from __future__ import annotations

from typing import Optional

from kdlab.errors import ChannelMismatchError
from kdlab.methods import register_method
from kdlab.methods._common import add_custom_imports

#: Modules the student inherits by default (released code: PRELOAD_FPN, PRELOAD_HEAD); the same tuple as
#: ``kdlab.models.inherit.DEFAULT_INHERIT`` (kept literal here so that building configs stays light).
ICD_INHERIT = ('neck', 'bbox_head', 'rpn_head', 'roi_head')

#: lambda of the paper per detector kind.
LOSS_WEIGHT = {'one_stage': 8.0, 'two_stage': 3.0}


def decoder_schedule(cfg) -> list:
    """A cosine decay to 0 over the whole run for the decoder's optimizer (released code: WarmupCosineLR
    over MAX_ITER; its 10-iteration warm-up has factor 1, i.e. none)."""
    train_cfg = cfg.get('train_cfg') or {}
    if 'max_iters' in train_cfg:
        n = int(train_cfg['max_iters'])
        return [dict(type='CosineAnnealingLR', T_max=n, eta_min=0.0, by_epoch=False, begin=0, end=n)]
    n = int(train_cfg.get('max_epochs', 12))
    return [dict(type='CosineAnnealingLR', T_max=n, eta_min=0.0, by_epoch=True, begin=0, end=n,
                 convert_to_iter_based=True)]


def icd_optim_wrapper(student_optim_wrapper: dict, *, lr: float, weight_decay: float, clip: float,
                      student_clip: Optional[float] = None) -> dict:
    """The student's optimizer for the detector (its gradients clipped element-wise at ``student_clip``
    when given, mmengine's ``clip_grad=dict(type='value')`` as Detectron2's ``CLIP_TYPE: value``), AdamW with
    a norm clip for ICD's parts (``distiller.*``)."""
    student = dict(student_optim_wrapper)
    if student_clip is not None:
        student['clip_grad'] = dict(type='value', clip_value=student_clip)
    return dict(constructor='SplitOptimWrapperConstructor',
                student=student,
                decoder=dict(type='OptimWrapper', optimizer=dict(type='AdamW', lr=lr, weight_decay=weight_decay),
                             clip_grad=dict(max_norm=clip, norm_type=2), prefixes=['distiller.']))


def configure_icd(cfg, *, loss_weight, decoder_lr, decoder_weight_decay, decoder_clip, student_clip, **_) -> None:
    """lambda from the student's family; the two optimizers and their schedules; kdlab's imports."""
    from kdlab.zoo import parse_detector
    if loss_weight is None:
        kind = parse_detector(cfg.kdlab_method['student'])[0].kind
        loss_weight = LOSS_WEIGHT[kind]
        cfg.model.distiller.loss_icd.loss_weight = loss_weight
        cfg.kdlab_method['params']['loss_weight'] = loss_weight
    cfg.optim_wrapper = icd_optim_wrapper(cfg.optim_wrapper.to_dict(), lr=decoder_lr,
                                          weight_decay=decoder_weight_decay, clip=decoder_clip,
                                          student_clip=student_clip)
    student_sched = cfg.get('param_scheduler')
    if hasattr(student_sched, 'to_dict'):
        student_sched = student_sched.to_dict()
    cfg.param_scheduler = dict(student=list(student_sched or []), decoder=decoder_schedule(cfg))
    add_custom_imports(cfg)


@register_method('icd', algorithm='ICDDistill', num_levels=5, configure=configure_icd, inherit=ICD_INHERIT,
                 defaults=dict(loss_weight=None, temperature=1.0, hidden_dims=256, num_heads=8, ffn_dims=1024,
                               neg_ratio=5.0, max_instances=300, jitter=0.3, fake_prior='online',
                               warmup_iters=1000, decoder_lr=1e-4, decoder_weight_decay=1e-4, decoder_clip=0.01,
                               student_clip=1.0))
def icd(pairs, *, loss_weight, temperature, hidden_dims, num_heads, ffn_dims, neg_ratio, max_instances, jitter,
        fake_prior, warmup_iters, decoder_lr, decoder_weight_decay, decoder_clip, student_clip):
    """ICD on all FPN levels (same strides in teacher and student), an ``ICDDistiller`` with ``ICDLoss``."""
    mismatched = [p.name for p in pairs if p.student_level != p.teacher_level]
    if mismatched:
        raise ChannelMismatchError(
            f'ICD attends over key positions shared by teacher and student, but the level pairs {mismatched} '
            'pair different strides', "use pairing='stride' (ICD pairs P3 with P3, ...)")
    return dict(type='ICDDistiller',
                student_indices=[p.student_index for p in pairs],
                teacher_indices=[p.teacher_index for p in pairs],
                loss_icd=dict(type='ICDLoss', loss_weight=loss_weight, temperature=temperature),
                hidden_dims=hidden_dims, num_heads=num_heads, ffn_dims=ffn_dims, neg_ratio=neg_ratio,
                max_instances=max_instances, jitter=jitter, fake_prior=fake_prior, warmup_iters=warmup_iters)
