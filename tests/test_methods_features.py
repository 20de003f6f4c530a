"""The feature methods as mmrazor configs: registration, levels, defaults, one training iteration at smoke size,
DFMSD's masking enhancement and its SAL chain."""
import copy

import pytest
import torch

STUDENT, TEACHER = 'retinanet_r18', 'retinanet_r50'
FEATURE_METHODS = ('dcsf_kd', 'mgd', 'fgd', 'amd', 'dmkd', 'dfmsd', 'dsamkd')


@pytest.fixture(scope='module')
def zoo(smoke_data):
    from kdlab.zoo import detector_config
    cache = {}

    def get(name):
        if name not in cache:
            cache[name] = detector_config(name, 'smoke', data_root=str(smoke_data))
        return copy.deepcopy(cache[name])
    return get


def _cfg(zoo, method, student=STUDENT, teacher=TEACHER, **params):
    from kdlab.methods import distill_config
    return distill_config(zoo(student), zoo(teacher), student=student, teacher=teacher, teacher_ckpt=None,
                          method=method, **params)


@pytest.fixture(scope='module')
def batch(zoo):
    from mmengine.dataset import pseudo_collate
    from mmengine.registry import init_default_scope
    from mmdet.registry import DATASETS
    init_default_scope('mmdet')
    ds = DATASETS.build(zoo(STUDENT).train_dataloader.dataset)
    return pseudo_collate([ds[i] for i in range(2)])


def _build(cfg):
    from mmengine.registry import init_default_scope
    from mmrazor.registry import MODELS
    init_default_scope('mmdet')
    torch.manual_seed(0)
    model = MODELS.build(cfg.model)
    model.init_weights()
    return model


# ------------------------------------------------------------------------------------------ registration
def test_everything_is_registered():
    import kdlab.models  # noqa: F401
    from mmrazor.registry import MODELS, TASK_UTILS
    from kdlab.methods import get_method
    for name in ('DCSFKDLoss', 'FGDLoss', 'AMDLoss', 'DMKDLoss', 'DFMSDLoss', 'DSAMKDLoss',
                 'AutoChannelDistiller', 'DFMSDDistiller', 'FpnHeadTeacherDistill', 'DFMSDDistill'):
        assert MODELS.get(name) is not None, name
    assert TASK_UTILS.get('DataSamplesRecorder') is not None
    assert {m: get_method(m).algorithm for m in ('dfmsd', 'dsamkd', 'mgd')} == {
        'dfmsd': 'DFMSDDistill', 'dsamkd': 'FpnHeadTeacherDistill', 'mgd': 'FpnTeacherDistill'}


# ------------------------------------------------------------------------------------- levels, defaults
def test_levels_of_each_method(zoo):
    four = ['P3', 'P4', 'P5', 'P6']
    assert [k.split('_')[-1] for k in _cfg(zoo, 'dcsf_kd').model.distiller.distill_losses] == four
    for method in ('mgd', 'fgd', 'amd', 'dmkd', 'dfmsd', 'dsamkd'):
        losses = _cfg(zoo, method).model.distiller.distill_losses
        assert [k.split('_')[-1] for k in losses] == four + ['P7'], method
    # heterogeneous index pairing (Swin Mask R-CNN P2-P6 teacher, RetinaNet P3-P7 student), when asked for
    hetero = _cfg(zoo, 'dmkd', teacher='mask_rcnn_swin_t', pairing='index').model.distiller.distill_losses
    assert list(hetero)[0] == 'loss_dmkd_P3_from_P2' and len(hetero) == 5
    # a masking method's default on that pair: same-stride levels (kdlab.core.levels.default_pairing)
    default = _cfg(zoo, 'dmkd', teacher='mask_rcnn_swin_t')
    assert list(default.model.distiller.distill_losses) == ['loss_dmkd_P3', 'loss_dmkd_P4', 'loss_dmkd_P5',
                                                            'loss_dmkd_P6']
    assert default.kdlab_method['pairing'] == 'stride'
    assert _cfg(zoo, 'pkd', teacher='mask_rcnn_swin_t').kdlab_method['pairing'] == 'index'   # PKD's code: by index


