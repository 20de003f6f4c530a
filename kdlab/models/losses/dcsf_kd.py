"""DCSF-KD — Dai et al., "DCSF-KD: Dynamic Channel-wise Spatial Feature Knowledge Distillation for Object
Detection", AAAI 2025. Released code: github.com/LinY-ct/DCSF-KD (an mmrazor 1.0.0 fork that does not import;
its ``pkd_loss.py`` holds the DCSF formula). kdlab's loss is written from that formula.

Per FPN level (the released configs distil neck outputs 0..3, like PKD):

    s_hat, t_hat = z(s), z(t)                z = per-channel z-score over (N, H, W)     (PKD, unbiased std)
    g[n, c]      = mean over (h, w) of t_hat[n, c]
    w[n, c]      = 1 + 9 * softmax over c of g[n, :]                                    (weights in [1, 10])
    L            = mean over (n, c, h, w) of (w[n, c] * s_hat - t_hat)^2                 (no 1/2, unlike PKD)

Total loss = detection loss + alpha * sum over levels; ``loss_weight`` is alpha. The weights have no
learnable parameters: "dynamic" means they are recomputed from the teacher for every image.

Where the loss is zero: never exactly when ``s`` is a positive per-channel affine map of ``t`` (PKD's zero),
because then ``s_hat = t_hat`` and ``L = mean((w - 1)^2 t_hat^2)`` with ``w - 1 = 9 softmax(g) > 0``; it is
*small* there (``w - 1 ~ 9 / C``). Its minimiser over ``s_hat`` is ``t_hat / w``, not ``t_hat``.

Alpha (which config sets ``loss_weight``): paper card — 2 for two-stage and 1 for single-stage students;
released configs — 2 everywhere but FCOS-X101 -> RetinaNet 1x (1). kdlab's ``dcsf_kd`` method uses the paper's
value by default (``alpha_source='paper'``, see :mod:`kdlab.methods.dcsf_kd`).
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmrazor.registry import MODELS

from kdlab.core.normalize import EPS, channel_zscore, check_same_channels
from kdlab.models.losses._base import Feats, as_levels, match_level

#: The released formula's weight range: w = 1 + WEIGHT_SCALE * softmax.
WEIGHT_SCALE = 9.0


def dcsf_channel_weights(t_hat: torch.Tensor, scale: float = WEIGHT_SCALE) -> torch.Tensor:
    """``w = 1 + scale * softmax_c(mean_hw t_hat)``: ``(N, C, H, W) -> (N, C, 1, 1)``."""
    g = t_hat.mean(dim=(2, 3))
    return (1.0 + scale * F.softmax(g, dim=1))[:, :, None, None]


@MODELS.register_module()
class DCSFKDLoss(nn.Module):
    """DCSF-KD's dynamic channel-weighted z-scored feature loss (AAAI 2025).

    Args:
        loss_weight (float): alpha, the weight of the loss. Defaults to 1.0 (kdlab's method picks 1 or 2).
        resize_stu (bool): resize the student map to the teacher's when their sizes differ (else the
            teacher to the student's), as ``PKDLoss``. Defaults to True.
        weight_scale (float): the 9 of ``w = 1 + 9 softmax``. Defaults to 9.0 (released code).
        eps (float): added to the std when z-scoring. Defaults to 1e-6 (as PKD).
    """

    def __init__(self, loss_weight: float = 1.0, resize_stu: bool = True, weight_scale: float = WEIGHT_SCALE,
                 eps: float = EPS):
        super().__init__()
        self.loss_weight = loss_weight
        self.resize_stu = resize_stu
        self.weight_scale = weight_scale
        self.eps = eps

    def forward(self, preds_S: Feats, preds_T: Feats) -> torch.Tensor:
        """Sum over levels of the level loss, times ``loss_weight``.

        Args:
            preds_S: student map ``(N, C, H, W)`` or a tuple of per-level maps.
            preds_T: teacher map(s), same structure and channels.
        """
        loss = 0.
        for pred_S, pred_T in as_levels(preds_S, preds_T, 'DCSFKDLoss'):
            check_same_channels(pred_S, pred_T, 'DCSFKDLoss')
            pred_S, pred_T = match_level(pred_S, pred_T, self.resize_stu)
            s_hat, t_hat = channel_zscore(pred_S, self.eps), channel_zscore(pred_T, self.eps)
            w = dcsf_channel_weights(t_hat, self.weight_scale)
            loss = loss + F.mse_loss(w * s_hat, t_hat)
        return self.loss_weight * loss
