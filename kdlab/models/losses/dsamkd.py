"""DSAMKD — Zhang et al., "Dual Scale-aware Adaptive Masked Knowledge Distillation for Object Detection",
arXiv 2501.07101 v1 (Jan 2025; v2 renamed "SAMKD"). Only the abstract is public: no equations, no
hyper-parameters, no code. Everything below the abstract's two sentences is **kdlab's interpretation**, built
on the same attention/masking primitives as DMKD (the same lab's previous method, which DSAMKD reports beating).

From the abstract: (1) "scale-aware feature masking by performing feature distillation across various
scales, such that the object-aware locality is encoded", instead of global masking on single-scale maps;
(2) "a masking logits distillation scheme in which logits difference between teacher and student networks is
utilized to guide the distillation process". Secondary sources: multi-scale max-pooling of teacher/student
features builds the scale-aware maps.

kdlab's reading, per FPN level (``S`` aligned student map, ``T`` teacher map, ``z`` classification logits):

    feature part:  L_f = alpha * sum over s in scales of L_dm(P_s(S), P_s(T))
        P_s = max-pool with window = stride = s (kdlab.core.attention.scale_pyramid; s = 1 is the map itself),
        L_dm = DMKD's dual (spatial + channel) attention-masked reconstruction, with the masks computed from
        the pooled teacher map at each scale and one set of generation/SE blocks shared by the scales
        (convolutions do not care about resolution). Coarser scales have fewer cells and weigh less.
    logits part:   D = mean_k |sigmoid(z_T) - sigmoid(z_S)|                       (N, H, W), detached
                   M = 1 on the ``logit_mask_ratio`` of positions where D is largest   (masked distillation)
                   L_l = logit_weight * tau^2 * sum_{n,h,w} M * sum_k KL(Bern(sigmoid(z_T/tau)) ||
                         Bern(sigmoid(z_S/tau))) / sum M
    L = L_f + L_l            (L_l only when the logits are mapped to the loss)

"Dual" is read both ways the title allows: spatial + channel masks (as DMKD) and feature + logits terms.
Logits are the dense head's classification outputs (RetinaNet/RepPoints ``bbox_head``; for two-stage pairs the
``rpn_head`` objectness) recorded by ``ModuleOutputs`` recorders; ``FpnHeadTeacherDistill`` runs the teacher's
head. Teacher and student logits must have the same channels (same classes and anchors per position).

Defaults (all chosen by kdlab): scales (1, 2, 4); alpha and mask ratios MGD's (2e-5 / 0.65 one-stage);
temperature 0.5; logit_mask_ratio 0.5, logit_temperature 1, logit_weight 1.
"""
from __future__ import annotations

from typing import Optional, Sequence

import torch
import torch.nn.functional as F
from mmrazor.registry import MODELS

from kdlab.core.attention import DEFAULT_TEMPERATURE, scale_pyramid
from kdlab.core.masks import difference_select_mask, logits_difference
from kdlab.core.normalize import resize_like
from kdlab.errors import ChannelMismatchError
from kdlab.models.losses._base import Feats, as_levels
from kdlab.models.losses.dmkd import DMKDLoss


def bernoulli_kl(logits_S: torch.Tensor, logits_T: torch.Tensor, tau: float = 1.0) -> torch.Tensor:
    """``sum_k KL(Bern(sigmoid(z_T/tau)) || Bern(sigmoid(z_S/tau)))`` per position: ``(N, K, H, W) -> (N, H, W)``.

    Zero exactly where the student's logits equal the teacher's.
    """
    zs, zt = logits_S / tau, logits_T / tau
    p_t = torch.sigmoid(zt)
    kl = (p_t * (F.logsigmoid(zt) - F.logsigmoid(zs))
          + (1 - p_t) * (F.logsigmoid(-zt) - F.logsigmoid(-zs)))
    return kl.sum(dim=1)


