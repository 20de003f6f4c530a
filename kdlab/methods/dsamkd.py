"""DSAMKD — Zhang et al., arXiv 2501.07101 v1 (abstract only). Loss: :class:`kdlab.models.losses.DSAMKDLoss`,
**kdlab's interpretation** (see its docstring and docs/methods.md).

All five neck outputs, one ``DSAMKDLoss`` per level: scale-aware (max-pool pyramid) dual masked feature
distillation, plus masked logits distillation on the dense head's classification outputs of the same level.
The algorithm is ``FpnHeadTeacherDistill``: the teacher also runs the recorded head's forward.

``logits``: ``'auto'`` (default) distils logits when student and teacher are both one-stage (``bbox_head``)
or both two-stage (``rpn_head`` objectness) and skips them otherwise (heads of different kinds have no common
logits); ``True`` forces them (the loss raises if channels differ), ``False`` distils features only.
``logit_head`` overrides the recorded head's name.
"""
from __future__ import annotations

from kdlab.errors import KdlabError
import kdlab.models  # noqa: F401  (registers the mmrazor components this method uses)
from kdlab.methods import register_method
from kdlab.methods._common import detector_kind, level_distiller
from kdlab.methods.amd import MASKED_DEFAULTS, masked_loss


@register_method('dsamkd', num_levels=5, algorithm='FpnHeadTeacherDistill',
                 defaults=dict(MASKED_DEFAULTS, channel_mask_ratio=None, scales=(1, 2, 4), logits='auto',
                               logit_head='auto', logit_weight=1.0, logit_mask_ratio=0.5,
                               logit_temperature=1.0))
def dsamkd(pairs, *, channel_mask_ratio, scales, logits, logit_head, logit_weight,
           logit_mask_ratio, logit_temperature, **params):
    """DSAMKD (kdlab's interpretation, ``DSAMKDLoss``): scale-aware dual masking on all five levels + masked
    logits distillation guided by the teacher-student logits difference."""
    s_kind = detector_kind(pairs, params.get('student_kind', 'auto'))
    t_kind = detector_kind(pairs, 'auto', student=False)
    if logits == 'auto':
        logits = s_kind == t_kind
    elif logits and s_kind != t_kind and logit_head == 'auto':
        raise KdlabError(f'DSAMKD logits: a {s_kind.replace("_", "-")} student and a '
                         f'{t_kind.replace("_", "-")} teacher have no common dense head',
                         "use logits=False (features only), or name logit_head")
    head = logit_head if logit_head != 'auto' else ('rpn_head' if s_kind == 'two_stage' else 'bbox_head')
    loss = masked_loss('DSAMKDLoss', pairs, channel_mask_ratio=channel_mask_ratio, scales=tuple(scales),
                       logit_weight=logit_weight, logit_mask_ratio=logit_mask_ratio,
                       logit_temperature=logit_temperature, **params)
    if not logits:
        return level_distiller(pairs, loss, prefix='dsamkd')
    recorder = dict(logits=dict(type='ModuleOutputs', source=head))
    return level_distiller(
        pairs, loss, prefix='dsamkd', student_recorders=recorder, teacher_recorders=recorder,
        inputs=lambda i, p: dict(
            logits_S=dict(from_student=True, recorder='logits', data_idx=0, connector_idx=p.student_index),
            logits_T=dict(from_student=False, recorder='logits', data_idx=0, connector_idx=p.teacher_index)))