def test_dcsf_kd_alpha_paper_by_default_released_on_request(zoo):
    from kdlab.methods.dcsf_kd import dcsf_kd_alpha
    weight = lambda cfg: {v['loss_weight'] for v in cfg.model.distiller.distill_losses.values()}
    assert weight(_cfg(zoo, 'dcsf_kd')) == {1.0}                                   # single-stage student
    two = _cfg(zoo, 'dcsf_kd', student='faster_rcnn_r50', teacher='faster_rcnn_r101')
    assert weight(two) == {2.0}                                                   # two-stage student
    assert weight(_cfg(zoo, 'dcsf_kd', alpha_source='released')) == {2.0}
    assert weight(_cfg(zoo, 'dcsf_kd', alpha=1.5)) == {1.5}
    assert weight(_cfg(zoo, 'dcsf_kd', alpha_source='released', alpha_released_config=1)) == {1.0}
    assert dcsf_kd_alpha('retinanet_r50') == 1.0 and dcsf_kd_alpha('faster_rcnn_r50') == 2.0
    assert dcsf_kd_alpha('retinanet_r50', 'fcos_x101', '1x', source='released') == 1.0
    assert dcsf_kd_alpha('retinanet_r50', 'retinanet_x101', '2x', source='released') == 2.0
    with pytest.raises(KeyError):
        _cfg(zoo, 'dcsf_kd', alpha_source='code')


def test_defaults_by_student_kind_and_presets(zoo):
    from kdlab.errors import KdlabError
    one = _cfg(zoo, 'mgd').model.distiller
    assert one.distill_losses.loss_mgd_P3.alpha_mgd == 2e-5 and one.connectors.s_mgd_P3_connector.lambda_mgd == 0.65
    assert one.connectors.s_mgd_P3_connector.student_channels is None            # filled from the necks
    two = _cfg(zoo, 'mgd', student='faster_rcnn_r50', teacher='faster_rcnn_r101').model.distiller
    assert two.distill_losses.loss_mgd_P2.alpha_mgd == 5e-7
    assert two.connectors.s_mgd_P2_connector.lambda_mgd == 0.45
    with pytest.raises(KdlabError, match='stride'):
        _cfg(zoo, 'mgd', teacher='mask_rcnn_swin_t', pairing='index')
    assert list(_cfg(zoo, 'mgd', teacher='mask_rcnn_swin_t').model.distiller.distill_losses) == [
        'loss_mgd_P3', 'loss_mgd_P4', 'loss_mgd_P5', 'loss_mgd_P6']
    fgd = _cfg(zoo, 'fgd').model.distiller
    assert fgd.distill_losses.loss_fgd_P3.alpha_fgd == 1e-3 and fgd.student_recorders.samples.type == 'DataSamples'
    fcos = _cfg(zoo, 'fgd', preset='fcos', alpha_fgd=2e-3).model.distiller.distill_losses.loss_fgd_P3
    assert fcos.temp == 0.8 and fcos.alpha_fgd == 2e-3 and fcos.beta_fgd == 8e-4
    frcnn = _cfg(zoo, 'fgd', student='faster_rcnn_r50', teacher='faster_rcnn_r101')
    assert frcnn.model.distiller.distill_losses.loss_fgd_P2.alpha_fgd == 5e-5
    assert [h['type'] for h in frcnn.custom_hooks] == ['InheritTeacherHook']      # FGD/MGD inherit by default
    amd = _cfg(zoo, 'amd', student='faster_rcnn_r50', teacher='faster_rcnn_r101').model.distiller
    assert amd.distill_losses.loss_amd_P2.mask_ratio == 0.45 and amd.distill_losses.loss_amd_P2.alpha == 5e-7


