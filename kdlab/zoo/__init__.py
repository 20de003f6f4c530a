"""The detector zoo: every detector family of the seed tables at three scales.

A detector is named ``<family>_<backbone>`` (e.g. ``retinanet_x101``, ``mask_rcnn_swin_s``) and built
for a *scale*:

* ``full`` — the official mmdet 3.3.0 config (``mmdet::...``), unchanged but for the data root;
* ``mini`` — the same official config with a tiny backbone from :data:`MINI_BACKBONES`, a 64-channel
  FPN and heads, 6 classes, the embedded synthetic dataset at 160x160, and a CPU-minutes schedule;
* ``smoke`` — ``mini`` at 96x96 on a dozen images for one epoch (seconds; tests and CI).

The mini backbones keep the ladder of the papers: ``r18 < r50 < r101 < x101`` and ``swin_t < swin_s``,
each rung with more capacity than the one below, and the same *type* (ResNet / ResNeXt / Swin) as the
full-scale backbone it stands for. More capacity is not more accuracy here: trained 3x at mini scale, x101
scored below r101 in RetinaNet (49.9 vs 54.8 mAP), FCOS (58.6 vs 66.0) and Cascade Mask R-CNN (85.7 vs 88.8)
(``results/runs``), so a table's ResNeXt teacher is not its strongest one at this scale: v1's X101 stand-in has
fewer parameters than its R101 one. Mini v2 replaces it (:data:`MINI_V2_BACKBONES`: a ResNeXt-50 16x4d at base
24, with 1.5x the parameters and multiply-adds of the R101 stand-in). Heterogeneous pairs stay heterogeneous: a mini Swin Mask R-CNN teacher
still has a P2-P6 FPN and a RetinaNet student P3-P7.

Everything returned is a plain :class:`mmengine.config.Config`; ``cfg.dump(path)`` writes the resolved file.
"""
from __future__ import annotations

import contextlib
import copy
import dataclasses
import functools
import os
from typing import Any, Dict, Optional, Tuple

from kdlab.errors import UnknownNameError

SCALES = ('smoke', 'mini', 'full')
MINI_WIDTH = 64  # FPN / head channels at mini and smoke scale (full: 256)

#: The mini scale's protocols. ``v1``: the six-shape data, backbones trained from scratch (the stored
#: results). ``v2`` (issue "Mini scale v2", being calibrated): cluttered 14-category scenes
#: (kdlab.data.scenes) and backbones pretrained on a classification task (kdlab.zoo.pretrain), loaded through
#: ``init_cfg`` with the first stage frozen and BatchNorm in eval mode, as the full configs do. Chosen per call
#: (``detector_config(..., protocol=)``) or by ``$KDLAB_MINI``; a run's config, and so its key, says which.
MINI_PROTOCOLS = ('v1', 'v2')


def mini_protocol(protocol: Optional[str] = None) -> str:
    """``protocol``, else ``$KDLAB_MINI``, else ``'v1'``; raises for an unknown one."""
    import os
    chosen = protocol or os.environ.get('KDLAB_MINI') or 'v1'
    if chosen not in MINI_PROTOCOLS:
        raise UnknownNameError('mini protocol', chosen, MINI_PROTOCOLS, 'set KDLAB_MINI to v1 or v2')
    return chosen


@contextlib.contextmanager
def under_protocol(protocol: str):
    """Within the block, the mini scale's protocol is ``protocol`` (``$KDLAB_MINI``, which every config built
    without ``protocol=`` reads: the planner's, the leaderboard's), as ``KDLAB_MINI=v2 kdlab ...`` would set it."""
    mini_protocol(protocol)                          # an unknown protocol raises here, naming the known ones
    before = os.environ.get('KDLAB_MINI')
    os.environ['KDLAB_MINI'] = protocol
    try:
        yield
    finally:
        if before is None:
            os.environ.pop('KDLAB_MINI', None)
        else:
            os.environ['KDLAB_MINI'] = before


