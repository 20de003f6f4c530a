"""ICD's distillation loss — Kang et al., "Instance-Conditional Knowledge Distillation for Object Detection",
NeurIPS 2021 (https://arxiv.org/abs/2110.12724, code: https://github.com/megvii-research/ICD).

The decoder of :mod:`kdlab.models.icd` gives, per attention head ``j``, the teacher's attention
logits ``A_j(q, s)`` of every real instance ``q`` over every key position ``s`` (all FPN levels concatenated),
the teacher's value projection ``V^T`` and the student's value projection ``V^S``. The loss is

    m_j(s)  = sum_{q real} softmax_s(A_j(q, .) / tau)(s)                   (instance-conditional mask, detached)
    L       = 1/(N H d) sum_{n, j, c} [ sum_s m_j(s) (LN(V^S)_{n,s,j,c} - LN(V^T)_{n,s,j,c})^2 / sum_s m_j(s) ]

with ``LN`` a LayerNorm over the ``d`` channels of one head, without affine parameters, and ``V^T`` detached.
Because each softmax row sums to one, ``sum_s m_j(s)`` is the image's number of real instances: every instance
contributes one unit of attention mass, spread where the teacher's decoder looks for it. An image without
instances has ``m = 0`` and contributes zero but still counts in the mean over ``N`` (as in the released code,
``mimic_loss`` with ``LOSS_FORM='mse'``). Total objective: ``L_det + L_aux + lambda * L`` with ``lambda = 8``
(one-stage) or ``3`` (two-stage): ``loss_weight`` here.
"""
from __future__ import annotations

from typing import Optional

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from mmrazor.registry import MODELS


def instance_mask(logits: Tensor, real: Tensor, temperature: float = 1.0) -> Tensor:
    """``m_j(s) = sum_{q real} softmax_s(A_j(q, s) / tau)``.

    Args:
        logits: ``(N, heads, Q, S)`` attention logits of the teacher-side decoder; ``-inf`` at padded keys.
        real: ``(N, Q)`` 1 for real (ground-truth) instances, 0 for fake or padding queries.
        temperature: ``tau``, the softmax temperature (released code: 1).

    Returns:
        ``(N, heads, S)`` mask, without gradient.
    """
    with torch.no_grad():
        keep = real.bool().any(dim=0)            # queries real in some image (released code: ``max_ele``)
        logits, real = logits[:, :, keep], real[:, keep]
        attn = (logits / temperature).softmax(dim=-1)
        # a query row that is padding everywhere would be NaN after softmax; it is never real, zero it
        attn = torch.nan_to_num(attn, nan=0.0)
        return (attn * real[:, None, :, None].to(attn.dtype)).sum(dim=2)


@MODELS.register_module()
class ICDLoss(nn.Module):
    """Instance-conditional masked value-space loss of ICD (see the module docstring for the equation).

    Args:
        loss_weight (float): ``lambda``. Paper: 8 for one-stage, 3 for two-stage students. Defaults to 8.0.
        temperature (float): softmax temperature ``tau`` of the mask. Released code: 1.0. Defaults to 1.0.
        ln_eps (float): epsilon of the per-head LayerNorm (PyTorch release: torch's default 1e-5).
            Defaults to 1e-5.
        eps (float): lower clamp of ``sum_s m`` (released code: 1e-6). Defaults to 1e-6.
    """

    def __init__(self, loss_weight: float = 8.0, temperature: float = 1.0, ln_eps: float = 1e-5,
                 eps: float = 1e-6) -> None:
        super().__init__()
        self.loss_weight = loss_weight
        self.temperature = temperature
        self.ln_eps = ln_eps
        self.eps = eps

    def forward(self, value_S: Tensor, value_T: Tensor, logits_T: Tensor, real: Tensor,
                mask: Optional[Tensor] = None) -> Tensor:
        """
        Args:
            value_S: ``(N, S, heads, d)`` student value projection ``V^S``.
            value_T: ``(N, S, heads, d)`` teacher value projection ``V^T`` (detached here).
            logits_T: ``(N, heads, Q, S)`` teacher-side attention logits of the queries.
            real: ``(N, Q)`` 1 for real instances.
            mask: optional precomputed ``(N, heads, S)`` mask (then ``logits_T`` / ``real`` are ignored).

        Returns:
            The weighted scalar loss ``lambda * L``.
        """
        if value_S.shape != value_T.shape:
            raise ValueError(f'ICDLoss: student values {tuple(value_S.shape)} and teacher values '
                             f'{tuple(value_T.shape)} differ; both must be (N, S, heads, d) over the same key '
                             'positions (same FPN levels and strides)')
        d = value_S.shape[-1]
        s_hat = F.layer_norm(value_S, (d,), eps=self.ln_eps)
        t_hat = F.layer_norm(value_T.detach(), (d,), eps=self.ln_eps)
        m = instance_mask(logits_T, real, self.temperature) if mask is None else mask.detach()
        sq = (s_hat - t_hat).pow(2).permute(0, 2, 3, 1)               # (N, heads, d, S)
        per_channel = (sq * m[:, :, None, :]).sum(-1) / m.sum(-1, keepdim=True).clamp(min=self.eps)
        return self.loss_weight * per_channel.mean()