def test_dfmsd_and_dsamkd_switches(zoo):
    d = _cfg(zoo, 'dfmsd').model
    assert d.type == 'DFMSDDistill' and d.distiller.type == 'DFMSDDistiller'
    assert [v['sfa'] for v in d.distiller.distill_losses.values()] == [True, True, True, False, False]
    assert d.distiller.enhance['boxes'] == 'teacher' and d.distiller.enhance['threshold'] == 0.5
    m = d.distiller.loss_forward_mappings.loss_dfmsd_P4
    assert m.preds_S_enh == dict(from_student=True, recorder='fpn', record_idx=1, data_idx=1)
    off = _cfg(zoo, 'dfmsd', me=False, sfa_levels=['P2']).model.distiller
    assert off.enhance is None and 'preds_S_enh' not in off.loss_forward_mappings.loss_dfmsd_P3
    assert [v['sfa'] for v in off.distill_losses.values()] == [False, True, False, False, False]
    s = _cfg(zoo, 'dsamkd').model.distiller
    assert s.student_recorders.logits.source == 'bbox_head'
    assert s.loss_forward_mappings.loss_dsamkd_P5.logits_T == dict(from_student=False, recorder='logits',
                                                                   data_idx=0, connector_idx=2)
    rpn = _cfg(zoo, 'dsamkd', student='faster_rcnn_r50', teacher='cascade_mask_rcnn_r50').model.distiller
    assert rpn.teacher_recorders.logits.source == 'rpn_head'
    hetero = _cfg(zoo, 'dsamkd', teacher='mask_rcnn_swin_t').model.distiller          # one- vs two-stage
    assert 'logits' not in hetero.student_recorders


# ------------------------------------------------------------------------------------ training iteration
def _no_zero_grad(opt):
    opt.zero_grad = lambda *a, **k: None   # keep the gradients of the step for inspection
    return opt


@pytest.mark.parametrize('method', FEATURE_METHODS)
def test_one_training_iteration(zoo, batch, method):
    from mmengine.optim import build_optim_wrapper
    cfg = _cfg(zoo, method, inherit=())
    model = _build(cfg)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    opt = _no_zero_grad(build_optim_wrapper(model, cfg.optim_wrapper))
    out = model.train_step(batch, opt)
    distill = {k: v for k, v in out.items() if k.startswith('distill.')}
    n_levels = 4 if method == 'dcsf_kd' else 5
    assert len(distill) == n_levels and all(torch.isfinite(v) and v > 0 for v in distill.values())
    assert all(p.grad is None for p in model.teacher.parameters())
    assert all(torch.equal(before[f'teacher.{n}'], p) for n, p in model.teacher.named_parameters())
    assert model.student.neck.fpn_convs[0].conv.weight.grad.abs().sum() > 0
    own = list(model.distiller.parameters())
    if method in ('dcsf_kd',):
        assert own == []
    else:   # the method's own trainable parts (generators, SE, GcBlocks, connectors) were built and learn
        assert own and sum(p.grad.abs().sum() for p in own if p.grad is not None) > 0
        assert all(p.requires_grad for p in own)


def test_two_stage_dsamkd_distils_rpn_logits(zoo, batch):
    cfg = _cfg(zoo, 'dsamkd', student='faster_rcnn_r50', teacher='faster_rcnn_r101')
    model = _build(cfg)
    assert model.teacher_heads == ('rpn_head',)
    data = model.data_preprocessor(batch, True)
    losses = model.loss(data['inputs'], data['data_samples'])
    logits = model.distiller.teacher_recorders.get_recorder('logits').get_record_data(0, 0)
    assert len(logits) == 5 and logits[0].shape[1] == 3                # 3 anchors, objectness
    full = sum(v for k, v in losses.items() if k.startswith('distill.'))
    feat_only = _build(_cfg(zoo, 'dsamkd', student='faster_rcnn_r50', teacher='faster_rcnn_r101', logits=False))
    f_losses = feat_only.loss(data['inputs'], data['data_samples'])
    assert torch.isfinite(full) and full > sum(v for k, v in f_losses.items() if k.startswith('distill.'))