def scale_label(scale: str, protocol: Optional[str] = None) -> str:
    """How results files name a scale: ``mini_v2`` for the mini scale under v2 (:func:`mini_protocol`), else the
    scale (``mini`` is v1's), so that one protocol's tables, leaderboard and summary never overwrite another's
    (``results/<paper>/<table>_mini_v2.csv`` beside v1's ``<table>_mini.csv``)."""
    return 'mini_v2' if scale == 'mini' and mini_protocol(protocol) == 'v2' else scale


@dataclasses.dataclass(frozen=True)
class Family:
    """One detector family: its official base config and full-scale config per (backbone, schedule)."""

    name: str
    base: str                      # official R50 config the mini model is derived from
    kind: str                      # 'one_stage' | 'two_stage'
    full: Dict[Tuple[str, str], str]
    with_mask: bool = False
    #: FPN levels, for pairing teacher and student levels (mmrazor's PKD pairs by index)
    levels: Tuple[str, ...] = ('P3', 'P4', 'P5', 'P6', 'P7')


_M = 'mmdet::'
FAMILIES: Dict[str, Family] = {f.name: f for f in [
    Family('retinanet', _M + 'retinanet/retinanet_r50_fpn_1x_coco.py', 'one_stage', {
        ('r50', '1x'): _M + 'retinanet/retinanet_r50_fpn_1x_coco.py',
        ('r50', '2x'): _M + 'retinanet/retinanet_r50_fpn_2x_coco.py',
        ('r101', '1x'): _M + 'retinanet/retinanet_r101_fpn_1x_coco.py',
        ('r101', '2x'): _M + 'retinanet/retinanet_r101_fpn_2x_coco.py',
        ('x101', '1x'): _M + 'retinanet/retinanet_x101-64x4d_fpn_1x_coco.py',
        ('x101', '2x'): _M + 'retinanet/retinanet_x101-64x4d_fpn_2x_coco.py',
        ('swin_t', '1x'): _M + 'swin/retinanet_swin-t-p4-w7_fpn_1x_coco.py',
    }),
    Family('fcos', _M + 'fcos/fcos_r50-caffe_fpn_gn-head_1x_coco.py', 'one_stage', {
        ('r50', '1x'): _M + 'fcos/fcos_r50-caffe_fpn_gn-head_1x_coco.py',
        ('r50', '2x_ms'): _M + 'fcos/fcos_r50-caffe_fpn_gn-head_ms-640-800-2x_coco.py',
        ('r101', '1x'): _M + 'fcos/fcos_r101-caffe_fpn_gn-head-1x_coco.py',
        ('r101', '2x_ms'): _M + 'fcos/fcos_r101-caffe_fpn_gn-head_ms-640-800-2x_coco.py',
        ('x101', '2x_ms'): _M + 'fcos/fcos_x101-64x4d_fpn_gn-head_ms-640-800-2x_coco.py',
    }),
    Family('gfl', _M + 'gfl/gfl_r50_fpn_1x_coco.py', 'one_stage', {
        ('r50', '1x'): _M + 'gfl/gfl_r50_fpn_1x_coco.py',
        ('r50', '2x_ms'): _M + 'gfl/gfl_r50_fpn_ms-2x_coco.py',
        ('r101', '2x_ms'): _M + 'gfl/gfl_r101_fpn_ms-2x_coco.py',
        ('x101', '2x_ms'): _M + 'gfl/gfl_x101-32x4d_fpn_ms-2x_coco.py',
    }),
    Family('reppoints', _M + 'reppoints/reppoints-moment_r50_fpn-gn_head-gn_1x_coco.py', 'one_stage', {
        ('r50', '1x'): _M + 'reppoints/reppoints-moment_r50_fpn-gn_head-gn_1x_coco.py',
        ('r50', '2x'): _M + 'reppoints/reppoints-moment_r50_fpn-gn_head-gn_2x_coco.py',
        ('r101', '2x'): _M + 'reppoints/reppoints-moment_r101_fpn-gn_head-gn_2x_coco.py',
        ('x101', '2x'): _M + 'reppoints/reppoints-moment_x101-dconv-c3-c5_fpn-gn_head-gn_2x_coco.py',
    }),
    Family('tood', _M + 'tood/tood_r50_fpn_1x_coco.py', 'one_stage', {
        ('r50', '1x'): _M + 'tood/tood_r50_fpn_1x_coco.py',
        ('r50', '2x_ms'): _M + 'tood/tood_r50_fpn_ms-2x_coco.py',
        ('r101', '2x_ms'): _M + 'tood/tood_r101_fpn_ms-2x_coco.py',
        ('x101', '2x_ms'): _M + 'tood/tood_x101-64x4d_fpn_ms-2x_coco.py',
    }),
    Family('faster_rcnn', _M + 'faster_rcnn/faster-rcnn_r50_fpn_1x_coco.py', 'two_stage', {
        ('r50', '1x'): _M + 'faster_rcnn/faster-rcnn_r50_fpn_1x_coco.py',
        ('r50', '2x'): _M + 'faster_rcnn/faster-rcnn_r50_fpn_2x_coco.py',
        ('r101', '1x'): _M + 'faster_rcnn/faster-rcnn_r101_fpn_1x_coco.py',
        ('r101', '2x'): _M + 'faster_rcnn/faster-rcnn_r101_fpn_2x_coco.py',
        ('x101', '2x'): _M + 'faster_rcnn/faster-rcnn_x101-64x4d_fpn_2x_coco.py',
    }, levels=('P2', 'P3', 'P4', 'P5', 'P6')),
    Family('cascade_mask_rcnn', _M + 'cascade_rcnn/cascade-mask-rcnn_r50_fpn_1x_coco.py', 'two_stage', {
        ('r50', '1x'): _M + 'cascade_rcnn/cascade-mask-rcnn_r50_fpn_1x_coco.py',
        ('r50', '20e'): _M + 'cascade_rcnn/cascade-mask-rcnn_r50_fpn_20e_coco.py',
        ('r101', '20e'): _M + 'cascade_rcnn/cascade-mask-rcnn_r101_fpn_20e_coco.py',
        ('x101', '20e'): _M + 'cascade_rcnn/cascade-mask-rcnn_x101-64x4d_fpn_20e_coco.py',
    }, with_mask=True, levels=('P2', 'P3', 'P4', 'P5', 'P6')),
    Family('mask_rcnn', _M + 'mask_rcnn/mask-rcnn_r50_fpn_1x_coco.py', 'two_stage', {
        ('r50', '1x'): _M + 'mask_rcnn/mask-rcnn_r50_fpn_1x_coco.py',
        ('r50', '2x'): _M + 'mask_rcnn/mask-rcnn_r50_fpn_2x_coco.py',
        ('r101', '2x'): _M + 'mask_rcnn/mask-rcnn_r101_fpn_2x_coco.py',
        ('r101', '3x'): _M + 'mask_rcnn/mask-rcnn_r101_fpn_ms-poly-3x_coco.py',
        ('x101', '2x'): _M + 'mask_rcnn/mask-rcnn_x101-64x4d_fpn_2x_coco.py',
        ('swin_t', '1x'): _M + 'swin/mask-rcnn_swin-t-p4-w7_fpn_1x_coco.py',
        ('swin_t', '3x'): _M + 'swin/mask-rcnn_swin-t-p4-w7_fpn_ms-crop-3x_coco.py',
        ('swin_s', '3x'): _M + 'swin/mask-rcnn_swin-s-p4-w7_fpn_amp-ms-crop-3x_coco.py',
    }, with_mask=True, levels=('P2', 'P3', 'P4', 'P5', 'P6')),
]}


