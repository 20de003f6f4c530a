"""Masks of the feature-masking methods, written once: MGD's random mask, attention-guided masks (AMD, DMKD,
DFMSD, DSAMKD), FGD's foreground/background masks from boxes, DSAMKD's logits-difference mask, and DFMSD's
box-area ratio with the masking-enhancement decision of its Eq. (4).

Conventions. A *keep mask* multiplies the student feature: 1 keeps a position (or channel), 0 masks it out, and
the generation block must reconstruct the teacher there. Keep masks broadcast against ``(N, C, H, W)``:
spatial ``(N, 1, H, W)``, channel ``(N, C, 1, 1)``. A *select mask* (1 = distil here) is its complement.
Every function is pure (no module state); random ones take an optional ``torch.Generator``.
"""
from __future__ import annotations

import math
from typing import Optional, Sequence, Tuple

import torch

#: DFMSD Eq. (4)'s area threshold: section 4.7, "less than half of the image size" (value lost in extraction).
ME_THRESHOLD = 0.5


def _count(ratio: float, total: int) -> int:
    if not 0.0 <= ratio <= 1.0:
        raise ValueError(f'mask ratio must be in [0, 1], got {ratio}')
    return int(math.floor(ratio * total + 0.5))


# ------------------------------------------------------------------------------------------------ MGD
def random_spatial_mask(n: int, h: int, w: int, ratio: float, *, generator: Optional[torch.Generator] = None,
                        device=None) -> torch.Tensor:
    """MGD's random keep mask ``(N, 1, H, W)``: ``R ~ U(0, 1)`` per position, ``M = 0 where R > 1 - ratio``.

    Each position is masked with probability ``ratio`` (MGD's lambda: 0.65 one-stage, 0.45 two-stage).
    """
    r = torch.rand((n, 1, h, w), generator=generator, device=device)
    return (r <= 1 - ratio).float()


# -------------------------------------------------------------------------------- attention-guided masks
def top_ratio_select(scores: torch.Tensor, ratio: float, *, sample: bool = False, logits: bool = False,
                     generator: Optional[torch.Generator] = None) -> torch.Tensor:
    """Select mask ``(N, K)``: 1 at the ``round(ratio * K)`` highest ``scores`` of each row, 0 elsewhere.

    ``sample=True`` draws the selected entries without replacement with probability proportional to
    ``scores`` (Gumbel top-k on ``log scores``) instead of taking the highest ones: with FGD attention maps
    the temperature then sets how random the mask is (``T -> 0``: the top entries; ``T -> inf``: uniform,
    i.e. MGD's random mask). ``scores`` must be positive when sampling (attention maps are).
    ``logits=True``: ``scores`` are log-weights (e.g. ``mean_c|F| / T``, the attention before its softmax),
    which ranks identically and samples without the softmax underflowing at small temperatures.
    """
    if scores.dim() != 2:
        raise ValueError(f'top_ratio_select expects (N, K) scores, got shape {tuple(scores.shape)}')
    n, k_total = scores.shape
    k = _count(ratio, k_total)
    out = torch.zeros_like(scores, dtype=torch.float32)
    if k == 0:
        return out
    keys = scores.detach().float()
    if sample:
        u = torch.rand(keys.shape, generator=generator, device=keys.device).clamp_(1e-12, 1 - 1e-12)
        keys = (keys if logits else keys.clamp_min(1e-30).log()) - torch.log(-torch.log(u))
    idx = keys.topk(k, dim=1).indices
    return out.scatter_(1, idx, 1.0)


def spatial_attention_mask(attention: torch.Tensor, ratio: float, *, sample: bool = False, logits: bool = False,
                           generator: Optional[torch.Generator] = None) -> torch.Tensor:
    """Keep mask ``(N, 1, H, W)`` that masks the ``ratio`` of positions with the highest spatial attention.

    ``attention``: ``(N, H, W)`` (e.g. the teacher's ``A_S``, or its log-weights with ``logits=True``) or
    ``(H, W)`` (-> ``(1, H, W)``). ``sample``: see :func:`top_ratio_select`.
    """
    att = attention.unsqueeze(0) if attention.dim() == 2 else attention
    n, h, w = att.shape
    keep = 1.0 - top_ratio_select(att.reshape(n, h * w), ratio, sample=sample, logits=logits,
                                  generator=generator)
    keep = keep.reshape(n, 1, h, w).to(attention.dtype)
    return keep[0] if attention.dim() == 2 else keep


def channel_attention_mask(attention: torch.Tensor, ratio: float, *, sample: bool = False, logits: bool = False,
                           generator: Optional[torch.Generator] = None) -> torch.Tensor:
    """Keep mask ``(N, C, 1, 1)`` that masks the ``ratio`` of channels with the highest channel attention.

    ``attention``: ``(N, C)`` (e.g. the teacher's ``A_C``, or its log-weights with ``logits=True``) or ``(C,)``
    (-> ``(C, 1, 1)``). ``sample``: see :func:`top_ratio_select`.
    """
    att = attention.unsqueeze(0) if attention.dim() == 1 else attention
    keep = (1.0 - top_ratio_select(att, ratio, sample=sample, logits=logits,
                                   generator=generator)).to(attention.dtype)
    keep = keep[:, :, None, None]
    return keep[0] if attention.dim() == 1 else keep