def test_dfmsd_masking_enhancement_passes_twice_and_uses_eq4(zoo, batch):
    from kdlab.core.masks import box_area_ratio
    from kdlab.models._samples import box_tensor
    model = _build(_cfg(zoo, 'dfmsd', me_boxes='gt', adversarial=False, noise_prob=1.0))
    data = model.data_preprocessor(batch, True)
    aug = model.enhanced_inputs(data['inputs'], data['data_samples'])
    assert aug.shape == data['inputs'].shape and not torch.equal(aug, data['inputs'])
    ratios = [box_area_ratio(box_tensor(s.gt_instances.bboxes), s.metainfo['img_shape'])
              for s in data['data_samples']]
    assert model.last_enhancement['ratios'] == pytest.approx(ratios)
    assert model.last_enhancement['decisions'] == ['noise' if r < 0.5 else 'crop' for r in ratios]
    losses = model.loss(data['inputs'], data['data_samples'])
    assert len(model.distiller.student_recorders.get_recorder('fpn').data_buffer) == 2   # original + enhanced
    assert len(model.distiller.teacher_recorders.get_recorder('fpn').data_buffer) == 2
    loss = model.distiller.distill_losses['loss_dfmsd_P3']
    s0, t0, s1, t1 = (model.distiller.get_record('fpn', st, idx, 0) for st, idx in
                      ((True, 0), (False, 0), (True, 1), (False, 1)))
    assert loss.terms(s0, t0, s1, t1)['enhanced'] > 0
    assert torch.isfinite(losses['distill.loss_dfmsd_P3'])
    # adversarial step: moves the enhanced image by adv_eps pixels per channel at most
    adv = _build(_cfg(zoo, 'dfmsd', me_boxes='gt', adversarial=True, noise_prob=0.0, crop_scale=(1.0, 1.0)))
    x = adv.adversarial(data['inputs'])
    step = (x - data['inputs']).abs().amax(dim=(0, 2, 3))
    assert torch.allclose(step, 2.0 / adv.data_preprocessor.std.flatten(), rtol=1e-4)
    plain = _build(_cfg(zoo, 'dfmsd', me=False))
    plain.loss(data['inputs'], data['data_samples'])
    assert len(plain.distiller.student_recorders.get_recorder('fpn').data_buffer) == 1


def test_sal_chain_stages_and_student_handover(zoo, tmp_path):
    from kdlab.errors import KdlabError
    from kdlab.methods.dfmsd import resolve_stage_checkpoints, sal_stages, stage_placeholder
    teachers = ['retinanet_r50', 'retinanet_x101']
    stages = sal_stages(zoo(STUDENT), [zoo(t) for t in teachers], student=STUDENT, teachers=teachers)
    assert [(s.index, s.teacher, s.me, s.init_from) for s in stages] == [
        (0, 'retinanet_r50', False, None), (1, 'retinanet_x101', True, stage_placeholder(0))]
    first, second = stages[0].cfg, stages[1].cfg
    assert first.model.distiller.enhance is None and 'box_teacher' not in first.model
    assert second.model.distiller.enhance['boxes'] == 'box_teacher' and second.model.box_teacher is not None
    assert second.model.architecture.init_cfg == dict(type='Pretrained', checkpoint=stage_placeholder(0),
                                                      prefix='architecture.')
    assert second.load_from is None and second.kdlab_stage['chain'] == teachers
    assert [s.me for s in sal_stages(zoo(STUDENT), [zoo(t) for t in teachers], student=STUDENT,
                                     teachers=teachers, me=[True, True])] == [True, True]
    single = sal_stages(zoo(STUDENT), [zoo(t) for t in teachers], student=STUDENT, teachers=teachers, sal=False)
    assert len(single) == 1 and single[0].teacher == 'retinanet_x101' and single[0].me
    with pytest.raises(KdlabError):
        resolve_stage_checkpoints(second, {})
    # stage 1's student starts from stage 0's student; its own teacher is not overwritten
    m0 = _build(first)
    ckpt = tmp_path / 'stage0.pth'
    torch.save({'state_dict': m0.state_dict(), 'meta': {}}, ckpt)
    cfg1 = resolve_stage_checkpoints(second, {0: str(ckpt)})
    assert cfg1.model.architecture.init_cfg['checkpoint'] == str(ckpt)
    m1 = _build(cfg1)
    for name, p in m0.student.state_dict().items():
        assert torch.equal(m1.student.state_dict()[name], p), name
    assert not torch.equal(m1.teacher.neck.fpn_convs[0].conv.weight, m0.teacher.neck.fpn_convs[0].conv.weight)