@MODELS.register_module()
class DSAMKDLoss(DMKDLoss):
    """DSAMKD (kdlab's interpretation): scale-aware dual masked feature distillation + masked logits distillation.

    Args:
        student_channels (int, optional): student channels; None = filled in by ``AutoChannelDistiller``.
        teacher_channels (int, optional): teacher channels; None = as above.
        alpha (float): weight of the feature part. Defaults to 2e-5.
        scales (Sequence[int]): max-pool windows of the scale pyramid. Defaults to (1, 2, 4).
        logit_weight (float): weight of the logits part. Defaults to 1.0.
        logit_mask_ratio (float): fraction of positions (largest teacher-student difference) distilled.
            Defaults to 0.5.
        logit_temperature (float): tau of the logits KL. Defaults to 1.0.
        mask_ratio, channel_mask_ratio, temperature, mask_mode, se_reduction, resize_stu: as ``DMKDLoss``.
    """

    def __init__(self, student_channels: Optional[int] = None, teacher_channels: Optional[int] = None,
                 alpha: float = 2e-5, scales: Sequence[int] = (1, 2, 4), logit_weight: float = 1.0,
                 logit_mask_ratio: float = 0.5, logit_temperature: float = 1.0, mask_ratio: float = 0.65,
                 channel_mask_ratio: Optional[float] = None, temperature: float = DEFAULT_TEMPERATURE,
                 mask_mode: str = 'top', se_reduction: int = 16, resize_stu: bool = True):
        self.scales = tuple(int(s) for s in scales)
        self.logit_weight, self.logit_mask_ratio = logit_weight, logit_mask_ratio
        self.logit_temperature = logit_temperature
        super().__init__(student_channels, teacher_channels, alpha=alpha, mask_ratio=mask_ratio,
                         channel_mask_ratio=channel_mask_ratio, temperature=temperature, mask_mode=mask_mode,
                         se_reduction=se_reduction, resize_stu=resize_stu)

    def feature_loss(self, S: torch.Tensor, T: torch.Tensor) -> torch.Tensor:
        """Unweighted ``sum_s L_dm(P_s(S), P_s(T))`` of one level (aligned, same-size maps)."""
        loss = 0.
        for s_s, t_s in zip(scale_pyramid(S, self.scales), scale_pyramid(T, self.scales)):
            loss = loss + self.reconstruction_loss(s_s, t_s)
        return loss

    def logit_loss(self, logits_S: torch.Tensor, logits_T: torch.Tensor) -> torch.Tensor:
        """Unweighted masked logits loss of one level, ``(N, K, H, W)`` logits (student resized if needed)."""
        logits_T = logits_T.detach()
        if logits_S.shape[1] != logits_T.shape[1]:
            raise ChannelMismatchError(
                f'DSAMKDLoss: student logits have {logits_S.shape[1]} channels, teacher {logits_T.shape[1]} '
                '(classes x anchors differ)', 'distil features only: logits=False in kdlab.methods.dsamkd '
                '(or logit_weight=0 and no logits mapping)')
        logits_S = resize_like(logits_S, logits_T)
        mask = difference_select_mask(logits_difference(logits_S.detach(), logits_T), self.logit_mask_ratio)
        kl = bernoulli_kl(logits_S, logits_T, self.logit_temperature)            # (N, H, W)
        return self.logit_temperature ** 2 * (mask[:, 0] * kl).sum() / mask.sum().clamp_min(1.0)

    def terms(self, preds_S: Feats, preds_T: Feats, logits_S: Optional[Feats] = None,
              logits_T: Optional[Feats] = None) -> dict:
        """The weighted parts summed over levels: ``feature`` and ``logits``."""
        out = dict(feature=0., logits=0.)
        for pred_S, pred_T in as_levels(preds_S, preds_T, 'DSAMKDLoss'):
            S, T = self.prepare(pred_S, pred_T)
            out['feature'] = out['feature'] + self.alpha * self.feature_loss(S, T)
        if (logits_S is None) != (logits_T is None):
            raise ValueError('DSAMKDLoss: give both logits_S and logits_T, or neither')
        if logits_S is not None:
            for z_s, z_t in as_levels(logits_S, logits_T, 'DSAMKDLoss (logits)'):
                out['logits'] = out['logits'] + self.logit_weight * self.logit_loss(z_s, z_t)
        return out

    def forward(self, preds_S: Feats, preds_T: Feats, logits_S: Optional[Feats] = None,
                logits_T: Optional[Feats] = None) -> torch.Tensor:
        """Args:
            preds_S: student FPN map ``(N, C_s, H, W)`` or a tuple of levels.
            preds_T: teacher FPN map(s) ``(N, C_t, H, W)``.
            logits_S: student classification logits ``(N, K, H', W')`` of the same level(s) (optional).
            logits_T: teacher classification logits, same channels (optional).
        """
        return sum(self.terms(preds_S, preds_T, logits_S, logits_T).values())
