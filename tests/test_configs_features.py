"""kdlab/configs/<method>/*.py of the feature methods: plain mmrazor configs that parse, agree with the method
builders at full scale, and (one of them) build and compute its losses."""
import glob
import os

import pytest
import torch

import kdlab

CONFIG_ROOT = os.path.join(os.path.dirname(kdlab.__file__), 'configs')
FEATURE_DIRS = ('dcsf_kd', 'mgd', 'fgd', 'amd', 'dmkd', 'dsamkd', 'dfmsd')

# file -> (method, student, student schedule, teacher chain [(name, schedule)], method params)
ROWS = {
    'dcsf_kd/dcsf-kd_fpn_retina_x101_retina_r50_2x_coco.py': ('dcsf_kd', 'retinanet_r50', '2x', [('retinanet_x101', '1x')], {}),
    'dcsf_kd/dcsf-kd_fpn_faster-rcnn_r101_faster-rcnn_r50_2x_coco.py': ('dcsf_kd', 'faster_rcnn_r50', '2x', [('faster_rcnn_r101', '2x')], {}),
    'dcsf_kd/dcsf-kd_fpn_fcos_r101_fcos_r50_2x-ms_coco.py': ('dcsf_kd', 'fcos_r50', '2x_ms', [('fcos_r101', '2x_ms')], {}),
    'dcsf_kd/dcsf-kd_fpn_reppoints_x101-dcn_reppoints_r50_2x_coco.py': ('dcsf_kd', 'reppoints_r50', '2x', [('reppoints_x101', '2x')], {}),
    'dcsf_kd/dcsf-kd_fpn_mask-rcnn_swin-s_retina_r50_2x_coco.py': ('dcsf_kd', 'retinanet_r50', '2x', [('mask_rcnn_swin_s', '3x')], {}),
    'dcsf_kd/dcsf-kd_fpn_mask-rcnn_swin-s_fcos_r50_2x-ms_coco.py': ('dcsf_kd', 'fcos_r50', '2x_ms', [('mask_rcnn_swin_s', '3x')], {}),
    'mgd/mgd_fpn_retina_x101_retina_r50_2x_coco.py': ('mgd', 'retinanet_r50', '2x', [('retinanet_x101', '1x')], {}),
    'mgd/mgd_fpn_reppoints_x101-dcn_reppoints_r50_2x_coco.py': ('mgd', 'reppoints_r50', '2x', [('reppoints_x101', '2x')], {}),
    'fgd/fgd_fpn_retina_x101_retina_r50_2x_coco.py': ('fgd', 'retinanet_r50', '2x', [('retinanet_x101', '1x')], {}),
    'fgd/fgd_fpn_faster-rcnn_r101_faster-rcnn_r50_2x_coco.py': ('fgd', 'faster_rcnn_r50', '2x', [('faster_rcnn_r101', '2x')], {}),
    'fgd/fgd_fpn_reppoints_x101-dcn_reppoints_r50_2x_coco.py': ('fgd', 'reppoints_r50', '2x', [('reppoints_x101', '2x')], {}),
    'fgd/fgd_fpn_fcos_r101_fcos_r50_2x-ms_coco.py': ('fgd', 'fcos_r50', '2x_ms', [('fcos_r101', '2x_ms')], {}),
    'amd/amd_fpn_retina_x101_retina_r50_2x_coco.py': ('amd', 'retinanet_r50', '2x', [('retinanet_x101', '1x')], {}),
    'amd/amd_fpn_reppoints_x101-dcn_reppoints_r50_2x_coco.py': ('amd', 'reppoints_r50', '2x', [('reppoints_x101', '2x')], {}),
    'dmkd/dmkd_fpn_retina_x101_retina_r50_2x_coco.py': ('dmkd', 'retinanet_r50', '2x', [('retinanet_x101', '1x')], {}),
    'dmkd/dmkd_fpn_reppoints_x101-dcn_reppoints_r50_2x_coco.py': ('dmkd', 'reppoints_r50', '2x', [('reppoints_x101', '2x')], {}),
    'dsamkd/dsamkd_fpn_retina_x101_retina_r50_2x_coco.py': ('dsamkd', 'retinanet_r50', '2x', [('retinanet_x101', '1x')], {}),
    'dsamkd/dsamkd_fpn_reppoints_x101-dcn_reppoints_r50_2x_coco.py': ('dsamkd', 'reppoints_r50', '2x', [('reppoints_x101', '2x')], {}),
    'dsamkd/dsamkd_fpn_cascade-mask-rcnn_x101_faster-rcnn_r50_2x_coco.py': ('dsamkd', 'faster_rcnn_r50', '2x', [('cascade_mask_rcnn_x101', '20e')], {}),
    'dfmsd/dfmsd_stage1_retina_r101-x101_retina_r50_2x_coco.py': ('dfmsd', 'retinanet_r50', '2x', [('retinanet_r101', '2x'), ('retinanet_x101', '1x')], 0),
    'dfmsd/dfmsd_stage2_retina_r101-x101_retina_r50_2x_coco.py': ('dfmsd', 'retinanet_r50', '2x', [('retinanet_r101', '2x'), ('retinanet_x101', '1x')], 1),
    'dfmsd/dfmsd_stage1_cascade-mask-rcnn_r101-x101_retina_r50_2x_coco.py': ('dfmsd', 'retinanet_r50', '2x', [('cascade_mask_rcnn_r101', '20e'), ('cascade_mask_rcnn_x101', '20e')], (0, 'stride')),
    'dfmsd/dfmsd_stage2_cascade-mask-rcnn_r101-x101_retina_r50_2x_coco.py': ('dfmsd', 'retinanet_r50', '2x', [('cascade_mask_rcnn_r101', '20e'), ('cascade_mask_rcnn_x101', '20e')], (1, 'stride')),
    'dfmsd/dfmsd_stage1_mask-rcnn_swin-t-s_faster-rcnn_r50_2x_coco.py': ('dfmsd', 'faster_rcnn_r50', '2x', [('mask_rcnn_swin_t', '3x'), ('mask_rcnn_swin_s', '3x')], 0),
    'dfmsd/dfmsd_stage2_mask-rcnn_swin-t-s_faster-rcnn_r50_2x_coco.py': ('dfmsd', 'faster_rcnn_r50', '2x', [('mask_rcnn_swin_t', '3x'), ('mask_rcnn_swin_s', '3x')], 1),
}
# keys the plain configs set explicitly that the builders leave to AutoChannelDistiller
CHANNEL_KEYS = {'student_channels', 'teacher_channels'}