@pytest.mark.parametrize('family,gn', [('retinanet', False), ('reppoints', True)])
def test_mgd_and_fgd_hook_the_fpn_convs_before_a_gn_neck_norm(zoo, batch, family, gn):
    """The released MGD/FGD configs record ``neck.fpn_convs.i.conv``: before a GN neck's GroupNorm (RepPoints),
    the neck's output itself for a neck without norm layers (RetinaNet); ``record='neck'`` keeps the outputs."""
    student, teacher = f'{family}_r18', f'{family}_r50'
    cfg = _cfg(zoo, 'fgd', student, teacher, inherit=())
    recorders = cfg.model.distiller.teacher_recorders
    assert {k: v['source'] for k, v in recorders.items()} == {f'fpn{i}': f'neck.fpn_convs.{i}.conv' for i in range(5)}
    assert 'fpn' not in cfg.model.distiller.student_recorders
    neck_cfg = _cfg(zoo, 'fgd', student, teacher, inherit=(), record='neck')
    assert dict(neck_cfg.model.distiller.teacher_recorders) == {'fpn': dict(type='ModuleOutputs', source='neck')}
    model = _build(cfg)
    data = model.data_preprocessor(batch, True)
    with model.distiller.teacher_recorders, torch.no_grad():
        outs = model.teacher.extract_feat(data['inputs'])
    conv = model.distiller.teacher_recorders.get_recorder('fpn1').get_record_data()
    norm = model.teacher.neck.fpn_convs[1].norm if gn else None
    if gn:
        assert not torch.allclose(conv, outs[1]) and torch.allclose(norm(conv), outs[1], atol=1e-5)
    else:
        assert torch.equal(conv, outs[1])


def test_a_max_pool_level_is_recorded_at_the_neck_output(zoo):
    from kdlab.core.levels import fpn_conv_count
    assert fpn_conv_count(zoo('faster_rcnn_r50').model.neck) == 4       # P6 is a max-pool
    assert fpn_conv_count(zoo('retinanet_r18').model.neck) == 5
    cfg = _cfg(zoo, 'fgd', 'retinanet_r18', 'faster_rcnn_r50', inherit=(), pairing='stride')
    d = cfg.model.distiller
    teacher_sources = {m['preds_T']['recorder']: m['preds_T'].get('data_idx') for m in d.loss_forward_mappings.values()}
    assert d.teacher_recorders['fpn']['source'] == 'neck' and teacher_sources['fpn'] == 4   # P6 <- P6 (max-pool)
    assert d.teacher_recorders['fpn1']['source'] == 'neck.fpn_convs.1.conv'                 # P3 <- P3


def test_dfmsd_reads_teacher_boxes_from_a_reppoints_teacher(zoo, smoke_data):
    """ME's candidate boxes come from the frozen teacher's predictions made as at inference: a RepPoints head
    returns points, not boxes, in training mode (mmrazor keeps a frozen teacher in training mode but for its
    BatchNorms), and the teacher's module modes are left as they were."""
    from mmengine.dataset import pseudo_collate
    from mmengine.registry import init_default_scope
    from mmdet.registry import DATASETS
    from kdlab.models.algorithms import predict_boxes
    model = _build(_cfg(zoo, 'dfmsd', student='reppoints_r18', teacher='reppoints_r50', adversarial=False))
    model.train()
    init_default_scope('mmdet')
    ds = DATASETS.build(zoo('reppoints_r18').train_dataloader.dataset)
    data = model.data_preprocessor(pseudo_collate([ds[i] for i in range(2)]), True)
    modes = [m.training for m in model.teacher.modules()]
    assert model.teacher.training and not all(modes)                 # trained mode, BatchNorms in eval
    with torch.no_grad():
        preds = predict_boxes(model.teacher, data['inputs'], data['data_samples'])
    assert len(preds) == 2 and all(p.bboxes.shape[-1] == 4 for p in preds)
    assert [m.training for m in model.teacher.modules()] == modes
    losses = model.loss(data['inputs'], data['data_samples'])
    assert all(torch.isfinite(v) for k, v in losses.items() if k.startswith('distill.'))


def test_sal_chain_stages_pair_as_their_own_pairs(zoo):
    """A Cascade R-CNN stage (P2-P6) before a RetinaNet teacher (P3-P7), DFMSD Table 7: the Cascade stage pairs by
    stride, as that pair does alone, the RetinaNet stage by index (registry rule "chain pairing")."""
    from kdlab.methods.dfmsd import sal_stages
    teachers = ['cascade_mask_rcnn_r101', 'retinanet_x101']
    stages = sal_stages(zoo(STUDENT), [zoo(t) for t in teachers], student=STUDENT, teachers=teachers)
    assert [s.cfg.kdlab_method['pairing'] for s in stages] == ['stride', 'index']
    every = sal_stages(zoo(STUDENT), [zoo(t) for t in teachers], student=STUDENT, teachers=teachers,
                       pairing='index')
    assert [s.cfg.kdlab_method['pairing'] for s in every] == ['index', 'index']
