"""AMD — Yang et al., IJCNN 2023. No public code; loss: :class:`kdlab.models.losses.AMDLoss` (kdlab's reading).

All five neck outputs, P2-P5 for a two-stage student (as MGD, which AMD modifies: kdlab's choice), one ``AMDLoss`` per level. Defaults by student kind follow
MGD's configs (alpha 2e-5 / mask ratio 0.65 one-stage; 5e-7 / 0.45 two-stage); temperature 0.5 (FGD's) and
the top-ratio mask are kdlab's choices (see the loss's docstring and docs/methods.md).
"""
from __future__ import annotations

import kdlab.models  # noqa: F401  (registers the mmrazor components this method uses)
from kdlab.methods import register_method
from kdlab.methods._common import by_kind, detector_kind, level_distiller

MASKED_DEFAULTS = dict(alpha=None, mask_ratio=None, temperature=0.5, mask_mode='top', se_reduction=16,
                       student_kind='auto')


def masked_loss(type_: str, pairs, *, alpha, mask_ratio, temperature, mask_mode, se_reduction, student_kind,
                **extra) -> dict:
    """The loss dict shared by AMD/DMKD/DSAMKD: channels from the necks, alpha/ratio by student kind."""
    kind = detector_kind(pairs, student_kind)
    return dict(type=type_, student_channels=None, teacher_channels=None,
                alpha=by_kind(alpha, kind, 2e-5, 5e-7), mask_ratio=by_kind(mask_ratio, kind, 0.65, 0.45),
                temperature=temperature, mask_mode=mask_mode, se_reduction=se_reduction, **extra)


@register_method('amd', num_levels=5, two_stage_levels=4, defaults=MASKED_DEFAULTS)
def amd(pairs, **params):
    """AMD (``AMDLoss``): teacher-spatial-attention-guided masked generation + SE block, MGD's levels."""
    return level_distiller(pairs, masked_loss('AMDLoss', pairs, **params), prefix='amd')
