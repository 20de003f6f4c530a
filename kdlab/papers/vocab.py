"""Controlled vocabularies of the paper registry (``papers/``).

One place for every name a registry file may use: detectors, backbones, schedules, methods, metrics, datasets
and each method's switches. The validator (:mod:`kdlab.papers.schema`) checks files against these; the display
helpers turn the ids into the names papers print. Adding a detector or a method is adding a line here.
"""
from __future__ import annotations

from typing import Dict, Tuple

# mmdet family ids -> the name papers print.
DETECTORS: Dict[str, str] = {
    'retinanet': 'RetinaNet',
    'fcos': 'FCOS',
    'gfl': 'GFL',
    'reppoints': 'RepPoints',
    'tood': 'TOOD',
    'atss': 'ATSS',
    'faster_rcnn': 'Faster R-CNN',
    'mask_rcnn': 'Mask R-CNN',
    'cascade_rcnn': 'Cascade R-CNN',
    'cascade_mask_rcnn': 'Cascade Mask R-CNN',
    'solov2': 'SOLOv2',
    'condinst': 'CondInst',
}

# backbone id -> (printed name, family). The family groups variants that papers print under one name
# (ResNeXt-101 with or without DCN; Swin of a size a paper does not state) for the cross-paper view.
BACKBONES: Dict[str, Tuple[str, str]] = {
    'r18': ('R18', 'r18'),
    'r34': ('R34', 'r34'),
    'r50': ('R50', 'r50'),
    'r101': ('R101', 'r101'),
    'r101_dcn': ('R101-DCN', 'r101'),
    'x101': ('X101', 'x101'),
    'x101_dcn': ('X101-DCN', 'x101'),
    'swin': ('Swin', 'swin'),          # a Swin whose size the source does not state
    'swin_t': ('Swin-T', 'swin'),
    'swin_s': ('Swin-S', 'swin'),
    'swin_b': ('Swin-B', 'swin'),
    'mobilenet_v2': ('MobileNetV2', 'mobilenet_v2'),
}

# Training schedules. ``_ms``: multi-scale training. Detectron2's "1x" is multi-scale, hence ``1x_ms``.
SCHEDULES: Dict[str, str] = {
    '1x': '12 epochs, single scale',
    '2x': '24 epochs, single scale',
    '3x': '36 epochs, single scale',
    '1x_ms': '12 epochs (or Detectron2 90k iterations), multi-scale',
    '2x_ms': '24 epochs, multi-scale',
    '3x_ms': '36 epochs, multi-scale',
}

# Method ids: ``baseline`` is the student trained alone; the others are papers/ ids where one exists.
METHODS: Dict[str, str] = {
    'baseline': 'Baseline',
    'pkd': 'PKD',
    'dcsf_kd': 'DCSF-KD',
    'dfmsd': 'DFMSD',
    'dsamkd': 'DSAMKD',
    'icd': 'ICD',
    'mgd': 'MGD',
    'fgd': 'FGD',
    'amd': 'AMD',
    'dmkd': 'DMKD',
    'crosskd': 'CrossKD',
    'fkd': 'FKD',
    'frs': 'FRS',
    'gid': 'GID',
    'freekd': 'FreeKD',
}

# Box metrics, in the order every DataFrame shows them (COCO AP/AR at the printed precision, in percent).
METRICS: Tuple[str, ...] = ('mAP', 'AP50', 'AP75', 'APs', 'APm', 'APl', 'mAR', 'ARs', 'ARm', 'ARl')
# Other metrics a table may report; they get a DataFrame column only in tables that report them.
EXTRA_METRICS: Dict[str, str] = {'mask_mAP': 'mask AP'}
ALL_METRICS: Tuple[str, ...] = METRICS + tuple(EXTRA_METRICS)

DATASETS: Dict[str, str] = {'coco_val2017': 'COCO 2017 val (5k images; = 2014 minival)'}

FPN_LEVELS: Tuple[str, ...] = ('P1', 'P2', 'P3', 'P4', 'P5', 'P6', 'P7')

# Each method's switches and the kind of value each takes. Methods not listed take no switches.
#   bool   - true / false / null (null: printed but lost, unknown)
#   number - a number or null
#   stages - one bool for all stages, a list with one bool (or null) per teacher of the chain, 'last', or null
#   levels - a list of FPN_LEVELS, or null
SWITCHES: Dict[str, Dict[str, str]] = {
    'dfmsd': {'sal': 'bool', 'me': 'stages', 'sfa': 'bool', 'sfa_levels': 'levels', 'adversarial': 'bool'},
    'dcsf_kd': {'alpha': 'number', 'alpha_released_config': 'number'},
    'pkd': {'loss_weight': 'number'},
    'icd': {'lambda': 'number'},
}

# Keys a teacher / student entry may carry besides detector, backbone, schedule and (teachers only) metrics.
SPEC_KEYS: Tuple[str, ...] = ('detector', 'backbone', 'schedule')
SPEC_OPTIONAL_TEXT: Tuple[str, ...] = ('label', 'variant', 'config', 'checkpoint', 'note')
STUDENT_OPTIONAL_BOOL: Tuple[str, ...] = ('multiscale', 'inherit')

# Row fields an ``interpreted`` note may point at.
INTERPRETABLE_FIELDS: Tuple[str, ...] = ('teachers', 'student', 'switches', 'metrics')


def detector_name(detector_id) -> str:
    """``'faster_rcnn'`` -> ``'Faster R-CNN'``; ``None`` (not stated by the source) -> ``'?'``."""
    return '?' if detector_id is None else DETECTORS.get(detector_id, detector_id)


def backbone_name(backbone_id) -> str:
    """``'x101_dcn'`` -> ``'X101-DCN'``; ``None`` -> ``'?'``."""
    return '?' if backbone_id is None else BACKBONES.get(backbone_id, (backbone_id, backbone_id))[0]


def backbone_family(backbone_id):
    """``'x101_dcn'`` -> ``'x101'``, ``'swin_s'`` -> ``'swin'``; ``None`` stays ``None``."""
    return None if backbone_id is None else BACKBONES.get(backbone_id, (backbone_id, backbone_id))[1]


def method_name(method_id) -> str:
    """``'dcsf_kd'`` -> ``'DCSF-KD'``."""
    return METHODS.get(method_id, method_id)
