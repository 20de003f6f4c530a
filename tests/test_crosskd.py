"""CrossKD (Wang et al., CVPR 2024): cross-head predictions, the KD loss, gradients, GT-only student head."""
import copy
import math

import pytest
import torch

STUDENT, TEACHER = 'gfl_r50', 'gfl_r101'


# ------------------------------------------------------------------------------------------ the loss
def test_kd_quality_focal_loss_equals_its_formula_and_vanishes_on_equal_logits():
    from kdlab.models.losses.crosskd import kd_quality_focal_loss
    x, t = torch.tensor([1.0, -2.0, 0.3]), torch.tensor([0.0, -2.0, 1.5])
    got = kd_quality_focal_loss(x, t, beta=1.0)
    sig = lambda a: 1 / (1 + math.exp(-a))
    for i in range(3):
        y, p = sig(t[i].item()), sig(x[i].item())
        bce = -(y * math.log(p) + (1 - y) * math.log(1 - p))
        assert got[i].item() == pytest.approx(bce * abs(p - y), rel=1e-5)
    assert got[1].item() == 0.0                           # equal logits: the focal factor is zero


def _boxes(*rows):
    return torch.tensor(rows, dtype=torch.float)


def test_crosskd_loss_equals_a_hand_computed_case():
    from kdlab.models.losses.crosskd import CrossKDLoss
    cls_t = torch.tensor([[2.0, -1.0], [-3.0, 0.5]])
    cls_x = torch.tensor([[1.0, -1.0], [-3.0, 0.5]])
    boxes_t = _boxes([0, 0, 2, 2], [0, 0, 4, 4])
    boxes_x = _boxes([1, 1, 3, 3], [0, 0, 4, 4])
    out = CrossKDLoss(cls_weight=0.5, reg_loss='giou', reg_weight=2.0)(
        cls_x, cls_t, boxes_x, boxes_t, avg_factor=4.0, cls_weights=torch.tensor([1.0, 0.0]))
    sig = lambda a: 1 / (1 + math.exp(-a))
    y, p = sig(2.0), sig(1.0)
    qfl = -(y * math.log(p) + (1 - y) * math.log(1 - p)) * abs(p - y)   # the only differing logit
    assert out['loss_cls_kd'].item() == pytest.approx(0.5 * qfl / 4.0, rel=1e-5)
    # box 0: IoU = 1/7, enclosing 3x3 = 9, union 7: GIoU = 1/7 - 2/9; weight sigmoid(max logit 2.0);
    # box 1 is identical (and ignored by its label weight 0)
    giou = 1 / 7 - 2 / 9
    assert out['loss_reg_kd'].item() == pytest.approx(2.0 * sig(2.0) * (1 - giou) / 4.0, rel=1e-5)
    assert set(out) == {'loss_cls_kd', 'loss_reg_kd'}


def test_crosskd_loss_variants_iou_and_distribution_kl():
    from kdlab.models.losses.crosskd import CrossKDLoss
    cls = torch.tensor([[0.0, 1.0]])
    b_t, b_x = _boxes([0, 0, 2, 2]), _boxes([0, 0, 2, 1])
    iou = CrossKDLoss(reg_loss='iou', reg_weight=1.0)(cls, cls, b_x, b_t, avg_factor=1.0)
    assert iou['loss_cls_kd'].item() == 0.0
    r = 1 / (1 + math.exp(-1.0))
    assert iou['loss_reg_kd'].item() == pytest.approx(r * -math.log(0.5), rel=1e-5)
    dist_t = torch.tensor([[[0.0, 1.0, 2.0]] * 4])
    kl = CrossKDLoss(kl_weight=3.0)(cls, cls, b_t, b_t, avg_factor=1.0, dist_x=dist_t.clone(), dist_t=dist_t,
                                    reg_avg_factor='weights')
    assert kl['loss_reg_kd'].item() == pytest.approx(0.0, abs=1e-6)
    assert kl['loss_kl_kd'].item() == pytest.approx(0.0, abs=1e-6)
    dist_x = torch.zeros(1, 4, 3)
    kl = CrossKDLoss(kl_weight=3.0)(cls, cls, b_t, b_t, avg_factor=1.0, dist_x=dist_x, dist_t=dist_t,
                                    reg_avg_factor='weights')
    q = torch.softmax(torch.tensor([0.0, 1.0, 2.0]), 0).tolist()
    one_side = sum(qi * math.log(qi * 3) for qi in q)      # KL(q || uniform)
    assert kl['loss_kl_kd'].item() == pytest.approx(3.0 * r * one_side / r, rel=1e-5)  # / sum of weights