def _resnet(depth: int, base_channels: int) -> dict:
    return dict(type='ResNet', depth=depth, base_channels=base_channels, num_stages=4, out_indices=(0, 1, 2, 3),
                frozen_stages=-1, norm_cfg=dict(type='BN', requires_grad=True), norm_eval=False,
                style='pytorch', init_cfg=None)


def _swin(embed_dims: int, depths) -> dict:
    return dict(type='SwinTransformer', embed_dims=embed_dims, depths=list(depths),
                num_heads=[1, 2, 4, 8], window_size=5, mlp_ratio=4,
                qkv_bias=True, drop_path_rate=0.1, patch_norm=True, out_indices=(0, 1, 2, 3),
                with_cp=False, convert_weights=False, init_cfg=None)


#: Mini v1's backbones: (backbone dict, output channels per stage). The rung names are the full-scale
#: backbones they stand for; capacity was meant to grow along r18 < r50 < r101 < x101 and swin_t < swin_s, but the
#: x101 stand-in (a ResNeXt-50 8x4d) has fewer parameters (1.72 M) and multiply-adds (0.168 G at 160 px) than the
#: r101 one (3.00 M, 0.277 G): see :data:`MINI_V2_BACKBONES`. v1 keeps it (its stored runs' keys).
MINI_BACKBONES: Dict[str, Tuple[dict, Tuple[int, ...]]] = {
    'r18': (_resnet(18, 8), (8, 16, 32, 64)),
    'r50': (_resnet(18, 16), (16, 32, 64, 128)),
    'r101': (_resnet(34, 24), (24, 48, 96, 192)),
    'x101': (dict(type='ResNeXt', depth=50, groups=8, base_width=4, base_channels=16, num_stages=4,
                  out_indices=(0, 1, 2, 3), frozen_stages=-1, norm_cfg=dict(type='BN', requires_grad=True),
                  norm_eval=False, style='pytorch', init_cfg=None), (64, 128, 256, 512)),
    'swin_t': (_swin(24, (2, 2, 2, 2)), (24, 48, 96, 192)),
    'swin_s': (_swin(32, (2, 2, 6, 2)), (32, 64, 128, 256)),
}