# --------------------------------------------------------------------------------------------- FGD
def fgd_masks(boxes: Sequence[torch.Tensor], img_shapes: Sequence[Tuple[int, int]],
              feat_hw: Tuple[int, int]) -> Tuple[torch.Tensor, torch.Tensor]:
    """FGD's foreground and background masks ``(N, H, W)`` of one FPN level (released code, ``forward``).

    ``boxes[i]``: ``(K_i, 4)`` ``x1, y1, x2, y2`` in the pixels of an image of size ``img_shapes[i] = (h, w)``;
    ``feat_hw = (H, W)``. Each box is scaled to the map (``x * W / w``, ``y * H / h``), widened to whole
    cells (floor of the min, ceil of the max, both ends inclusive) and paints ``1 / (h_box * w_box)`` (its
    size in cells), the largest value winning where boxes overlap. The background is ``1 / N_bg`` on the
    ``N_bg`` cells no box covers (all zero when boxes cover everything). Box starts are clamped at 0 (a no-op
    for boxes inside the image).
    """
    big_h, big_w = int(feat_hw[0]), int(feat_hw[1])
    n = len(boxes)
    device = boxes[0].device if n and isinstance(boxes[0], torch.Tensor) else None
    fg = torch.zeros((n, big_h, big_w), device=device)
    bg = torch.ones((n, big_h, big_w), device=device)
    for i in range(n):
        b = torch.as_tensor(boxes[i], dtype=torch.float32, device=device).reshape(-1, 4)
        h_img, w_img = float(img_shapes[i][0]), float(img_shapes[i][1])
        if len(b):
            wmin = torch.floor(b[:, 0] / w_img * big_w).int().clamp_min(0)
            wmax = torch.ceil(b[:, 2] / w_img * big_w).int()
            hmin = torch.floor(b[:, 1] / h_img * big_h).int().clamp_min(0)
            hmax = torch.ceil(b[:, 3] / h_img * big_h).int()
            area = 1.0 / (hmax + 1 - hmin).float() / (wmax + 1 - wmin).float()
            for j in range(len(b)):
                ys, ye, xs, xe = int(hmin[j]), int(hmax[j]) + 1, int(wmin[j]), int(wmax[j]) + 1
                fg[i, ys:ye, xs:xe] = torch.maximum(fg[i, ys:ye, xs:xe], area[j])
        bg[i] = (fg[i] <= 0).float()
        total = bg[i].sum()
        if total > 0:
            bg[i] = bg[i] / total
    return fg, bg


# ------------------------------------------------------------------------------------------- DFMSD ME
def box_area_ratio(boxes: torch.Tensor, img_shape: Tuple[int, int]) -> float:
    """DFMSD Eq. (4)'s ratio: summed area of the candidate boxes ``(K, 4)`` (xyxy) over the image area ``h*w``.

    Overlaps are counted twice and the ratio may exceed 1, as "the summed area of all the candidate bounding
    boxes" says. No boxes -> 0.
    """
    b = torch.as_tensor(boxes, dtype=torch.float32).reshape(-1, 4)
    if not len(b):
        return 0.0
    area = ((b[:, 2] - b[:, 0]).clamp_min(0) * (b[:, 3] - b[:, 1]).clamp_min(0)).sum()
    return float(area) / float(img_shape[0] * img_shape[1])


def me_decision(ratio: float, threshold: float = ME_THRESHOLD) -> str:
    """DFMSD Eq. (4): ``'noise'`` (Gaussian noise, small objects dominate) when ``ratio < threshold``, else
    ``'crop'`` (random proportional crop, large objects dominate)."""
    return 'noise' if ratio < threshold else 'crop'


# ------------------------------------------------------------------------------------------- DSAMKD
def logits_difference(logits_S: torch.Tensor, logits_T: torch.Tensor) -> torch.Tensor:
    """``mean_k |sigmoid(z_T) - sigmoid(z_S)|`` over the class (x anchor) channels: ``(N, K, H, W) -> (N, H, W)``.

    DSAMKD's guide for its masked logits distillation (kdlab's reading of "logits difference between teacher
    and student"); sigmoid because every dense head of the seed tables classifies with sigmoids.
    """
    return (torch.sigmoid(logits_T) - torch.sigmoid(logits_S)).abs().mean(dim=-3)


def difference_select_mask(diff: torch.Tensor, ratio: float) -> torch.Tensor:
    """Select mask ``(N, 1, H, W)``: 1 on the ``ratio`` of positions where ``diff`` ``(N, H, W)`` is largest."""
    n, h, w = diff.shape
    return top_ratio_select(diff.reshape(n, h * w), ratio).reshape(n, 1, h, w).to(diff.dtype)
