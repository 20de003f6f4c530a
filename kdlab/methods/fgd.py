"""FGD — Yang et al., CVPR 2022 (github.com/yzd-v/FGD). Loss: :class:`kdlab.models.losses.FGDLoss`.

All five neck outputs (FGD's configs; a two-stage student's four FPN-conv outputs, P2-P5, as FGD's Faster
R-CNN config: ``neck.fpn_convs.0-3``), one ``FGDLoss`` per level; the batch's ``data_samples`` (GT boxes,
image shapes) reach the loss through kdlab's ``DataSamplesRecorder``. Hyper-parameters are FGD's per-detector
presets (:data:`FGD_PRESETS`); the preset of the student's detector comes from its released config
(:mod:`kdlab.methods.official`: RetinaNet, RepPoints, FCOS, GFL, Faster R-CNN). For a student FGD released no
config for (TOOD, Mask / Cascade R-CNN) ``preset='auto'`` is kdlab's choice: RetinaNet's for one-stage and
Faster R-CNN's for two-stage students. Any single value can be overridden. FGD's released configs initialise the student's neck and
heads from the teacher (``init_student=True``): kdlab's default too (``inherit``, kdlab.models.inherit); a
heterogeneous pair (different neck/head types) needs ``distill_config(..., inherit=())``.
FGD's configs hook ``neck.fpn_convs.i.conv`` (before a GN neck's GroupNorm, RepPoints'); so does kdlab by default
(``record='fpn_convs'``; ``'neck'``: the neck's outputs), as MGD (:mod:`kdlab.methods.mgd`).
"""
from __future__ import annotations

from kdlab.errors import UnknownNameError
import kdlab.models  # noqa: F401  (registers the mmrazor components this method uses)
from kdlab.methods import register_method
from kdlab.models.inherit import DEFAULT_INHERIT
from kdlab.methods._common import detector_kind, level_distiller

#: FGD's released configs: (temperature, alpha, beta, gamma, lambda) per student detector.
FGD_PRESETS = {
    'retinanet': dict(temp=0.5, alpha_fgd=1e-3, beta_fgd=5e-4, gamma_fgd=5e-4, lambda_fgd=5e-6),
    'gfl': dict(temp=0.5, alpha_fgd=1e-3, beta_fgd=5e-4, gamma_fgd=5e-4, lambda_fgd=5e-6),
    'faster_rcnn': dict(temp=0.5, alpha_fgd=5e-5, beta_fgd=2.5e-5, gamma_fgd=5e-5, lambda_fgd=5e-7),
    'reppoints': dict(temp=0.5, alpha_fgd=1.6e-3, beta_fgd=8e-4, gamma_fgd=8e-4, lambda_fgd=8e-6),
    'fcos': dict(temp=0.8, alpha_fgd=1.6e-3, beta_fgd=8e-4, gamma_fgd=8e-4, lambda_fgd=8e-6),
}


@register_method('fgd', num_levels=5, two_stage_levels=4, inherit=DEFAULT_INHERIT,
                 defaults=dict(preset='auto', temp=None, alpha_fgd=None, beta_fgd=None, gamma_fgd=None,
                               lambda_fgd=None, box_scale='img_shape', student_kind='auto', record='fpn_convs'))
def fgd(pairs, *, preset, temp, alpha_fgd, beta_fgd, gamma_fgd, lambda_fgd, box_scale, student_kind, record):
    """FGD (``FGDLoss``) on the neck outputs (two-stage: P2-P5) with the GT boxes of the batch; FGD's per-detector presets."""
    if preset == 'auto':
        preset = 'faster_rcnn' if detector_kind(pairs, student_kind) == 'two_stage' else 'retinanet'
    if preset not in FGD_PRESETS:
        raise UnknownNameError('FGD preset', preset, FGD_PRESETS)
    values = dict(FGD_PRESETS[preset])
    for k, v in dict(temp=temp, alpha_fgd=alpha_fgd, beta_fgd=beta_fgd, gamma_fgd=gamma_fgd,
                     lambda_fgd=lambda_fgd).items():
        if v is not None:
            values[k] = v
    return level_distiller(
        pairs, dict(type='FGDLoss', student_channels=None, teacher_channels=None, box_scale=box_scale, **values),
        prefix='fgd', student_recorders=dict(samples=dict(type='DataSamples')),
        inputs=lambda i, p: dict(data_samples=dict(from_student=True, recorder='samples')))