#: Mini v2's backbones (loaded pretrained, :mod:`kdlab.zoo.pretrain`): v1's, but for the X101 stand-in. v1's, a
#: ResNeXt-50 8x4d at base 16, has fewer parameters (1.72 M) and multiply-adds (0.172 G at 160 px) than the R101
#: stand-in (3.00 M, 0.278 G) and scored below it under v2, in pretraining (89.5 against 91.1 % top-1) and in
#: RetinaNet at 1x (48 epochs: 56.3 against 58.2 mAP). A ResNeXt-101 8x4d at base 16 (3.16 M, 0.316 G) tried next
#: reached only 82.6 % top-1 with the uniform pretraining recipe (at chance for four epochs: depth the recipe does not
#: train; results/mini_v2/pretrain_trials.json). v2's X101 stand-in is therefore a ResNeXt-50 of more cardinality and
#: width, 16x4d at base 24 (4.64 M, 0.450 G: 1.5 and 1.6 times the R101 stand-in, as X101-64x4d has about twice
#: R101's parameters and FLOPs on COCO), the depth the recipe trains; its outputs are wider (96-768 channels).
MINI_V2_BACKBONES: Dict[str, Tuple[dict, Tuple[int, ...]]] = {
    **MINI_BACKBONES, 'x101': (dict(MINI_BACKBONES['x101'][0], groups=16, base_channels=24), (96, 192, 384, 768))}

#: Schedules at mini / smoke scale: epochs. Full scale keeps the official schedule of its config.
MINI_EPOCHS = {'1x': 12, '2x': 24, '2x_ms': 24, '3x': 36, '20e': 20}
#: Mini v2's epochs (docs/mini_v2.md): four times v1's, 1x = 48. Set by the schedule rule (at most 2.0 mAP from
#: 1x to 2x, ``calibration.MAX_GAIN_1X_TO_2X``) on RetinaNet-R50 (batch 4, the v2 scenes, 16-epoch pretrained
#: backbone; results/mini_v2/trials.csv): 1x = 24 epochs 46.2 -> 2x = 48 epochs 50.8 (+4.6, the rule not met);
#: 1x = 48 epochs 50.8 -> 2x = 96 epochs 51.5 (+0.7). The official 1x's two steps (8/12, 11/12) at 24 / 48 epochs:
#: 45.7 -> 50.4 (+4.7), no better than one step at 3/4. The other families are still to be measured at 48 / 96.
MINI_V2_EPOCHS = {k: 4 * v for k, v in MINI_EPOCHS.items()}
SMOKE_EPOCHS = 1


