"""Plumbing shared by kdlab's feature losses: per-level inputs, resizing, teacher detaching, late channels."""
from __future__ import annotations

from typing import List, Optional, Sequence, Tuple, Union

import torch
import torch.nn as nn

from kdlab.core.normalize import check_same_channels, resize_like
from kdlab.errors import ChannelMismatchError, KdlabError

Feats = Union[torch.Tensor, Sequence[torch.Tensor]]


def as_levels(preds_S: Feats, preds_T: Feats, what: str) -> List[Tuple[torch.Tensor, torch.Tensor]]:
    """``(preds_S, preds_T)`` as a list of per-level pairs: a tensor is one level, a tuple/list is several."""
    if isinstance(preds_S, torch.Tensor) != isinstance(preds_T, torch.Tensor):
        raise ChannelMismatchError(f'{what}: one of preds_S / preds_T is a tensor, the other a sequence',
                                   'pass both as one tensor (N, C, H, W) or both as per-level tuples')
    if isinstance(preds_S, torch.Tensor):
        return [(preds_S, preds_T)]
    if len(preds_S) != len(preds_T):
        raise ChannelMismatchError(f'{what}: {len(preds_S)} student levels but {len(preds_T)} teacher levels',
                                   'pair the levels first (kdlab.core.levels.pair_levels)')
    return list(zip(preds_S, preds_T))


def match_level(pred_S: torch.Tensor, pred_T: torch.Tensor, resize_stu: bool = True):
    """Resize the student map to the teacher's (or the teacher to the student's) and detach the teacher.

    The teacher is detached so that no gradient of a distillation loss can reach it, even when a config
    makes the teacher trainable.
    """
    pred_T = pred_T.detach()
    if pred_S.shape[-2:] != pred_T.shape[-2:]:
        if resize_stu:
            pred_S = resize_like(pred_S, pred_T)
        else:
            pred_T = resize_like(pred_T, pred_S)
    return pred_S, pred_T


class ChannelSizedLoss(nn.Module):
    """A loss with trainable parts whose size depends on the channels.

    ``student_channels`` / ``teacher_channels`` may be left ``None`` in a config: kdlab's
    :class:`~kdlab.models.distillers.AutoChannelDistiller` then calls :meth:`build_channels` with the necks'
    ``out_channels`` when the algorithm is built (before the optimizer exists, so the parts are trained).
    When the channels differ, a 1x1 conv ``align`` maps the student to the teacher's channels (MGD, FGD).
    """

    def __init__(self, student_channels: Optional[int] = None, teacher_channels: Optional[int] = None, *,
                 resize_stu: bool = True):
        super().__init__()
        self.resize_stu = resize_stu
        self.student_channels: Optional[int] = None
        self.teacher_channels: Optional[int] = None
        self.align: Optional[nn.Module] = None
        if student_channels is not None and teacher_channels is not None:
            self.build_channels(student_channels, teacher_channels)
        elif (student_channels is None) != (teacher_channels is None):
            raise ChannelMismatchError(
                f'{type(self).__name__}: give both student_channels and teacher_channels, or neither '
                f'(got {student_channels} and {teacher_channels})',
                'leave both None to have AutoChannelDistiller read them from the necks')

    @property
    def channels_pending(self) -> bool:
        return self.teacher_channels is None

    def build_channels(self, student_channels: int, teacher_channels: int) -> None:
        """Create the trainable parts for these channel counts (once)."""
        if not self.channels_pending:
            if (student_channels, teacher_channels) != (self.student_channels, self.teacher_channels):
                raise ChannelMismatchError(
                    f'{type(self).__name__} was built for {self.student_channels} -> {self.teacher_channels} '
                    f'channels, asked again for {student_channels} -> {teacher_channels}')
            return
        self.student_channels, self.teacher_channels = int(student_channels), int(teacher_channels)
        if self.student_channels != self.teacher_channels:
            self.align = nn.Conv2d(self.student_channels, self.teacher_channels, kernel_size=1)
        self._build(self.teacher_channels)

    def _build(self, channels: int) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    def prepare(self, pred_S: torch.Tensor, pred_T: torch.Tensor):
        """Resized, aligned student map and detached teacher map of one level, same shape ``(N, C, H, W)``."""
        if self.channels_pending:
            raise KdlabError(
                f'{type(self).__name__} does not know its channels yet (student_channels/teacher_channels '
                'are None)', 'set them in the config, or use distiller type AutoChannelDistiller (kdlab.methods '
                'does), which reads them from the necks')
        if pred_S.shape[1] != self.student_channels or pred_T.shape[1] != self.teacher_channels:
            raise ChannelMismatchError(
                f'{type(self).__name__} was built for {self.student_channels} -> {self.teacher_channels} '
                f'channels but got {pred_S.shape[1]} -> {pred_T.shape[1]}',
                'check student_channels/teacher_channels against the necks')
        pred_S, pred_T = match_level(pred_S, pred_T, self.resize_stu)
        if self.align is not None:
            pred_S = self.align(pred_S)
        check_same_channels(pred_S, pred_T, type(self).__name__)
        return pred_S, pred_T