def test_every_feature_config_is_listed():
    found = {os.path.relpath(p, CONFIG_ROOT) for d in FEATURE_DIRS for p in glob.glob(f'{CONFIG_ROOT}/{d}/*.py')}
    assert found == set(ROWS)


_ZOO = {}


def _full(name, schedule):
    import copy
    from kdlab.zoo import detector_config
    if (name, schedule) not in _ZOO:
        _ZOO[name, schedule] = detector_config(name, 'full', schedule=schedule)
    return copy.deepcopy(_ZOO[name, schedule])


def _builder_distiller(method, student, s_sched, teachers, params):
    from kdlab.methods import distill_config
    from kdlab.methods.dfmsd import sal_stages
    s_cfg = _full(student, s_sched)
    t_cfgs = [_full(t, sch) for t, sch in teachers]
    if method == 'dfmsd':   # params: the stage index, or (stage index, pairing)
        index, pairing = params if isinstance(params, tuple) else (params, 'index')
        return sal_stages(s_cfg, t_cfgs, student=student, teachers=[t for t, _ in teachers],
                          pairing=pairing)[index].cfg
    return distill_config(s_cfg, t_cfgs[0], student=student, teacher=teachers[0][0], teacher_ckpt=None,
                          method=method, **params)


@pytest.mark.parametrize('rel', sorted(ROWS))
def test_config_parses_and_agrees_with_the_method_builder(rel):
    from mmengine.config import Config
    cfg = Config.fromfile(os.path.join(CONFIG_ROOT, rel))
    method, student, s_sched, teachers, params = ROWS[rel]
    ref = _builder_distiller(method, student, s_sched, teachers, params)
    assert cfg.model.type == ref.model.type
    assert cfg.model.architecture.cfg_path == ref.model.architecture.get('cfg_path', cfg.model.architecture.cfg_path)
    d, r = cfg.model.distiller, ref.model.distiller
    assert list(d.distill_losses) == list(r.distill_losses)
    for name, loss in d.distill_losses.items():
        mine = {k: v for k, v in loss.items() if k not in CHANNEL_KEYS}
        theirs = {k: v for k, v in r.distill_losses[name].items() if k in mine}
        assert mine == theirs, name
        assert loss.get('student_channels', 256) == 256
    for name, mapping in d.loss_forward_mappings.items():
        assert {k: dict(v) for k, v in mapping.items()} == {k: dict(v) for k, v in r.loss_forward_mappings[name].items()}
    for side in ('student_recorders', 'teacher_recorders'):   # the hook points (MGD/FGD: neck.fpn_convs.i.conv)
        assert {k: dict(v) for k, v in d[side].items()} == {k: dict(v) for k, v in r[side].items()}, side
    if method == 'dfmsd':
        assert (d.enhance is None) == (r.enhance is None)
        if d.enhance is not None:
            assert dict(d.enhance) == {k: (tuple(v) if isinstance(v, list) else v) for k, v in r.enhance.items()}
            assert 'box_teacher' in cfg.model and 'Pretrained' == cfg.model.architecture.init_cfg.type


def test_a_plain_config_builds_and_computes_its_losses():
    """FGD's RetinaNet config through mmrazor's own ConfigurableDistiller: recorders, explicit channels, GT boxes."""
    from mmengine.config import Config
    from mmengine.registry import init_default_scope
    from mmrazor.registry import MODELS
    from mmdet.structures import DetDataSample
    from mmengine.structures import InstanceData
    cfg = Config.fromfile(os.path.join(CONFIG_ROOT, 'fgd/fgd_fpn_retina_x101_retina_r50_2x_coco.py'))
    assert cfg.custom_imports['imports'] == ['kdlab.models']
    cfg.model.teacher = cfg.model.architecture      # an R50 teacher builds faster than the X101; same widths
    init_default_scope('mmdet')
    torch.manual_seed(0)
    model = MODELS.build(cfg.model)
    samples = []
    for _ in range(2):
        ds = DetDataSample(metainfo=dict(img_shape=(96, 128), batch_input_shape=(96, 128), pad_shape=(96, 128)))
        inst = InstanceData()
        inst.bboxes = torch.tensor([[8., 8., 60., 50.]])
        inst.labels = torch.tensor([3])
        ds.gt_instances = inst
        samples.append(ds)
    losses = model.loss(torch.randn(2, 3, 96, 128), samples)
    distill = {k: v for k, v in losses.items() if k.startswith('distill.')}
    assert sorted(distill) == [f'distill.loss_fgd_P{i}' for i in range(3, 8)]
    assert all(torch.isfinite(v) and v > 0 for v in distill.values())
