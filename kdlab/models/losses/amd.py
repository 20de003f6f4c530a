"""AMD — Yang et al., "AMD: Adaptive Masked Distillation for Object Detection", IJCNN 2023 (arXiv 2301.13538).
No public code: this is kdlab's reading of the paper's description, on MGD's formulation.

From the paper / DFMSD's summary of it: MGD's random spatial mask is replaced by a mask guided by the teacher's
spatial attention ("spatially adaptive feature masking"), and "a simple yet efficient SE block" makes the
student's channels adaptive. From MGD (Yang et al., ECCV 2022, mmrazor ``MGDLoss`` + ``MGDConnector``): the
generation block ``G`` = conv3x3-ReLU-conv3x3, a 1x1 ``align`` conv when channels differ, and

    L = alpha * sum over (c, h, w) of ( SE(G(align(S) * M)) - T )^2 / N               (N = batch size)

kdlab's interpretation (each a parameter):

* attention: FGD's ``A_S = H*W*softmax_hw(mean_c|T| / temperature)`` of the *teacher* map (AMD publishes no
  temperature; default 0.5, FGD's) — :func:`kdlab.core.attention.spatial_attention`;
* mask: the ``mask_ratio`` of positions with the highest teacher attention are masked (``M = 0``) so that
  the student must reconstruct the important regions (``mask_mode='top'``, default); ``mask_mode='sample'``
  draws them with probability proportional to ``A_S`` (the temperature then sets the randomness; ``T -> inf``
  is MGD's random mask) — :func:`kdlab.core.masks.spatial_attention_mask`. With ``'top'`` the temperature
  does not change the mask. ``mask_ratio`` defaults to MGD's lambda (0.65; 0.45 for two-stage students in
  kdlab's methods);
* the SE block recalibrates the reconstruction's channels (``SE(G(.))``, reduction 16);
* alpha defaults to MGD's 2e-5 (one-stage; 5e-7 for two-stage students in kdlab's methods).
"""
from __future__ import annotations

from typing import Optional

import torch
from mmrazor.registry import MODELS

from kdlab.core.attention import DEFAULT_TEMPERATURE, spatial_attention, spatial_map
from kdlab.core.masks import spatial_attention_mask
from kdlab.errors import UnknownNameError
from kdlab.models.blocks import SEBlock, generation_block
from kdlab.models.losses._base import ChannelSizedLoss, Feats, as_levels

MASK_MODES = ('top', 'sample')


@MODELS.register_module()
class AMDLoss(ChannelSizedLoss):
    """AMD: teacher-spatial-attention-guided masked generative distillation with an SE block.

    Args:
        student_channels (int, optional): student channels; None = filled in by ``AutoChannelDistiller``.
        teacher_channels (int, optional): teacher channels; None = as above.
        alpha (float): loss weight (MGD's ``alpha_mgd``). Defaults to 2e-5.
        mask_ratio (float): fraction of positions masked. Defaults to 0.65.
        temperature (float): attention temperature. Defaults to 0.5.
        mask_mode (str): ``'top'`` (mask the highest-attention positions) or ``'sample'``. Defaults to 'top'.
        se_reduction (int): SE block reduction. Defaults to 16.
        resize_stu (bool): resize the student map to the teacher's if sizes differ. Defaults to True.
    """

    def __init__(self, student_channels: Optional[int] = None, teacher_channels: Optional[int] = None,
                 alpha: float = 2e-5, mask_ratio: float = 0.65, temperature: float = DEFAULT_TEMPERATURE,
                 mask_mode: str = 'top', se_reduction: int = 16, resize_stu: bool = True):
        if mask_mode not in MASK_MODES:
            raise UnknownNameError('mask_mode', mask_mode, MASK_MODES)
        self.alpha, self.mask_ratio, self.temperature = alpha, mask_ratio, temperature
        self.mask_mode, self.se_reduction = mask_mode, se_reduction
        super().__init__(student_channels, teacher_channels, resize_stu=resize_stu)

    def _build(self, channels: int) -> None:
        self.generation = generation_block(channels)
        self.se = SEBlock(channels, self.se_reduction)

    # ------------------------------------------------------------------ pieces (also used by plots/tests)
    def spatial_attention(self, T: torch.Tensor) -> torch.Tensor:
        """The teacher's ``A_S`` ``(N, H, W)`` (for plots; the mask uses its log-weights, same ranking)."""
        return spatial_attention(T, self.temperature)

    def spatial_mask(self, T: torch.Tensor) -> torch.Tensor:
        """Keep mask ``(N, 1, H, W)`` from the teacher map ``(N, C, H, W)``."""
        return spatial_attention_mask(spatial_map(T) / self.temperature, self.mask_ratio, logits=True,
                                      sample=self.mask_mode == 'sample')

    def reconstruct(self, S: torch.Tensor, T: torch.Tensor) -> torch.Tensor:
        """``SE(G(S * M_S))``: the student's reconstruction of ``T``; ``S`` already aligned, ``(N, C, H, W)``."""
        return self.se(self.generation(S * self.spatial_mask(T)))

    def reconstruction_loss(self, S: torch.Tensor, T: torch.Tensor, normalize: str = 'batch') -> torch.Tensor:
        """``sum((reconstruct(S, T) - T)^2) / N`` (``normalize='batch'``, MGD) or ``/ numel`` (``'elements'``)."""
        sq = ((self.reconstruct(S, T) - T) ** 2).sum()
        return sq / (S.shape[0] if normalize == 'batch' else T.numel())

    def forward(self, preds_S: Feats, preds_T: Feats) -> torch.Tensor:
        """``alpha * sum over levels`` of the reconstruction loss.

        Args:
            preds_S: student map ``(N, C_s, H, W)`` or a tuple of per-level maps (one set of blocks for all).
            preds_T: teacher map(s) ``(N, C_t, H, W)``.
        """
        loss = 0.
        for pred_S, pred_T in as_levels(preds_S, preds_T, type(self).__name__):
            S, T = self.prepare(pred_S, pred_T)
            loss = loss + self.reconstruction_loss(S, T)
        return self.alpha * loss