def list_detectors() -> Dict[str, Tuple[str, str]]:
    """Every ``<family>_<backbone>`` name of the zoo -> (family, backbone)."""
    names = {}
    for fam in FAMILIES.values():
        backbones = {b for b, _ in fam.full}
        for b in sorted(backbones | {'r18'} if fam.kind == 'one_stage' else backbones):
            names[f'{fam.name}_{b}'] = (fam.name, b)
    return names


def parse_detector(name: str) -> Tuple[Family, str]:
    known = list_detectors()
    if name not in known:
        raise UnknownNameError('detector', name, known, 'see `kdlab zoo` for the list')
    family, backbone = known[name]
    return FAMILIES[family], backbone


def _check_scale(scale: str) -> None:
    if scale not in SCALES:
        raise UnknownNameError('scale', scale, SCALES)


def load_config(path: str):
    """``Config.fromfile`` that also takes the ``package::relative/path.py`` form of mmengine's hub.

    Parsed once per process (parsing an official config with its ``_base_`` chain takes ~0.3 s); each
    call returns a fresh copy.
    """
    return copy.deepcopy(_load_config_cached(path))


@functools.lru_cache(maxsize=None)
def _load_config_cached(path: str):
    from mmengine.config import Config
    if '::' in path:
        from mmengine.hub import get_config
        return get_config(path)
    return Config.fromfile(path)


# ------------------------------------------------------------------------------- config surgery
_WIDTH_KEYS = ('in_channels', 'feat_channels', 'out_channels', 'conv_out_channels')


def _narrow(node: Any, width: int, num_classes: int) -> Any:
    """Recursively replace the full-scale widths (256 / fc 1024) and class count (80) in a model dict."""
    if isinstance(node, dict):
        out = {}
        for k, v in node.items():
            if k in _WIDTH_KEYS and v == 256:
                v = width
            elif k == 'fc_out_channels' and v == 1024:
                v = width * 4
            elif k == 'num_classes' and v == 80:
                v = num_classes
            else:
                v = _narrow(v, width, num_classes)
            out[k] = v
        return out
    if isinstance(node, (list, tuple)):
        return type(node)(_narrow(v, width, num_classes) for v in node)
    return node


#: Two-stage detectors at mini and smoke scale: RoIs sampled per image for the R-CNN head(s) (official: 512)
#: and RPN proposals kept per image in training and testing (official: 1000). A 160x160 synthetic image holds
#: a handful of objects; with the official budget mmcv's CPU RoIAlign took 60% of a mini Faster R-CNN step.
#: Measured with this budget (3 processes on 2 cores, one step of 8 images): Faster R-CNN-R50 5.3 -> 2.2 s,
#: Cascade Mask R-CNN-X101 17.8 -> 6.3 s, Mask R-CNN-Swin-S 6.7 -> 3.3 s.
MINI_ROIS_PER_IMAGE = 128
MINI_PROPOSALS_PER_IMAGE = 300
#: Smoke scale (96x96 images with a few objects, one epoch, a test of the code path, not of a number): RoIs,
#: proposals and detections per image (official 100; an untrained smoke detector keeps them all, and Mask R-CNN
#: pastes a mask for each). With the mini budget, RoIAlign, the mask head and its pasting took a third of a smoke
#: Mask R-CNN run.
SMOKE_ROIS_PER_IMAGE = 32
SMOKE_PROPOSALS_PER_IMAGE = 64
SMOKE_DETECTIONS_PER_IMAGE = 20