def test_align_to_teacher_takes_the_teachers_channel_statistics():
    from kdlab.models.crosskd import align_to_teacher
    torch.manual_seed(0)
    s, t = torch.randn(2, 3, 4, 5) * 7 + 2, torch.randn(2, 3, 4, 5) * 0.5 - 1
    out = align_to_teacher(s, t)
    flat = lambda x: x.transpose(0, 1).reshape(3, -1)
    assert torch.allclose(flat(out).mean(1), flat(t).mean(1), atol=1e-5)
    assert torch.allclose(flat(out).std(1), flat(t).std(1), atol=1e-5)
    assert torch.allclose(align_to_teacher(t, t), t, atol=1e-5)   # the teacher's own feature is a fixed point


# ------------------------------------------------------------------------------------ the algorithm
def _build(student, teacher, smoke_data, **params):
    from mmengine.registry import DefaultScope
    from mmengine.runner import Runner
    from mmrazor.registry import MODELS

    import kdlab.models  # noqa: F401
    from kdlab.methods import distill_config
    from kdlab.zoo import detector_config
    cfg = distill_config(detector_config(student, 'smoke'), detector_config(teacher, 'smoke'), student=student,
                         teacher=teacher, teacher_ckpt=None, method='crosskd', **params)
    torch.manual_seed(0)
    with DefaultScope.overwrite_default_scope('mmdet'):   # leave no default scope behind for other tests
        model = MODELS.build(cfg.model)
        model.init_weights()
        data = next(iter(Runner.build_dataloader(cfg.train_dataloader, seed=0)))
    return cfg, model, model.data_preprocessor(data, True)


@pytest.fixture(scope='module')
def gfl(smoke_data):
    """GFL with all three KD terms on (the released mix of CrossKD's non-default branch: QFL 1 + GIoU 2 + KL 3;
    the default, QFL 1 + KL 4, has no GIoU term), so that every term is exercised."""
    return _build(STUDENT, TEACHER, smoke_data, reg_weight=2.0, kl_weight=3.0)


def test_released_settings_per_head_and_refusals(gfl, smoke_data):
    from kdlab.errors import KdlabError
    from kdlab.methods import distill_config
    from kdlab.zoo import detector_config
    assert gfl[0].model.distiller.loss_crosskd.reg_weight == 2.0    # given values win
    cfg = distill_config(detector_config(STUDENT, 'smoke'), detector_config(TEACHER, 'smoke'), student=STUDENT,
                         teacher=TEACHER, teacher_ckpt=None, method='crosskd')
    assert cfg.model.type == 'CrossKDDistill' and cfg.model.distiller.reused_head_idx == 3
    # the released GFL config's default branch: QFL 1 + KL 4, no GIoU term (kdlab.methods.official)
    assert dict(cfg.model.distiller.loss_crosskd) == dict(type='CrossKDLoss', cls_weight=1.0, beta=1.0,
                                                          reg_loss='giou', reg_weight=0.0, kl_weight=4.0, kl_T=1.0)
    fcos = distill_config(detector_config('fcos_r50', 'smoke'), detector_config('fcos_r101', 'smoke'),
                          student='fcos_r50', teacher='fcos_r101', teacher_ckpt=None, method='crosskd')
    assert fcos.model.distiller.reused_head_idx == 2
    assert fcos.model.distiller.loss_crosskd.reg_loss == 'iou' and fcos.model.distiller.loss_crosskd.cls_weight == 0.4
    assert 'custom_hooks' not in fcos or not fcos.custom_hooks    # CrossKD does not inherit by default
    with pytest.raises(KdlabError, match='same'):
        distill_config(detector_config('retinanet_r50', 'smoke'), detector_config('fcos_r101', 'smoke'),
                       student='retinanet_r50', teacher='fcos_r101', teacher_ckpt=None, method='crosskd')
    with pytest.raises(KdlabError, match='dense one-stage'):
        distill_config(detector_config('faster_rcnn_r50', 'smoke'), detector_config('faster_rcnn_r101', 'smoke'),
                       student='faster_rcnn_r50', teacher='faster_rcnn_r101', teacher_ckpt=None, method='crosskd')


