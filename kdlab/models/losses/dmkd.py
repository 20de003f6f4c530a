"""DMKD — Yang et al., "DMKD: Improving Feature-based Knowledge Distillation for Object Detection via Dual
Masking Augmentation", ICASSP 2024 (arXiv 2309.02719). No public code: kdlab's reading, built on AMD.

From the paper / DFMSD section 3.1: dual attention maps of the teacher — spatial (important regions) and
channel (informative channel clues) — guide two masking branches; each masked student feature is
reconstructed through SE and generation modules; the two reconstructions are fused with "self-adjustable"
weights and regressed onto the teacher feature. In kdlab (``S`` aligned student, ``T`` teacher, one level):

    M_S = mask of the top ``mask_ratio`` positions of A_S(T)            (kdlab.core.masks, as AMD)
    M_C = mask of the top ``channel_mask_ratio`` channels of A_C(T)     A_C = C*softmax_c(mean_hw|T| / temp)
    R_S = SE_S(G_S(S * M_S)),   R_C = SE_C(G_C(S * M_C))
    (w_S, w_C) = softmax(theta),  theta a learnable 2-vector, initialised at 0 (equal weights)
    L = alpha * sum over (c, h, w) of ( w_S R_S + w_C R_C - T )^2 / N

Interpretation choices (each a parameter): FGD's attention definitions and temperature 0.5; masking the
*highest*-attention positions/channels (``mask_mode='top'``, or ``'sample'``); the ratios default to MGD's
lambda; the self-adjustable weights are a softmax over two learnable logits fusing the *reconstructions*
(a learnable weight on each *loss* would drive itself to the smaller loss); alpha defaults to MGD's.
"""
from __future__ import annotations

from typing import Optional

import torch
import torch.nn as nn
from mmrazor.registry import MODELS

from kdlab.core.attention import DEFAULT_TEMPERATURE, channel_attention, channel_map
from kdlab.core.masks import channel_attention_mask
from kdlab.models.blocks import SEBlock, generation_block
from kdlab.models.losses.amd import AMDLoss


@MODELS.register_module()
class DMKDLoss(AMDLoss):
    """DMKD: spatial- and channel-attention-guided dual masking, reconstructions fused by learnable weights.

    Args:
        student_channels (int, optional): student channels; None = filled in by ``AutoChannelDistiller``.
        teacher_channels (int, optional): teacher channels; None = as above.
        alpha (float): loss weight. Defaults to 2e-5.
        mask_ratio (float): fraction of positions masked in the spatial branch. Defaults to 0.65.
        channel_mask_ratio (float, optional): fraction of channels masked in the channel branch; None =
            ``mask_ratio``. Defaults to None.
        temperature (float): attention temperature (both maps). Defaults to 0.5.
        mask_mode (str): ``'top'`` or ``'sample'`` (both branches). Defaults to 'top'.
        se_reduction (int): SE block reduction. Defaults to 16.
        resize_stu (bool): resize the student map to the teacher's if sizes differ. Defaults to True.
    """

    def __init__(self, student_channels: Optional[int] = None, teacher_channels: Optional[int] = None,
                 alpha: float = 2e-5, mask_ratio: float = 0.65, channel_mask_ratio: Optional[float] = None,
                 temperature: float = DEFAULT_TEMPERATURE, mask_mode: str = 'top', se_reduction: int = 16,
                 resize_stu: bool = True):
        self.channel_mask_ratio = mask_ratio if channel_mask_ratio is None else channel_mask_ratio
        super().__init__(student_channels, teacher_channels, alpha=alpha, mask_ratio=mask_ratio,
                         temperature=temperature, mask_mode=mask_mode, se_reduction=se_reduction,
                         resize_stu=resize_stu)

    def _build(self, channels: int) -> None:
        super()._build(channels)                      # spatial branch: generation, se
        self.generation_c = generation_block(channels)
        self.se_c = SEBlock(channels, self.se_reduction)
        self.fusion_logits = nn.Parameter(torch.zeros(2))

    def channel_mask(self, T: torch.Tensor) -> torch.Tensor:
        """Keep mask ``(N, C, 1, 1)`` from the teacher map ``(N, C, H, W)``."""
        return channel_attention_mask(channel_map(T) / self.temperature, self.channel_mask_ratio, logits=True,
                                      sample=self.mask_mode == 'sample')

    def channel_attention(self, T: torch.Tensor) -> torch.Tensor:
        """The teacher's ``A_C`` ``(N, C)`` (for plots; the mask uses its log-weights, same ranking)."""
        return channel_attention(T, self.temperature)

    def fusion_weights(self) -> torch.Tensor:
        """``(w_S, w_C)``: the self-adjustable fusion weights (sum to 1)."""
        return torch.softmax(self.fusion_logits, dim=0)

    def reconstruct(self, S: torch.Tensor, T: torch.Tensor) -> torch.Tensor:
        """``w_S SE_S(G_S(S*M_S)) + w_C SE_C(G_C(S*M_C))``, ``(N, C, H, W)``."""
        r_s = self.se(self.generation(S * self.spatial_mask(T)))
        r_c = self.se_c(self.generation_c(S * self.channel_mask(T)))
        w = self.fusion_weights()
        return w[0] * r_s + w[1] * r_c
