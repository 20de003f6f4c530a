"""Attention maps of a feature map, as FGD defines them — shared by FGD, AMD, DMKD, DFMSD and DSAMKD.

FGD (Yang et al., CVPR 2022, Eqs. 2-3; released code ``get_attention``), for a map ``F`` of shape
``(C, H, W)`` and temperature ``T``:

    A_S = H * W * softmax over (h, w) of ( mean_c |F| / T )        spatial attention, shape (H, W)
    A_C = C     * softmax over c      of ( mean_hw |F| / T )       channel attention, shape (C,)

Both average to 1 (``A_S.mean() == A_C.mean() == 1``), so ``A_S * A_C`` re-weights a loss without changing
its scale. AMD/DMKD/DFMSD publish no code; DFMSD's Eqs. (2)-(3) give "the dual attention maps" but were lost
in the extraction, so kdlab uses these FGD definitions for all of them (the likely template) with the
temperature as a parameter (default 0.5, FGD's RetinaNet value).

DSAMKD's scale-aware maps (:func:`scale_pyramid`) max-pool a map at several window sizes before any of the
above, so that each coarser map keeps the strongest local response ("object-aware locality").

All functions are pure: ``(N, C, H, W)`` in, batch dimension kept; a single map ``(C, H, W)`` works too.
"""
from __future__ import annotations

from typing import List, Sequence

import torch
import torch.nn.functional as F

#: FGD's temperature for RetinaNet, GFL, Faster R-CNN and RepPoints students (FCOS: 0.8).
DEFAULT_TEMPERATURE = 0.5


def _batch(feat: torch.Tensor):
    if feat.dim() == 3:
        return feat.unsqueeze(0), True
    if feat.dim() != 4:
        raise ValueError(f'expected (C, H, W) or (N, C, H, W), got shape {tuple(feat.shape)}')
    return feat, False


def spatial_map(feat: torch.Tensor) -> torch.Tensor:
    """``mean_c |F|``: ``(N, C, H, W) -> (N, H, W)`` (``(C, H, W) -> (H, W)``), before the softmax."""
    x, single = _batch(feat)
    out = x.abs().mean(dim=1)
    return out[0] if single else out


def channel_map(feat: torch.Tensor) -> torch.Tensor:
    """``mean_hw |F|``: ``(N, C, H, W) -> (N, C)`` (``(C, H, W) -> (C,)``), before the softmax."""
    x, single = _batch(feat)
    out = x.abs().mean(dim=(2, 3))
    return out[0] if single else out


def spatial_attention(feat: torch.Tensor, temperature: float = DEFAULT_TEMPERATURE) -> torch.Tensor:
    """FGD's ``A_S = H*W*softmax_hw(mean_c|F| / T)``: ``(N, C, H, W) -> (N, H, W)``; mean 1 per image."""
    x, single = _batch(feat)
    n, _, h, w = x.shape
    att = h * w * F.softmax((spatial_map(x) / temperature).reshape(n, -1), dim=1)
    att = att.reshape(n, h, w)
    return att[0] if single else att


def channel_attention(feat: torch.Tensor, temperature: float = DEFAULT_TEMPERATURE) -> torch.Tensor:
    """FGD's ``A_C = C*softmax_c(mean_hw|F| / T)``: ``(N, C, H, W) -> (N, C)``; mean 1 per image."""
    x, single = _batch(feat)
    c = x.shape[1]
    att = c * F.softmax(channel_map(x) / temperature, dim=1)
    return att[0] if single else att


def scale_pyramid(feat: torch.Tensor, scales: Sequence[int] = (1, 2, 4)) -> List[torch.Tensor]:
    """DSAMKD (kdlab's reading): the map max-pooled with window = stride = ``s`` for each ``s`` in ``scales``.

    ``(N, C, H, W) -> [(N, C, ceil(H/s), ceil(W/s))]``; ``s = 1`` returns the map itself. Max (not average)
    pooling keeps the strongest local activation, so a small object survives at the coarse scales.
    """
    x, single = _batch(feat)
    out = []
    for s in scales:
        s = int(s)
        if s < 1:
            raise ValueError(f'scale_pyramid: scales must be >= 1, got {s}')
        out.append(x if s == 1 else F.max_pool2d(x, kernel_size=s, stride=s, ceil_mode=True))
    return [o[0] for o in out] if single else out