def test_cross_head_predictions_have_the_teachers_shapes(gfl):
    _, model, batch = gfl
    model.train()
    with torch.no_grad():
        preds_T, holds_T = model.head_forward(model.teacher.bbox_head, model.teacher.extract_feat(batch['inputs']))
        preds_S, holds_S = model.head_forward(model.student.bbox_head, model.student.extract_feat(batch['inputs']))
        preds_X = model.cross_head(holds_S, holds_T)
    assert len(preds_X) == len(preds_T) == 5
    for x, t, (cls_hold, _) in zip(preds_X, preds_T, holds_S):
        assert [a.shape for a in x] == [b.shape for b in t]
        assert x[0].shape[1] == 6 and x[1].shape[1] == 4 * 17           # classes; 4 sides x (reg_max + 1)
        assert cls_hold.shape[1] == 64                                   # head width


def _losses(model, batch):
    model.zero_grad(set_to_none=True)
    return model.loss(batch['inputs'], batch['data_samples'])


def _grads(module):
    return [p.grad for p in module.parameters() if p.requires_grad]


def test_gradients_reach_the_student_and_never_the_teacher(gfl):
    _, model, batch = gfl
    model.train()
    losses = _losses(model, batch)
    assert {'distill.loss_cls_kd', 'distill.loss_reg_kd', 'distill.loss_kl_kd'} <= set(losses)
    assert all(torch.isfinite(losses[k]) and losses[k] > 0 for k in losses if k.startswith('distill.'))
    model.parse_losses(losses)[0].backward()
    assert all(g is not None for g in _grads(model.student.backbone))
    assert all(g is not None for g in _grads(model.student.bbox_head))
    assert all(p.grad is None for p in model.teacher.parameters())


def test_the_students_head_after_the_cut_gets_ground_truth_losses_only(gfl):
    _, model, batch = gfl
    model.train()
    losses = _losses(model, batch)
    kd = sum(v for k, v in losses.items() if k.startswith('distill.'))
    kd.backward()
    head = model.student.bbox_head
    # KD flows through the student's convs 1..3 into the teacher's conv 4 and predictors, never into the
    # student's conv 4, predictors or scales
    for m in (head.cls_convs[3], head.reg_convs[3], head.gfl_cls, head.gfl_reg, head.scales):
        assert all(g is None for g in _grads(m))
    for m in (head.cls_convs[0], head.cls_convs[2], head.reg_convs[2], model.student.neck):
        assert any(g is not None and g.abs().sum() > 0 for g in _grads(m))
    assert all(p.grad is None for p in model.teacher.parameters())


def test_the_students_gt_losses_are_the_detectors_own(gfl):
    _, model, batch = gfl
    model.train()
    torch.manual_seed(1)
    losses = _losses(model, batch)
    own = model.student.loss(batch['inputs'], batch['data_samples'])
    for k, v in own.items():
        a = sum(v) if isinstance(v, list) else v
        b = losses[f'student.{k}']
        assert float(sum(b) if isinstance(b, list) else b) == pytest.approx(float(a), rel=1e-5)


