"""FGD — Yang et al., "Focal and Global Knowledge Distillation for Detectors", CVPR 2022 (arXiv 2111.11837).
Released code: github.com/yzd-v/FGD (mmdet 2.x, ``mmdet/distillation/losses/fgd.py``); not in mmrazor 1.0.0.
kdlab follows the released code term by term.

Per FPN level, with ``S`` the (aligned) student map, ``T`` the teacher map, temperature ``T_a``:

    A_S, A_C      = spatial / channel attention of T (and of S), FGD Eqs. 2-3 (kdlab.core.attention)
    M_fg, M_bg    = 1/(h_box w_box) inside GT boxes, 1/N_bg elsewhere (kdlab.core.masks.fgd_masks)
    L_fea  = alpha * sum(M_fg A_S^T A_C^T (T - S)^2) / N  +  beta * sum(M_bg A_S^T A_C^T (T - S)^2) / N
    L_at   = gamma * ( sum|A_C^S - A_C^T| + sum|A_S^S - A_S^T| ) / N
    L_glb  = lambda * sum( (GcBlock_T(T) - GcBlock_S(S))^2 ) / N
    L      = L_fea + L_at + L_glb                                  (N = batch size; sums over C, H, W)

Trainable parts (the method's own, not the teacher's): the 1x1 ``align`` conv when channels differ and the two
GcBlocks (``gc_s``, ``gc_t``; the teacher-side block trains too, as in the released code — the teacher
*features* are detached).

The loss needs the GT boxes and the image shapes: mmrazor 1.0.0's recorders cannot hand them over, so kdlab's
``DataSamplesRecorder`` (``dict(type='DataSamples')``) records the batch's ``data_samples`` and the config maps
them to ``data_samples``. Boxes are scaled to the map by ``img_shape`` (the resized image before padding), as
the released code does; ``box_scale='batch_input_shape'`` scales by the padded batch the maps actually cover
(kdlab option, exact when images are padded).

Hyper-parameters of the released configs (temperature, alpha, beta, gamma, lambda): RetinaNet/GFL 0.5, 1e-3,
5e-4, 5e-4, 5e-6 (the defaults below); Faster R-CNN 0.5, 5e-5, 2.5e-5, 5e-5, 5e-7; RepPoints 0.5, 1.6e-3, 8e-4,
8e-4, 8e-6; FCOS 0.8 and RepPoints' weights (see ``kdlab.methods.fgd.FGD_PRESETS``).
"""
from __future__ import annotations

from typing import Optional, Sequence

import torch
from mmrazor.registry import MODELS

from kdlab.core.attention import channel_attention, spatial_attention
from kdlab.core.masks import fgd_masks
from kdlab.models._samples import gt_boxes, image_shapes
from kdlab.models.blocks import GcBlock
from kdlab.models.losses._base import ChannelSizedLoss, Feats, as_levels


@MODELS.register_module()
class FGDLoss(ChannelSizedLoss):
    """FGD's focal (foreground/background, attention-weighted) and global (GcBlock) distillation loss.

    Args:
        student_channels (int, optional): student map channels; None = filled in by ``AutoChannelDistiller``.
        teacher_channels (int, optional): teacher map channels; None = as above.
        temp (float): attention temperature. Defaults to 0.5.
        alpha_fgd (float): foreground weight. Defaults to 1e-3.
        beta_fgd (float): background weight. Defaults to 5e-4.
        gamma_fgd (float): attention-imitation weight. Defaults to 5e-4.
        lambda_fgd (float): global (GcBlock) weight. Defaults to 5e-6.
        box_scale (str): image size the GT boxes are scaled by, ``'img_shape'`` (released code) or
            ``'batch_input_shape'``. Defaults to ``'img_shape'``.
        resize_stu (bool): resize the student map to the teacher's if sizes differ. Defaults to True.
    """

    def __init__(self, student_channels: Optional[int] = None, teacher_channels: Optional[int] = None,
                 temp: float = 0.5, alpha_fgd: float = 1e-3, beta_fgd: float = 5e-4, gamma_fgd: float = 5e-4,
                 lambda_fgd: float = 5e-6, box_scale: str = 'img_shape', resize_stu: bool = True):
        self.temp, self.alpha_fgd, self.beta_fgd = temp, alpha_fgd, beta_fgd
        self.gamma_fgd, self.lambda_fgd, self.box_scale = gamma_fgd, lambda_fgd, box_scale
        super().__init__(student_channels, teacher_channels, resize_stu=resize_stu)

    def _build(self, channels: int) -> None:
        self.gc_s = GcBlock(channels)
        self.gc_t = GcBlock(channels)

    def level_terms(self, S: torch.Tensor, T: torch.Tensor, boxes: Sequence[torch.Tensor], shapes):
        """The four terms of one level (already weighted): dict ``fg, bg, attention, global``."""
        n = S.shape[0]
        A_S_t, A_C_t = spatial_attention(T, self.temp), channel_attention(T, self.temp)
        A_S_s, A_C_s = spatial_attention(S, self.temp), channel_attention(S, self.temp)
        M_fg, M_bg = fgd_masks(boxes, shapes, tuple(S.shape[-2:]))
        M_fg, M_bg = M_fg.to(S), M_bg.to(S)
        weight = A_S_t[:, None] * A_C_t[:, :, None, None]                 # (N, C, H, W)
        sq = (T - S) ** 2 * weight
        fg = (sq * M_fg[:, None]).sum() / n
        bg = (sq * M_bg[:, None]).sum() / n
        at = ((A_C_s - A_C_t).abs().sum() + (A_S_s - A_S_t).abs().sum()) / n
        glb = ((self.gc_t(T) - self.gc_s(S)) ** 2).sum() / n
        return dict(fg=self.alpha_fgd * fg, bg=self.beta_fgd * bg, attention=self.gamma_fgd * at,
                    global_=self.lambda_fgd * glb)

    def forward(self, preds_S: Feats, preds_T: Feats, data_samples: Sequence) -> torch.Tensor:
        """Args:
            preds_S: student map ``(N, C_s, H, W)`` or a tuple of per-level maps.
            preds_T: teacher map(s) ``(N, C_t, H, W)``.
            data_samples: the batch's ``DetDataSample`` list (GT boxes in ``gt_instances.bboxes``).
        """
        boxes = gt_boxes(data_samples)
        shapes = image_shapes(data_samples, self.box_scale)
        loss = 0.
        for pred_S, pred_T in as_levels(preds_S, preds_T, 'FGDLoss'):
            S, T = self.prepare(pred_S, pred_T)
            loss = loss + sum(self.level_terms(S, T, [b.to(S.device) for b in boxes], shapes).values())
        return loss