def _mini_roi_budget(model: dict, rois: int = MINI_ROIS_PER_IMAGE,
                     proposals: int = MINI_PROPOSALS_PER_IMAGE) -> None:
    """Apply a RoI budget (default :data:`MINI_ROIS_PER_IMAGE` / :data:`MINI_PROPOSALS_PER_IMAGE`) to a two-stage
    model dict (every cascade stage); one-stage models have no ``rpn_proposal`` and are left alone."""
    train, test = model.get('train_cfg') or {}, model.get('test_cfg') or {}
    if 'rpn_proposal' not in train:
        return
    train['rpn_proposal']['max_per_img'] = proposals
    test['rpn']['max_per_img'] = proposals
    for stage in (train['rcnn'] if isinstance(train['rcnn'], (list, tuple)) else [train['rcnn']]):
        stage['sampler']['num'] = rois


def _smoke_budget(model: dict) -> None:
    """The smoke scale's RoI budget and detections per image (:data:`SMOKE_ROIS_PER_IMAGE` and the two after it)."""
    _mini_roi_budget(model, SMOKE_ROIS_PER_IMAGE, SMOKE_PROPOSALS_PER_IMAGE)
    test = model.get('test_cfg') or {}
    for part in (test, test.get('rcnn')):          # a one-stage head's test_cfg, or a two-stage detector's R-CNN
        if isinstance(part, dict) and 'max_per_img' in part:
            part['max_per_img'] = SMOKE_DETECTIONS_PER_IMAGE


def mini_model(family: Family, backbone: str, num_classes: int, width: int = MINI_WIDTH,
               pretrained: bool = False) -> dict:
    """The ``model`` dict of a mini detector: the official config's model with a mini backbone and widths.

    ``pretrained`` (mini v2): the backbone is :data:`MINI_V2_BACKBONES`' and starts from its committed
    pretrained weights (:func:`kdlab.zoo.pretrain.pretrained_init`) and, for a ResNet/ResNeXt, keeps the official configs'
    frozen first stage and BatchNorm in eval mode."""
    from mmengine.config import Config
    backbones = MINI_V2_BACKBONES if pretrained else MINI_BACKBONES
    if backbone not in backbones:
        raise UnknownNameError('mini backbone', backbone, backbones)
    official = load_config(family.base)
    model = _narrow(official.model.to_dict(), width, num_classes)
    bb, channels = backbones[backbone]
    model['backbone'] = copy.deepcopy(bb)
    if pretrained:
        from kdlab.zoo.pretrain import pretrained_init
        model['backbone']['init_cfg'] = pretrained_init(backbone)
        if model['backbone']['type'] in ('ResNet', 'ResNeXt'):
            model['backbone'].update(frozen_stages=1, norm_eval=True)
    model['neck']['in_channels'] = list(channels)
    _mini_roi_budget(model)
    # v1's mini models train from scratch: no frozen stages, BN in train mode (set in the backbone dicts);
    # caffe-style FCOS configs expect caffe pixel stats — mini uses the standard ones for every family.
    model['data_preprocessor'] = dict(type='DetDataPreprocessor', mean=[123.675, 116.28, 103.53],
                                      std=[58.395, 57.12, 57.375], bgr_to_rgb=True, pad_size_divisor=32,
                                      pad_mask=family.with_mask)
    return model


