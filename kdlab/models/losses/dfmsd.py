"""DFMSD — Zhang et al., "DFMSD: Dual Feature Masking Stage-wise Knowledge Distillation for Object Detection",
arXiv 2407.13147 (2024). No public code; the paper's equations were lost in kdlab's copy (prose survives).
This is the per-level loss of one stage; stage-wise adaptation learning (SAL) is a chain of such stages
(:mod:`kdlab.methods.dfmsd`) and masking enhancement (ME) is an algorithm (``DFMSDDistill``) that records a
second, augmented pass of teacher and student and maps it to ``preds_S_enh`` / ``preds_T_enh`` here.

Per level, with ``S`` the (aligned) student map and ``T`` the teacher map (DMKD's dual masked reconstruction
``L_dm``, see :mod:`kdlab.models.losses.dmkd`):

    L = alpha * L_dm(S, T)                          Eq. (7): the stage's dual-masking distillation loss
      + beta  * L_dm(S_enh, T_enh)                  Eq. (8): the same on the ME-augmented image (last stage)
      + sfa_weight * MSE(z(S), z(T)) / 2            Eq. (5): semantic feature alignment (SFA, Pearson / PKD)

From the paper: the three terms and what they compare; SFA standardises both maps to zero mean and unit
variance and minimises their MSE (PKD's loss, :func:`kdlab.core.normalize.zscore_mse`), on the levels the
ablation switches (Table 9, best: the first three, "P1-P3"); the enhanced masks come from the stronger
teacher's features of the augmented image.

kdlab's interpretation (each a parameter):

* ``alpha`` / ``beta`` — the paper's best are "5.0 x 10^?" and "2.5 x 10^?" (Fig. 10; exponents and which
  symbol is which lost). kdlab reads alpha as Eq. (7)'s weight and beta as Eq. (8)'s, both on MGD's
  normalisation (sum over C, H, W, mean over the batch), and picks 10^-5 for both: alpha = 5.0e-5,
  beta = 2.5e-5, the order of MGD's 2e-5 that DMKD builds on.
* Eq. (8)'s normaliser is "the total number of elements in the feature map at layer l": with a weight of
  order 1e-5 that would make the term vanish, so kdlab normalises it like Eq. (7) by default
  (``enh_normalize='batch'``); ``'elements'`` divides by the number of elements instead.
* SFA enters with weight 1 (``sfa_weight``): the paper names only alpha and beta as trade-offs.
* ``sfa`` may be a bool (this level, or every level of a tuple input) or the tuple indices to align.
"""
from __future__ import annotations

from typing import Optional, Sequence, Union

import torch
from mmrazor.registry import MODELS

from kdlab.core.attention import DEFAULT_TEMPERATURE
from kdlab.core.normalize import zscore_mse
from kdlab.errors import UnknownNameError
from kdlab.models.losses._base import Feats, as_levels
from kdlab.models.losses.dmkd import DMKDLoss

ENH_NORMALIZE = ('batch', 'elements')


@MODELS.register_module()
class DFMSDLoss(DMKDLoss):
    """DFMSD's per-level loss: DMKD dual masked reconstruction (Eq. 7) + the same on ME data (Eq. 8) + SFA.

    Args:
        student_channels (int, optional): student channels; None = filled in by ``AutoChannelDistiller``.
        teacher_channels (int, optional): teacher channels; None = as above.
        alpha (float): weight of Eq. (7). Defaults to 5.0e-5.
        beta (float): weight of Eq. (8) (used only when enhanced maps are given). Defaults to 2.5e-5.
        sfa (bool | Sequence[int]): apply SFA on this level (bool) or on these indices of a tuple input.
            Defaults to True.
        sfa_weight (float): weight of the SFA term. Defaults to 1.0.
        enh_normalize (str): Eq. (8)'s normaliser, ``'batch'`` or ``'elements'``. Defaults to 'batch'.
        mask_ratio, channel_mask_ratio, temperature, mask_mode, se_reduction, resize_stu: as ``DMKDLoss``.
    """

    def __init__(self, student_channels: Optional[int] = None, teacher_channels: Optional[int] = None,
                 alpha: float = 5.0e-5, beta: float = 2.5e-5, sfa: Union[bool, Sequence[int]] = True,
                 sfa_weight: float = 1.0, enh_normalize: str = 'batch', mask_ratio: float = 0.65,
                 channel_mask_ratio: Optional[float] = None, temperature: float = DEFAULT_TEMPERATURE,
                 mask_mode: str = 'top', se_reduction: int = 16, resize_stu: bool = True):
        if enh_normalize not in ENH_NORMALIZE:
            raise UnknownNameError('enh_normalize', enh_normalize, ENH_NORMALIZE)
        self.beta, self.sfa, self.sfa_weight, self.enh_normalize = beta, sfa, sfa_weight, enh_normalize
        super().__init__(student_channels, teacher_channels, alpha=alpha, mask_ratio=mask_ratio,
                         channel_mask_ratio=channel_mask_ratio, temperature=temperature, mask_mode=mask_mode,
                         se_reduction=se_reduction, resize_stu=resize_stu)

    def _sfa_on(self, index: int) -> bool:
        if isinstance(self.sfa, bool):
            return self.sfa
        return index in tuple(int(i) for i in self.sfa)

    def terms(self, preds_S: Feats, preds_T: Feats, preds_S_enh: Optional[Feats] = None,
              preds_T_enh: Optional[Feats] = None) -> dict:
        """The weighted terms summed over levels: ``masked`` (Eq. 7), ``enhanced`` (Eq. 8), ``sfa`` (Eq. 5)."""
        out = dict(masked=0., enhanced=0., sfa=0.)
        for i, (pred_S, pred_T) in enumerate(as_levels(preds_S, preds_T, 'DFMSDLoss')):
            S, T = self.prepare(pred_S, pred_T)
            out['masked'] = out['masked'] + self.alpha * self.reconstruction_loss(S, T)
            if self._sfa_on(i):
                out['sfa'] = out['sfa'] + self.sfa_weight * zscore_mse(S, T)
        if (preds_S_enh is None) != (preds_T_enh is None):
            raise ValueError('DFMSDLoss: give both preds_S_enh and preds_T_enh, or neither')
        if preds_S_enh is not None:
            for pred_S, pred_T in as_levels(preds_S_enh, preds_T_enh, 'DFMSDLoss (enhanced)'):
                S, T = self.prepare(pred_S, pred_T)
                out['enhanced'] = out['enhanced'] + self.beta * self.reconstruction_loss(
                    S, T, self.enh_normalize)
        return out

    def forward(self, preds_S: Feats, preds_T: Feats, preds_S_enh: Optional[Feats] = None,
                preds_T_enh: Optional[Feats] = None) -> torch.Tensor:
        """Args:
            preds_S: student map ``(N, C_s, H, W)`` of the original image, or a tuple of levels.
            preds_T: teacher map(s) ``(N, C_t, H, W)``.
            preds_S_enh: student map(s) of the ME-augmented image (optional; Eq. 8 only when given).
            preds_T_enh: teacher map(s) of the ME-augmented image (optional).
        """
        return sum(self.terms(preds_S, preds_T, preds_S_enh, preds_T_enh).values())
