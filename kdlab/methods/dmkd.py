"""DMKD — Yang et al., ICASSP 2024. No public code; loss: :class:`kdlab.models.losses.DMKDLoss` (kdlab's reading).

All five neck outputs (P2-P5 for a two-stage student, as MGD and FGD, on which DMKD builds: kdlab's
choice), one ``DMKDLoss`` per level (spatial + channel attention-guided masking, SE and
generation blocks per branch, reconstructions fused with learnable softmax weights). Defaults as AMD; the
channel branch's ratio defaults to the spatial one.
"""
from __future__ import annotations

import kdlab.models  # noqa: F401  (registers the mmrazor components this method uses)
from kdlab.methods import register_method
from kdlab.methods._common import level_distiller
from kdlab.methods.amd import MASKED_DEFAULTS, masked_loss


@register_method('dmkd', num_levels=5, two_stage_levels=4, defaults=dict(MASKED_DEFAULTS, channel_mask_ratio=None))
def dmkd(pairs, *, channel_mask_ratio, **params):
    """DMKD (``DMKDLoss``): dual (spatial + channel) attention-guided masked generation, MGD's levels."""
    return level_distiller(pairs, masked_loss('DMKDLoss', pairs, channel_mask_ratio=channel_mask_ratio,
                                              **params), prefix='dmkd')
