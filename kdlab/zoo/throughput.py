"""GPU-hours of a full-scale run before it starts: a per-detector throughput estimate times the images its
schedule sees.

Anchor: mmdet's model zoo trains RetinaNet-R50 1x at 0.205 s per iteration with 2 images per V100
(``ANCHOR_S_PER_ITER``, ``ANCHOR_IMAGES``: 9.8 images/s per GPU). The other detectors are scaled from it by the
inference time the model zoo's metafiles report for each config (``inference time (ms/im)``, V100, batch 1), an
estimate that assumes training cost follows inference cost; where a config lists none, the same detector at
another schedule, else the family's R50 (the anchor where the family lists none) times the mean backbone
ratio of the families that list both. A distillation run adds its teachers' forward passes, each taken as a third of a training step (a
forward pass without the backward), and a released teacher's evaluation costs its inference time over COCO
val2017. All numbers are estimates for planning (V100-hours), never measurements.
"""
from __future__ import annotations

import functools
from statistics import mean
from typing import Dict, Optional

ANCHOR_S_PER_ITER, ANCHOR_IMAGES = 0.205, 2          # mmdet model zoo, retinanet_r50_fpn_1x_coco, V100
ANCHOR_INFER_MS = 52.63                              # its metafile's inference time (ms/im)
COCO_TRAIN, COCO_VAL = 118_287, 5_000
FORWARD_SHARE = 1 / 3                                # a teacher's forward pass / a training step
SCHEDULE_EPOCHS = {'1x': 12, '2x': 24, '2x_ms': 24, '3x': 36, '3x_ms': 36, '20e': 20}


@functools.lru_cache(maxsize=1)
def _inference_ms() -> Dict[str, float]:
    """mmdet::<config> -> inference time (ms/im) from the mmdet metafiles (kdlab.zoo.released.metafile_models)."""
    from kdlab.zoo.released import metafile_models
    out = {}
    for key, m, _ in metafile_models():
        t = (m.get('Metadata') or {}).get('inference time (ms/im)')
        value = t[0].get('value') if isinstance(t, list) and t and isinstance(t[0], dict) else t
        if isinstance(value, (int, float)):
            out[key] = float(value)
    return out


def inference_ms(detector: str, schedule: Optional[str] = None) -> float:
    """The estimate's inference time of a full-scale detector (see the module's docstring for the fallbacks)."""
    from kdlab.zoo import FAMILIES, parse_detector
    family, backbone = parse_detector(detector)
    known = _inference_ms()
    if schedule and known.get(family.full.get((backbone, schedule))):
        return known[family.full[(backbone, schedule)]]
    same = [known[c] for (b, _), c in family.full.items() if b == backbone and c in known]
    if same:
        return same[0]
    r50 = [known[c] for (b, _), c in family.full.items() if b == 'r50' and c in known]
    ratios = []
    for fam in FAMILIES.values():
        base = [known[c] for (b, _), c in fam.full.items() if b == 'r50' and c in known]
        this = [known[c] for (b, _), c in fam.full.items() if b == backbone and c in known]
        if base and this:
            ratios.append(this[0] / base[0])
    base = r50[0] if r50 else ANCHOR_INFER_MS
    return base * mean(ratios) if ratios and backbone != 'r50' else base


def train_seconds_per_image(detector: str, schedule: Optional[str] = None) -> float:
    return ANCHOR_S_PER_ITER / ANCHOR_IMAGES * inference_ms(detector, schedule) / ANCHOR_INFER_MS


def gpu_hours(student: str, schedule: str, teachers=(), *, evaluate_only: bool = False) -> float:
    """V100-hours of one full-scale run: ``student`` trained ``schedule`` (with ``teachers``' forward passes:
    ``[(detector, schedule), ...]``), or, ``evaluate_only``, one evaluation of ``student`` on COCO val2017."""
    if evaluate_only:
        return COCO_VAL * inference_ms(student, schedule) / 1000 / 3600
    images = SCHEDULE_EPOCHS.get(schedule, 12) * COCO_TRAIN
    per_image = train_seconds_per_image(student, schedule) + sum(
        FORWARD_SHARE * train_seconds_per_image(t, s) for t, s in teachers)
    return images * per_image / 3600
