"""Channel z-scoring and the Pearson-correlation feature loss — written once for PKD, DCSF-KD and DFMSD's SFA.

PKD (Cao et al., NeurIPS 2022) standardises every channel of an FPN map over ``(N, H, W)`` jointly, teacher
and student alike, and compares the two with ``MSE / 2``. The identity the code relies on: for channel ``c``
with ``M = N*H*W`` samples and unbiased std,

    mean over (n, h, w) of (s_hat - t_hat)^2 / 2 = (1 - r_c) * (M - 1) / M        (exactly, with eps = 0)

where ``r_c`` is the Pearson correlation of the channel, so ``zscore_mse`` is ``(1/C) sum_c (1 - r_c)`` up
to ``(M - 1)/M``. It is zero (up to eps) whenever the student is a positive per-channel affine map of the
teacher, and it does not care about feature magnitudes.

Every function is pure and takes one map ``(C, H, W)`` or a batch ``(N, C, H, W)``.
"""
from __future__ import annotations

from typing import Tuple

import torch
import torch.nn.functional as F

from kdlab.errors import ChannelMismatchError

#: Added to the std, as mmrazor's ``PKDLoss`` does.
EPS = 1e-6


def _as_batch(feat: torch.Tensor) -> Tuple[torch.Tensor, bool]:
    if feat.dim() == 3:
        return feat.unsqueeze(0), True
    if feat.dim() != 4:
        raise ChannelMismatchError(f'expected a feature map (C, H, W) or (N, C, H, W), got shape '
                                   f'{tuple(feat.shape)}', 'pass one FPN level at a time')
    return feat, False


def channel_zscore(feat: torch.Tensor, eps: float = EPS) -> torch.Tensor:
    """``(feat - mean_c) / (std_c + eps)`` per channel over ``(N, H, W)`` jointly (unbiased std).

    Shapes: ``(N, C, H, W) -> (N, C, H, W)``; ``(C, H, W) -> (C, H, W)`` (statistics over ``(H, W)``).
    """
    x, single = _as_batch(feat)
    n, c, h, w = x.shape
    flat = x.transpose(0, 1).reshape(c, -1)
    mean = flat.mean(dim=1, keepdim=True)
    std = flat.std(dim=1, keepdim=True)
    out = ((flat - mean) / (std + eps)).reshape(c, n, h, w).transpose(0, 1)
    return out[0] if single else out


def resize_like(feat: torch.Tensor, ref: torch.Tensor) -> torch.Tensor:
    """Bilinearly resize ``feat`` to the spatial size of ``ref`` (a no-op when both sizes already agree).

    Both sizes are compared, not only the height (mmrazor's ``PKDLoss`` checks the height only).
    """
    if feat.shape[-2:] == ref.shape[-2:]:
        return feat
    x, single = _as_batch(feat)
    out = F.interpolate(x, size=tuple(ref.shape[-2:]), mode='bilinear', align_corners=False)
    return out[0] if single else out


def check_same_channels(preds_S: torch.Tensor, preds_T: torch.Tensor, what: str) -> None:
    """Raise :class:`ChannelMismatchError` when student and teacher maps differ in channels."""
    cs, ct = preds_S.shape[-3], preds_T.shape[-3]
    if cs != ct:
        raise ChannelMismatchError(
            f'{what}: student has {cs} channels, teacher {ct}',
            'give the loss student_channels/teacher_channels (it then learns a 1x1 align conv), or put a '
            'connector (e.g. mmrazor ConvModuleConnector) on the student')


def zscore_mse(preds_S: torch.Tensor, preds_T: torch.Tensor, eps: float = EPS) -> torch.Tensor:
    """PKD's loss for one level: ``MSE(z(s), z(t)) / 2`` (mean over all elements), a scalar.

    Shapes: ``(N, C, H, W)`` or ``(C, H, W)``, same channels; the student is resized to the teacher.
    """
    check_same_channels(preds_S, preds_T, 'z-scored MSE')
    preds_S = resize_like(preds_S, preds_T)
    return F.mse_loss(channel_zscore(preds_S, eps), channel_zscore(preds_T, eps)) / 2


def pearson_per_channel(preds_S: torch.Tensor, preds_T: torch.Tensor) -> torch.Tensor:
    """Pearson ``r_c`` of every channel over ``(N, H, W)``: shape ``(C,)``. A reference for tests and plots."""
    s, _ = _as_batch(preds_S)
    t, _ = _as_batch(preds_T)
    c = s.shape[1]
    s = s.transpose(0, 1).reshape(c, -1)
    t = t.transpose(0, 1).reshape(c, -1)
    s = s - s.mean(dim=1, keepdim=True)
    t = t - t.mean(dim=1, keepdim=True)
    return (s * t).sum(1) / (s.norm(dim=1) * t.norm(dim=1)).clamp_min(1e-12)
