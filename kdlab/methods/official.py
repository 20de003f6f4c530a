"""What each method's official code sets for a (student, teacher) pair, with the source of every value.

The one place a method's per-pair hyper-parameters live. :func:`kdlab.methods.distill_config` fills a method's
parameters in this order: a value the caller gives (a table row's ``switches``, a notebook, ``distill_config``'s
keyword) wins; then the entry here for the student's and the teacher's detector family; then the entry for the
student's family and any teacher; then the method's registered default, kdlab's documented choice for a pair no
official config covers (``docs/methods.md``). :func:`resolve` also says where each value came from.

Families are the zoo's (``kdlab.zoo.FAMILIES``: ``retinanet``, ``fcos``, ``gfl``, ``reppoints``, ``tood``,
``faster_rcnn``, ``mask_rcnn``, ``cascade_mask_rcnn``). Sources are files of the released code, read there
(mmrazor's are also in its wheel, ``mmrazor/.mim/configs/distill/mmdet``; ``tests/test_official.py`` compares
them with this table).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, Mapping, Tuple

ANY = '*'
MMRAZOR = 'mmrazor 1.0.0 configs/distill/mmdet/'
DCSF_KD = 'github.com/LinY-ct/DCSF-KD configs/distill/mmdet/'
FGD = 'github.com/yzd-v/FGD configs/distillers/fgd/'
CROSSKD = 'github.com/jbwang1997/CrossKD configs/crosskd/'
ICD = 'github.com/megvii-research/ICD pytorch_release/configs/Distillation-ICD/'


@dataclass(frozen=True)
class Official:
    method: str
    student: str                     # the student's detector family
    teacher: str                     # the teacher's detector family, or ANY
    params: Mapping[str, object] = field(default_factory=dict)
    source: str = ''


OFFICIAL: Tuple[Official, ...] = (
    # PKD: loss_weight of each of the four PKDLoss terms
    Official('pkd', 'faster_rcnn', 'faster_rcnn', {'loss_weight': 6.0},
             MMRAZOR + 'pkd/pkd_fpn_faster-rcnn_r101_faster-rcnn_r50_2x_coco.py'),
    Official('pkd', 'retinanet', 'retinanet', {'loss_weight': 10.0},
             MMRAZOR + 'pkd/pkd_fpn_retina_x101_retina_r50_2x_coco.py'),
    Official('pkd', 'retinanet', 'fcos', {'loss_weight': 10.0},
             MMRAZOR + 'pkd/pkd_fpn_fcos_x101_retina_r50_1x_coco.py (its base, the RetinaNet config, sets 10)'),
    Official('pkd', 'retinanet', 'mask_rcnn', {'loss_weight': 6.0},
             MMRAZOR + 'pkd/pkd_fpn_mask-rcnn_swin_retina_r50_2x_coco.py'),
    Official('pkd', 'reppoints', 'reppoints', {'loss_weight': 10.0},
             MMRAZOR + 'pkd/pkd_fpn_reppoints_x101-dcn_reppoints_r50_2x_coco.py (its base, the RetinaNet config, '
                       'sets 10)'),
    Official('pkd', 'fcos', 'gfl', {'loss_weight': 10.0}, DCSF_KD + 'pkd/pkd_fpn_gfl_R101_fcos_r50_2x_coco.py'),
    Official('pkd', 'fcos', 'fcos', {'loss_weight': 2.0}, DCSF_KD + 'pkd/pkd_fpn_fcos_x101_fcos_r50_2x_coco.py'),
    Official('pkd', 'fcos', 'mask_rcnn', {'loss_weight': 6.0},
             DCSF_KD + 'pkd/pkd_fpn_mask-rcnn_swin_fcos_r50_2x_coco.py'),
    Official('pkd', 'tood', 'tood', {'loss_weight': 2.0}, DCSF_KD + 'pkd/pkd_fpn_tood_r101_tood_r50_1x_coco.py'),
    # FGD: the hyper-parameter set of the student's detector (kdlab.methods.fgd.FGD_PRESETS)
    Official('fgd', 'retinanet', ANY, {'preset': 'retinanet'},
             FGD + 'fgd_retina_rx101_64x4d_distill_retina_r50_fpn_2x_coco.py'),
    Official('fgd', 'reppoints', ANY, {'preset': 'reppoints'},
             FGD + 'fgd_reppoints_rx101_64x4d_distill_reppoints_r50_fpn_2x_coco.py'),
    Official('fgd', 'fcos', ANY, {'preset': 'fcos'}, FGD + 'fgd_fcos_r101_distill_fcos_r50_2x_coco.py'),
    Official('fgd', 'gfl', ANY, {'preset': 'gfl'}, FGD + 'fgd_gfl_r101_distill_gfl_r50_fpn_1x_coco.py'),
    Official('fgd', 'faster_rcnn', ANY, {'preset': 'faster_rcnn'},
             FGD + 'fgd_faster_rcnn_r101_fpn_2x_distill_faster_rcnn_r50_fpn_2x_coco.py'),
    # CrossKD: the kd_cfg of the released config for the student's head
    Official('crosskd', 'retinanet', ANY,
             dict(reused_head_idx=3, cls_weight=1.0, reg_loss='giou', reg_weight=1.0, kl_weight=0.0),
             CROSSKD + 'crosskd_r50_retinanet_r101_fpn_2x_coco.py (QFL 1 + GIoU 1, head conv 3)'),
    Official('crosskd', 'gfl', ANY,
             dict(reused_head_idx=3, cls_weight=1.0, reg_loss='giou', reg_weight=0.0, kl_weight=4.0),
             CROSSKD + 'crosskd_r50_gflv1_r101-2x-ms_fpn_1x_coco.py, default branch (QFL 1 + KL 4, no GIoU KD term; '
                       'QFL 1 + GIoU 2 + KL 3 is on a non-default branch only)'),
    Official('crosskd', 'fcos', ANY,
             dict(reused_head_idx=2, cls_weight=0.4, reg_loss='iou', reg_weight=0.75, kl_weight=0.0),
             CROSSKD + 'crosskd_r50_fcos_r101-2x-ms_caffe_fpn_gn-head_2x_ms_coco.py (QFL 0.4 + IoU 0.75, head conv 2)'),
    # ICD: the query cap (MAX_LABELS; utils/build.py's default 300 serves the one-stage configs)
    Official('icd', 'faster_rcnn', ANY, {'max_instances': 100},
             ICD + 'RCNN_R_50_R101_icd_FPN_1x.yaml (MAX_LABELS: 100; the MegEngine release keeps 300)'),
    Official('icd', 'mask_rcnn', ANY, {'max_instances': 100},
             ICD + 'MaskRCNN_R_50_R101_icd_FPN_1x.yaml (MAX_LABELS: 100; the MegEngine release keeps 300)'),
)


def entry(method: str, student: str, teacher: str):
    """The most specific entry for the pair of zoo detectors, or None."""
    from kdlab.methods import detector_family
    s, t = detector_family(student).name, detector_family(teacher).name
    exact = [o for o in OFFICIAL if o.method == method and o.student == s and o.teacher == t]
    if exact:
        return exact[0]
    loose = [o for o in OFFICIAL if o.method == method and o.student == s and o.teacher == ANY]
    return loose[0] if loose else None


def resolve(method: str, student: str, teacher: str, defaults: Mapping[str, object],
            given: Mapping[str, object]) -> Tuple[Dict[str, object], Dict[str, str]]:
    """(parameters, source of each): the caller's values, then the official entry's, then the defaults."""
    found = entry(method, student, teacher)
    official = dict(found.params) if found else {}
    params, sources = {}, {}
    for name, default in defaults.items():
        if name in given:
            params[name], sources[name] = given[name], 'given'
        elif name in official:
            params[name], sources[name] = official[name], found.source
        else:
            params[name], sources[name] = default, 'kdlab default (docs/methods.md)'
    return params, sources
