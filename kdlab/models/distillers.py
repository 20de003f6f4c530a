"""Distillers: ``AutoChannelDistiller`` (channels of losses/connectors read from the necks) and
``DFMSDDistiller`` (carries DFMSD's masking-enhancement settings for ``DFMSDDistill``)."""
from __future__ import annotations

import copy
from typing import Dict, Optional

from mmrazor.models.distillers import ConfigurableDistiller
from mmrazor.registry import MODELS
from torch import nn

from kdlab.core.masks import ME_THRESHOLD
from kdlab.errors import KdlabError, UnknownNameError


def neck_channels(model: nn.Module) -> int:
    """``out_channels`` of a detector's neck (every mmdet FPN output has this width)."""
    neck = getattr(model, 'neck', None)
    if isinstance(neck, nn.Sequential):
        neck = neck[-1]
    channels = getattr(neck, 'out_channels', None)
    if isinstance(channels, (list, tuple)) and channels and all(c == channels[0] for c in channels):
        channels = channels[0]
    if not isinstance(channels, int):
        raise KdlabError(f'cannot read the output channels of the neck of {type(model).__name__} '
                         f'(neck: {type(neck).__name__})',
                         'give the losses/connectors student_channels and teacher_channels explicitly')
    return channels


def _pending(cfg) -> bool:
    return isinstance(cfg, dict) and ('student_channels' in cfg or 'teacher_channels' in cfg) and (
        cfg.get('student_channels') is None or cfg.get('teacher_channels') is None)


@MODELS.register_module()
class AutoChannelDistiller(ConfigurableDistiller):
    """A ``ConfigurableDistiller`` that completes channel counts left ``None`` in its config.

    Losses with ``channels_pending`` (kdlab's ``ChannelSizedLoss``: FGD, AMD, DMKD, DFMSD, DSAMKD) and connectors
    whose ``student_channels`` / ``teacher_channels`` are ``None`` (e.g. mmrazor's ``MGDConnector``) are built
    from the student's and teacher's ``neck.out_channels`` when the algorithm prepares the distiller — after
    both models exist and before the optimizer does, so their parameters train. This is what lets one method
    definition serve the mini zoo (64 channels) and the full-scale detectors (256).
    """

    def build_connectors(self, connectors: Optional[Dict] = None) -> nn.ModuleDict:
        connectors = dict(connectors or {})
        deferred = {k: copy.deepcopy(v) for k, v in connectors.items() if _pending(v)}
        built = super().build_connectors({k: v for k, v in connectors.items() if k not in deferred})
        for name in deferred:
            built[name] = nn.Identity()  # placeholder until the channels are known
        self._deferred_connectors = deferred
        self._student_channels: Optional[int] = None
        return built

    def prepare_from_student(self, model) -> None:
        super().prepare_from_student(model)
        self._student_channels = neck_channels(model)

    def prepare_from_teacher(self, model) -> None:
        super().prepare_from_teacher(model)
        s, t = self._student_channels, neck_channels(model)
        if s is None:
            raise KdlabError('AutoChannelDistiller: prepare_from_student must run before prepare_from_teacher')
        for name, cfg in self._deferred_connectors.items():
            cfg = dict(cfg)
            cfg['student_channels'] = s if cfg.get('student_channels') is None else cfg['student_channels']
            cfg['teacher_channels'] = t if cfg.get('teacher_channels') is None else cfg['teacher_channels']
            cfg.setdefault('_scope_', 'mmrazor')   # built after the algorithm: not under its scope any more
            self.connectors[name] = MODELS.build(cfg)
        self._deferred_connectors = {}
        for loss in self.distill_losses.values():
            if getattr(loss, 'channels_pending', False):
                loss.build_channels(s, t)


#: DFMSD masking-enhancement settings and kdlab's defaults (the paper's values were lost; see docs/methods.md).
ENHANCE_DEFAULTS = dict(
    threshold=ME_THRESHOLD,     # Eq. (4): summed box area / image area; section 4.7 ("less than half")
    noise_sigma=15.0,           # Gaussian noise std in pixel units (0-255); value lost
    noise_prob=0.5,             # "added ... with a certain probability"; value lost
    crop_scale=(0.7, 1.0),      # side scale of the proportional crop; value lost
    boxes='teacher',            # candidate boxes: 'box_teacher' (previous stage, paper), 'teacher', 'gt'
    box_score_thr=0.3,          # a predicted box is a candidate above this score (kdlab)
    adversarial=True,           # section 3.4: adversarial examples (kdlab: one FGSM step)
    adv_eps=2.0,                # FGSM step in pixel units (kdlab)
)
BOX_SOURCES = ('box_teacher', 'teacher', 'gt')


@MODELS.register_module()
class DFMSDDistiller(AutoChannelDistiller):
    """``AutoChannelDistiller`` plus DFMSD's masking-enhancement settings (read by ``DFMSDDistill``).

    Args:
        enhance (dict, optional): ME settings, keys of :data:`ENHANCE_DEFAULTS` (missing keys take the
            defaults); None = no masking enhancement in this stage. Defaults to None.
        **kwargs: as ``ConfigurableDistiller``.
    """

    def __init__(self, enhance: Optional[dict] = None, **kwargs):
        super().__init__(**kwargs)
        if enhance is None:
            self.enhance = None
        else:
            unknown = set(enhance) - set(ENHANCE_DEFAULTS)
            if unknown:
                raise UnknownNameError('masking-enhancement setting', sorted(unknown)[0], ENHANCE_DEFAULTS)
            self.enhance = {**ENHANCE_DEFAULTS, **dict(enhance)}
            if self.enhance['boxes'] not in BOX_SOURCES:
                raise UnknownNameError('candidate box source', self.enhance['boxes'], BOX_SOURCES)
