"""CrossKD's prediction-mimicking loss — Wang et al., "CrossKD: Cross-Head Knowledge Distillation for Dense
Object Detection", CVPR 2024 (https://arxiv.org/abs/2306.11369, code: https://github.com/jbwang1997/CrossKD).

The cross-head predictions ``p^x`` (the student's head feature run through the rest of the frozen teacher head,
see :mod:`kdlab.models.crosskd`) mimic the teacher's predictions ``p^t``:

* classification — quality focal loss with the teacher's sigmoid scores as soft targets (beta = 1):
  ``L_cls = sum_{i,c} w_i BCE(x_ic, sigma(t_ic)) |sigma(x_ic) - sigma(t_ic)|^beta / A``;
* regression — on the decoded boxes, weighted by the teacher's confidence ``r_i = sigma(max_c t_ic)``
  (0 where the GT assignment ignores the prior): ``L_reg = sum_i r_i (1 - GIoU(b^x_i, b^t_i)) / A_reg``
  (GIoU for RetinaNet and GFL, ``-ln IoU`` for FCOS);
* for GFL also the box-side distributions:
  ``L_kl = sum_i r_i / 4 sum_{side} T^2 KL(softmax(t/T) || softmax(x/T)) / A_reg``.

``A`` is the detector's own normaliser (positive anchors for RetinaNet / GFL, the centerness-target sum for
FCOS) and ``A_reg`` is ``A`` (RetinaNet, FCOS) or ``sum_i r_i`` (GFL) — the released configs' choices. All
terms are zero when ``p^x = p^t`` (the QFL term by its focal factor).
"""
from __future__ import annotations

from typing import Dict, Optional, Union

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from mmrazor.registry import MODELS

from kdlab.errors import KdlabError

REG_LOSSES = ('giou', 'iou')


def kd_quality_focal_loss(pred: Tensor, soft_target: Tensor, beta: float = 1.0) -> Tensor:
    """Elementwise QFL with soft targets: ``BCE(pred, sigma(t)) * |sigma(pred) - sigma(t)|^beta``.

    ``pred``, ``soft_target``: logits of the same shape; the target is detached.
    """
    target = soft_target.detach().sigmoid()
    bce = F.binary_cross_entropy_with_logits(pred, target, reduction='none')
    return bce * (pred.sigmoid() - target).abs().pow(beta)


def distribution_kl(pred: Tensor, soft_target: Tensor, T: float = 1.0) -> Tensor:
    """``T^2 sum_bins KL(softmax(t/T) || softmax(p/T))`` per row: ``(M, bins) -> (M,)``; target detached."""
    target = F.softmax(soft_target.detach() / T, dim=-1)
    return F.kl_div(F.log_softmax(pred / T, dim=-1), target, reduction='none').sum(-1) * T * T


def box_loss(pred: Tensor, target: Tensor, kind: str) -> Tensor:
    """Per-box ``1 - GIoU`` (``'giou'``) or ``-ln IoU`` (``'iou'``, mmdet's IoULoss 'log' mode); xyxy boxes."""
    from mmdet.structures.bbox import bbox_overlaps
    if kind == 'giou':
        return 1 - bbox_overlaps(pred, target, mode='giou', is_aligned=True, eps=1e-7)
    return -bbox_overlaps(pred, target, is_aligned=True, eps=1e-6).clamp(min=1e-6).log()


@MODELS.register_module()
class CrossKDLoss(nn.Module):
    """CrossKD's KD terms on flattened predictions (see the module docstring for the equations).

    Args:
        cls_weight (float): weight of the QFL term. Released configs: 1.0 (RetinaNet, GFL), 0.4 (FCOS).
        beta (float): QFL focusing exponent. Released configs: 1. Defaults to 1.0.
        reg_loss (str): ``'giou'`` (RetinaNet, GFL) or ``'iou'`` (FCOS). Defaults to ``'giou'``.
        reg_weight (float): weight of the box term. Released: 1.0 (RetinaNet), 2.0 (GFL), 0.75 (FCOS).
        kl_weight (float): weight of the distribution KL (GFL only; released: 3.0). Defaults to 0.
        kl_T (float): KL temperature (released: 1). Defaults to 1.0.
    """

    def __init__(self, cls_weight: float = 1.0, beta: float = 1.0, reg_loss: str = 'giou',
                 reg_weight: float = 1.0, kl_weight: float = 0.0, kl_T: float = 1.0) -> None:
        super().__init__()
        if reg_loss not in REG_LOSSES:
            raise KdlabError(f'CrossKDLoss: unknown reg_loss {reg_loss!r}', f'use one of {REG_LOSSES}')
        self.cls_weight = cls_weight
        self.beta = beta
        self.reg_loss = reg_loss
        self.reg_weight = reg_weight
        self.kl_weight = kl_weight
        self.kl_T = kl_T

    def forward(self, cls_x: Tensor, cls_t: Tensor, boxes_x: Tensor, boxes_t: Tensor, *, avg_factor: float,
                cls_weights: Optional[Tensor] = None, reg_avg_factor: Union[None, float, str] = None,
                dist_x: Optional[Tensor] = None, dist_t: Optional[Tensor] = None) -> Dict[str, Tensor]:
        """
        Args:
            cls_x, cls_t: ``(M, C)`` cross-head and teacher classification logits.
            boxes_x, boxes_t: ``(M, 4)`` decoded xyxy boxes (teacher's detached).
            avg_factor: the normaliser ``A``.
            cls_weights: ``(M,)`` per-prior weights (the GT assignment's label weights); None: all ones.
            reg_avg_factor: ``A_reg``: a number, None (``A``) or ``'weights'`` (``sum_i r_i``, GFL).
            dist_x, dist_t: ``(M, 4, bins)`` box-side distribution logits (GFL), for the KL term.

        Returns:
            ``loss_cls_kd``, ``loss_reg_kd`` and, with ``kl_weight > 0``, ``loss_kl_kd``.
        """
        w = torch.ones_like(cls_t[:, 0]) if cls_weights is None else cls_weights.to(cls_t.dtype)
        qfl = kd_quality_focal_loss(cls_x, cls_t, self.beta) * w[:, None]
        losses = dict(loss_cls_kd=self.cls_weight * qfl.sum() / max(float(avg_factor), 1e-6))

        with torch.no_grad():   # the teacher's confidence, zero where the assignment ignores the prior
            r = cls_t.max(dim=1).values.sigmoid() * (w > 0).to(cls_t.dtype)
        if reg_avg_factor == 'weights':
            a_reg = max(float(r.sum()), 1e-6)
        else:
            a_reg = max(float(avg_factor if reg_avg_factor is None else reg_avg_factor), 1e-6)
        losses['loss_reg_kd'] = self.reg_weight * (
            (box_loss(boxes_x, boxes_t.detach(), self.reg_loss) * r).sum() / a_reg)
        if self.kl_weight > 0:
            if dist_x is None or dist_t is None:
                raise KdlabError('CrossKDLoss: kl_weight > 0 needs dist_x and dist_t (GFL distributions)')
            kl = distribution_kl(dist_x.flatten(0, 1), dist_t.flatten(0, 1), self.kl_T).view(-1, 4).mean(-1)
            losses['loss_kl_kd'] = self.kl_weight * (kl * r).sum() / a_reg
        return losses
