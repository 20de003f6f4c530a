"""MGD — Yang et al., "Masked Generative Distillation", ECCV 2022. mmrazor 1.0.0 ships the reference code:
``MGDLoss`` + ``MGDConnector`` (random spatial mask, conv3x3-ReLU-conv3x3 generation, 1x1 align conv); kdlab
reuses both unchanged and only writes the config.

All five neck outputs (the official config's fpn0..fpn4); a two-stage student's four FPN-conv outputs,
P2-P5 (the released Cascade -> Faster R-CNN config: ``neck.fpn_convs.0-3``; P6 is a max-pool); per level the student feature goes through its own
``MGDConnector`` and ``MGDLoss`` compares the generated feature with the teacher's:
``L = alpha * sum((G(align(S) * M) - T)^2) / N``. Defaults by student kind (official configs): one-stage
alpha 2e-5, lambda 0.65; two-stage (Cascade -> Faster R-CNN) alpha 5e-7, lambda 0.45. Connector channels
are read from the necks (``AutoChannelDistiller``). MGD compares equal-size maps: a pairing that joins
different levels is refused (use ``pairing='stride'``). The official config initialises the student's neck
and head from the teacher ("inheriting"): kdlab's default too (``inherit``, kdlab.models.inherit); a
heterogeneous pair (different neck/head types) needs ``distill_config(..., inherit=())``.

Where a level is recorded (``record``): ``'fpn_convs'`` (default; the official configs' hook,
``neck.fpn_convs.i.conv``, before the GroupNorm of a GN neck such as RepPoints') or ``'neck'`` (the neck's
outputs, after it); the same tensors for a neck without norm layers (:func:`kdlab.core.levels.neck_output_source`).
"""
from __future__ import annotations

import kdlab.models  # noqa: F401  (registers the mmrazor components this method uses)
from kdlab.methods import register_method
from kdlab.models.inherit import DEFAULT_INHERIT
from kdlab.methods._common import by_kind, detector_kind, level_distiller, same_level_pairs


@register_method('mgd', num_levels=5, two_stage_levels=4, inherit=DEFAULT_INHERIT,
                 defaults=dict(alpha=None, lambda_mgd=None, student_kind='auto', record='fpn_convs'))
def mgd(pairs, *, alpha, lambda_mgd, student_kind, record):
    """MGD (mmrazor ``MGDLoss`` + ``MGDConnector``) on the neck outputs (two-stage: P2-P5); alpha/lambda by student kind."""
    same_level_pairs(pairs, 'MGD')
    kind = detector_kind(pairs, student_kind)
    alpha = by_kind(alpha, kind, 2e-5, 5e-7)
    lam = by_kind(lambda_mgd, kind, 0.65, 0.45)
    return level_distiller(
        pairs, dict(type='MGDLoss', alpha_mgd=alpha), prefix='mgd',
        connectors=lambda i, p: dict(type='MGDConnector', student_channels=None, teacher_channels=None,
                                     lambda_mgd=lam))