def test_kd_is_zero_when_the_students_head_feature_equals_the_teachers(gfl):
    _, model, batch = gfl
    model.train()
    with torch.no_grad():
        preds_T, holds_T = model.head_forward(model.teacher.bbox_head, model.teacher.extract_feat(batch['inputs']))
        preds_S, holds_S = model.head_forward(model.student.bbox_head, model.student.extract_feat(batch['inputs']))
        s_head = model.student.bbox_head
        from mmdet.models.utils import unpack_gt_instances
        from kdlab.models.crosskd import capture_returns
        gt, ignore, metas = unpack_gt_instances(batch['data_samples'])
        with capture_returns(s_head, 'get_targets') as targets:
            s_head.loss_by_feat(*tuple(list(o) for o in zip(*preds_S)), gt, metas, ignore)
        sizes = [p[0].shape[-2:] for p in preds_S]

        def kd(holds):
            preds_X = model.cross_head(holds, holds_T)
            inputs = model.adapter.kd_inputs(tuple(zip(*preds_T)), tuple(zip(*preds_X)), targets[0], sizes, 4)
            return {k: float(v) for k, v in model.distiller.compute_distill_losses(**inputs).items()}
        same = kd(holds_T)                       # the student's head feature is the teacher's
        assert set(same) == {'loss_cls_kd', 'loss_reg_kd', 'loss_kl_kd'}
        assert all(abs(v) < 1e-5 for v in same.values()), same
        scaled = kd([(2 * c + 1, 3 * r - 2) for c, r in holds_T])   # re-standardisation removes any affine map
        assert all(abs(v) < 1e-4 for v in scaled.values()), scaled
        other = kd(holds_S)
        assert all(v > 10 * max(same.values()) + 1e-6 for v in other.values()), other


@pytest.mark.parametrize('name', ['retinanet_r18', 'fcos_r18'])
def test_kd_is_zero_for_a_student_identical_to_its_teacher(name, smoke_data):
    _, model, batch = _build(name, name, smoke_data)
    model.student.load_state_dict(model.teacher.state_dict())
    model.eval()      # both sides use the BN running statistics: identical features and predictions
    losses = model.loss(batch['inputs'], batch['data_samples'])
    kd = {k: float(v) for k, v in losses.items() if k.startswith('distill.')}
    assert set(kd) == {'distill.loss_cls_kd', 'distill.loss_reg_kd'}
    assert all(abs(v) < 1e-5 for v in kd.values()), kd
    with torch.no_grad():   # a different student makes it positive
        for p in list(model.student.bbox_head.cls_convs.parameters()) + list(model.teacher.bbox_head.parameters()):
            p.add_(torch.randn_like(p) * 0.5)
    losses = model.loss(batch['inputs'], batch['data_samples'])
    assert float(losses['distill.loss_cls_kd']) > 1e-3 and float(losses['distill.loss_reg_kd']) > 1e-3


def test_one_training_iteration_of_the_smoke_config(gfl, tmp_path):
    from mmengine.registry import DefaultScope
    from mmengine.runner import Runner
    cfg = copy.deepcopy(gfl[0])
    cfg.work_dir = str(tmp_path)
    cfg.train_cfg = dict(type='IterBasedTrainLoop', max_iters=1, val_interval=100)
    for k in ('val_cfg', 'val_dataloader', 'val_evaluator', 'test_cfg', 'test_dataloader', 'test_evaluator'):
        cfg[k] = None
    cfg.default_hooks.checkpoint = None
    with DefaultScope.overwrite_default_scope('mmdet'):   # the runner's scope does not outlive the test
        runner = Runner.from_cfg(cfg)
        runner.train()
    hub = runner.message_hub
    for name in ('loss', 'student.loss_cls', 'distill.loss_cls_kd', 'distill.loss_reg_kd', 'distill.loss_kl_kd'):
        assert math.isfinite(hub.get_scalar(f'train/{name}').current())


def test_the_held_feature_is_after_the_activation_as_released_or_before_it_as_the_paper(smoke_data):
    from kdlab.models.crosskd import run_tower
    cfg, model, batch = _build('retinanet_r18', 'retinanet_r18', smoke_data)
    assert cfg.model.distiller.hold == 'post_activation' and model.distiller.hold == 'post_activation'
    feat = model.student.extract_feat(batch['inputs'])[0]
    towers = model.student.bbox_head.cls_convs
    out_post, post = run_tower(towers, feat, 2, post_activation=True)
    out_pre, pre = run_tower(towers, feat, 2, post_activation=False)
    assert torch.equal(out_post, out_pre)                      # the tower's own output does not change
    assert torch.allclose(post, torch.relu(pre)) and (pre < 0).any() and not torch.equal(post, pre)
    paper, _, _ = _build('retinanet_r18', 'retinanet_r18', smoke_data, hold='pre_activation')
    assert paper.model.distiller.hold == 'pre_activation'