def detector_config(name: str, scale: str = 'mini', *, schedule: Optional[str] = None,
                    data_root: Optional[str] = None, seed: int = 0, protocol: Optional[str] = None,
                    width: int = MINI_WIDTH):
    """The complete mmengine config (model, data, schedule, runtime) of detector ``name`` at ``scale``.

    ``schedule`` (``1x``, ``2x``, ...) picks the official full-scale config and the mini epoch budget;
    default: the family's first schedule for that backbone. ``protocol``: the mini scale's
    (:data:`MINI_PROTOCOLS`; default :func:`mini_protocol`). ``width``: the mini and smoke neck / head
    channels (default :data:`MINI_WIDTH`; a calibration knob, the same for every method; ignored at full scale).
    """
    from mmengine.config import Config
    from kdlab.data import coco_data_config

    _check_scale(scale)
    family, backbone = parse_detector(name)
    schedules = [s for b, s in family.full if b == backbone] or ['1x']
    schedule = schedule or schedules[0]
    if scale == 'full':
        if not any(b == backbone for b, _ in family.full):
            raise UnknownNameError(f'full-scale backbone of {family.name}', backbone,
                                   sorted({b for b, _ in family.full}),
                                   f'{name} exists at mini and smoke scale only (the papers use no such model); '
                                   f'pick one of the backbones {family.name} has at full scale')
        if (backbone, schedule) not in family.full:
            raise UnknownNameError(f'full-scale schedule of {name}', schedule, schedules)
        cfg = load_config(family.full[(backbone, schedule)])
        if data_root is not None:
            cfg.merge_from_dict(coco_data_config(data_root, scale='full', with_mask=family.with_mask,
                                                 base=cfg))
        cfg.randomness = dict(seed=seed)
        return cfg
    if schedule not in MINI_EPOCHS:
        raise UnknownNameError('schedule', schedule, MINI_EPOCHS)
    official = load_config(family.base)
    v2 = scale == 'mini' and mini_protocol(protocol) == 'v2'
    data = coco_data_config(data_root, scale=scale, with_mask=family.with_mask, protocol='v2' if v2 else 'v1')
    classes = data['train_dataloader']['dataset']['metainfo']['classes']     # the protocol's categories
    cfg = Config(dict(
        default_scope='mmdet',
        model=mini_model(family, backbone, num_classes=len(classes), width=width, pretrained=v2),
        default_hooks=official.default_hooks.to_dict(),
        env_cfg=official.env_cfg.to_dict(),
        log_processor=official.log_processor.to_dict(),
        log_level='INFO', load_from=None, resume=False,
        randomness=dict(seed=seed, deterministic=False),
    ))
    if scale == 'smoke':
        _smoke_budget(cfg.model)
    cfg.merge_from_dict(data)
    if v2:
        cfg.kdlab_protocol = 'mini-v2'     # read by distill_config (the loss-scale rule); in the run key
    epochs = SMOKE_EPOCHS if scale == 'smoke' else (MINI_V2_EPOCHS if v2 else MINI_EPOCHS)[schedule]
    cfg.merge_from_dict(mini_schedule(epochs))
    cfg.merge_from_dict(dict(default_hooks=dict(logger=dict(interval=10), checkpoint=dict(interval=1,
                        max_keep_ckpts=1, save_last=True), visualization=dict(draw=False))))
    cfg.env_cfg['dist_cfg'] = dict(backend='gloo')  # CPU-friendly; full scale keeps nccl
    return cfg


def mini_schedule(epochs: int, steps=(0.75,)) -> dict:
    """AdamW with a short warm-up and a step at 3/4 (``steps``: the learning-rate steps as fractions of the
    schedule, each x 0.1; the official 1x steps at 8/12 and 11/12): trains tiny detectors in CPU minutes."""
    return dict(
        train_cfg=dict(type='EpochBasedTrainLoop', max_epochs=epochs, val_interval=epochs),
        val_cfg=dict(type='ValLoop'), test_cfg=dict(type='TestLoop'),
        optim_wrapper=dict(type='OptimWrapper', optimizer=dict(type='AdamW', lr=1e-3, weight_decay=0.05),
                           clip_grad=dict(max_norm=10, norm_type=2)),
        param_scheduler=[
            dict(type='LinearLR', start_factor=0.01, by_epoch=False, begin=0, end=100),
            dict(type='MultiStepLR', by_epoch=True, begin=0, end=epochs,
                 milestones=[max(1, int(epochs * f)) for f in steps], gamma=0.1)],
        auto_scale_lr=dict(enable=False, base_batch_size=8),
    )
