"""DCSF-KD — Dai et al., AAAI 2025 (github.com/LinY-ct/DCSF-KD). Loss: :class:`kdlab.models.losses.DCSFKDLoss`.

Four neck outputs (as PKD), one ``DCSFKDLoss`` per level with ``loss_weight = alpha``.

Alpha — the paper and the released code disagree; both are supported, the paper is the default:

* ``alpha_source='paper'`` (default): the reproducibility card's "alpha = 2 for all two-stage models and
  alpha = 1 for single-stage models", read as the *student* detector (``student_kind``, auto from the neck).
  An explicit ``alpha`` replaces it (the registry rows carry the paper's value as ``alpha``).
* ``alpha_source='released'``: ``alpha_released_config`` (default 2: every released config but
  FCOS-X101 -> RetinaNet 1x, which uses 1 — :func:`dcsf_kd_alpha` knows the exception by name).
"""
from __future__ import annotations

from typing import Optional

from kdlab.errors import UnknownNameError
import kdlab.models  # noqa: F401  (registers the mmrazor components this method uses)
from kdlab.methods import fpn_distiller, register_method
from kdlab.methods._common import detector_kind

ALPHA_SOURCES = ('paper', 'released')
#: (teacher, student, schedule) pairs whose released config uses loss_weight 1 instead of 2.
RELEASED_ALPHA_ONE = {('fcos_x101', 'retinanet_r50', '1x')}


def dcsf_kd_alpha(student: str, teacher: Optional[str] = None, schedule: Optional[str] = None, *,
                  source: str = 'paper') -> float:
    """DCSF-KD's alpha for a zoo pair: ``'paper'`` 2 (two-stage student) / 1 (single-stage); ``'released'``
    2, or 1 for FCOS-X101 -> RetinaNet-R50 1x."""
    if source not in ALPHA_SOURCES:
        raise UnknownNameError('DCSF-KD alpha source', source, ALPHA_SOURCES)
    if source == 'released':
        return 1.0 if (teacher, student, schedule) in RELEASED_ALPHA_ONE else 2.0
    from kdlab.zoo import parse_detector
    family, _ = parse_detector(student)
    return 2.0 if family.kind == 'two_stage' else 1.0


def resolve_alpha(pairs, *, alpha, alpha_source, alpha_released_config, student_kind) -> float:
    if alpha_source not in ALPHA_SOURCES:
        raise UnknownNameError('DCSF-KD alpha source', alpha_source, ALPHA_SOURCES)
    if alpha_source == 'released':
        return float(alpha_released_config)
    if alpha is not None:
        return float(alpha)
    return 2.0 if detector_kind(pairs, student_kind) == 'two_stage' else 1.0


@register_method('dcsf_kd', defaults=dict(alpha=None, alpha_source='paper', alpha_released_config=2.0,
                                          student_kind='auto', weight_scale=9.0))
def dcsf_kd(pairs, *, alpha, alpha_source, alpha_released_config, student_kind, weight_scale):
    """DCSF-KD on the paired neck outputs (``DCSFKDLoss``, resize_stu=True); alpha from the paper by default
    (2 two-stage / 1 single-stage student), ``alpha_source='released'`` for the released configs' value."""
    a = resolve_alpha(pairs, alpha=alpha, alpha_source=alpha_source,
                      alpha_released_config=alpha_released_config, student_kind=student_kind)
    return fpn_distiller(pairs, dict(type='DCSFKDLoss', loss_weight=a, resize_stu=True,
                                     weight_scale=weight_scale), prefix='dcsf_kd')
