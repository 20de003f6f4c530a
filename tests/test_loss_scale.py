"""The mini scale's one loss-scale rule (kdlab.methods.loss_scale, kdlab.models.loss_scale): its premise, the
hook that applies it, the committed table and how a mini-v2 distillation config reads it."""
import copy

import pytest
import torch

STUDENT, TEACHER = 'retinanet_r18', 'retinanet_r50'


@pytest.fixture(scope='module')
def scenes(tmp_path_factory):
    from kdlab.data.scenes import SceneSpec, ensure_scenes
    return str(ensure_scenes(SceneSpec(num_train=4, num_val=2), root=tmp_path_factory.mktemp('scenes')))


def _at_side(cfg, side):
    cfg = copy.deepcopy(cfg)
    for step in cfg.train_dataloader.dataset.pipeline:
        if step['type'] == 'Resize':
            step['scale'] = (side, side)
    return cfg


def test_scale_distill_losses_touches_only_the_methods_losses():
    from kdlab.models.loss_scale import scale_distill_losses
    losses = {'student.loss_cls': torch.tensor(2.0), 'distill.loss_mgd_P3': torch.tensor(1.0),
              'distill.loss_pkd': [torch.tensor(1.0), torch.tensor(2.0)], 'distill.acc': torch.tensor(0.5)}
    out = scale_distill_losses(dict(losses), 10.0)
    assert float(out['student.loss_cls']) == 2.0 and float(out['distill.acc']) == 0.5    # not summed by mmengine
    assert float(out['distill.loss_mgd_P3']) == 10.0 and [float(v) for v in out['distill.loss_pkd']] == [10, 20]


def test_the_rules_premise_sum_reduced_losses_grow_with_the_maps_mean_reduced_do_not(scenes):
    """Twice the input side: PKD (mean over the maps) keeps its ratio to the detection loss, MGD (sum / N) grows
    with the maps' area; this is what the rule carries from COCO shapes to mini ones."""
    from kdlab.methods.loss_scale import first_iteration_losses, initial_config
    ratio = {}
    for method in ('pkd', 'mgd'):
        cfg = initial_config(method, STUDENT, TEACHER, 'mini', data_root=scenes)
        for side in (160, 320):
            r = first_iteration_losses(_at_side(cfg, side), data_root=scenes)
            assert r['input_hw'] == (side, side) and r['det'] > 0 and r['distill'] > 0
            ratio[method, side] = r['ratio']
    assert ratio['pkd', 320] == pytest.approx(ratio['pkd', 160], rel=0.1)
    assert ratio['mgd', 320] > 2 * ratio['mgd', 160]


def test_the_hook_multiplies_every_distillation_loss_and_nothing_else(scenes):
    from mmengine.registry import DefaultScope
    from mmrazor.registry import MODELS
    from kdlab.methods.loss_scale import initial_config, scene_batch
    from kdlab.models.loss_scale import DistillLossScaleHook
    cfg = initial_config('fgd', STUDENT, TEACHER, 'mini', data_root=scenes)
    torch.manual_seed(0)
    with DefaultScope.overwrite_default_scope('mmdet'):
        model = MODELS.build(cfg.model)
    model.init_weights()
    model.train()
    data = model.data_preprocessor(scene_batch(cfg, data_root=scenes), True)
    with torch.no_grad():
        plain = model(**data, mode='loss')
        DistillLossScaleHook(scale=3.0).before_train(type('Runner', (), {'model': model})())
        scaled = model(**data, mode='loss')
    assert set(plain) == set(scaled) and any(k.startswith('distill.') for k in plain)
    total = lambda v: float(sum(x.sum() for x in v)) if isinstance(v, (list, tuple)) else float(v)  # noqa: E731
    for name, value in plain.items():
        factor = 3.0 if name.startswith('distill.') and 'loss' in name else 1.0
        assert total(scaled[name]) == pytest.approx(factor * total(value), rel=1e-5), name


def test_the_committed_table_holds_the_rule():
    from kdlab.methods.loss_scale import read_table
    rows = read_table()
    assert rows, 'kdlab/methods/loss_scale.csv is empty: `kdlab loss-scale` measures it'
    by = {}
    from kdlab.methods.loss_scale import applies
    for r in rows:
        assert r['applicable'] == applies(r['method']) == (r['method'] != 'crosskd')   # CrossKD: predictions
        assert r['factor'] == pytest.approx(r['ratio_full'] / r['ratio_mini'] if r['applicable'] else 1.0, rel=1e-4)
        assert r['ratio_full'] == pytest.approx(r['distill_full'] / r['det_full'], rel=1e-4)
        by[r['method'], r['student'], r['teacher']] = r['factor']
    pair = ('retinanet_r50', 'retinanet_x101')
    # the mean-reduced loss keeps its balance across scales; a sum-reduced one needs a factor well above 1
    assert 0.5 < by[('pkd',) + pair] < 2.0
    assert by[('mgd',) + pair] > 2.0


def test_a_mini_v2_distillation_config_carries_its_pairs_factor(scenes, smoke_data):
    from kdlab.errors import KdlabError
    from kdlab.methods import distill_config
    from kdlab.methods.loss_scale import read_table
    from kdlab.zoo import detector_config
    student, teacher = 'retinanet_r50', 'retinanet_r101'
    factor = {r['method']: r['factor'] for r in read_table() if (r['student'], r['teacher']) == (student, teacher)}
    v2 = {n: detector_config(n, 'mini', protocol='v2', data_root=scenes) for n in (student, teacher, STUDENT)}
    cfg = distill_config(v2[student], v2[teacher], student=student, teacher=teacher, teacher_ckpt=None,
                         method='dfmsd')
    hooks = [h for h in cfg.custom_hooks if h['type'] == 'DistillLossScaleHook']
    assert len(hooks) == 1 and hooks[0]['scale'] == pytest.approx(factor['dfmsd'])
    assert cfg.kdlab_method['loss_scale'] == pytest.approx(factor['dfmsd'])
    assert 'kdlab.models' in cfg.custom_imports['imports']
    # given explicitly: no rule; 1.0: no hook at all
    plain = distill_config(v2[student], v2[teacher], student=student, teacher=teacher, teacher_ckpt=None,
                           method='dfmsd', loss_scale=1.0)
    assert not [h for h in plain.get('custom_hooks') or [] if h['type'] == 'DistillLossScaleHook']
    # a pair the table does not hold: the error names the command that measures it
    with pytest.raises(KdlabError, match='kdlab loss-scale dfmsd --pair retinanet_r18 retinanet_r101'):
        distill_config(v2[STUDENT], v2[teacher], student=STUDENT, teacher=teacher, teacher_ckpt=None,
                       method='dfmsd')
    # mini v1 has no rule (its stored results were made without one)
    v1 = {n: detector_config(n, 'mini', protocol='v1', data_root=str(smoke_data)) for n in (student, teacher)}
    old = distill_config(v1[student], v1[teacher], student=student, teacher=teacher, teacher_ckpt=None,
                         method='mgd')
    assert 'loss_scale' not in old.kdlab_method and 'kdlab_protocol' not in v1[student]


def test_a_factor_measured_on_other_stand_ins_is_refused(tmp_path):
    """The table's RetinaNet-X101 rows were measured on v1's X101 stand-in (a ResNeXt-50); v2's is a ResNeXt-101."""
    from kdlab.errors import KdlabError
    from kdlab.methods.loss_scale import read_table, rule_factor, stand_ins, write_rows
    row = next(r for r in read_table() if (r['method'], r['teacher']) == ('dfmsd', 'retinanet_r101'))
    path = write_rows([row], tmp_path / 'table.csv')
    assert rule_factor('dfmsd', 'retinanet_r50', 'retinanet_r101', path) == row['factor']
    write_rows([dict(row, stand_ins='0' * 12)], path)
    with pytest.raises(KdlabError, match='--again'):
        rule_factor('dfmsd', 'retinanet_r50', 'retinanet_r101', path)
    assert stand_ins('retinanet_r50', 'retinanet_x101') != stand_ins('retinanet_r50', 'retinanet_r101')


def test_a_caffe_style_config_at_initialisation_is_fed_unit_variance_pixels():
    """FCOS-R50's full config keeps std-1 BGR pixels for its caffe weights; with those weights dropped the rule's
    measurement divides by ImageNet's std (in BGR order), as the pytorch-style teacher's config does already."""
    from kdlab.methods.loss_scale import IMAGENET_STD_RGB, initial_config
    cfg = initial_config('mgd', 'fcos_r50', 'fcos_x101', 'full')
    student, teacher = cfg.model['architecture']['data_preprocessor'], cfg.model['teacher']['data_preprocessor']
    assert student['std'] == list(IMAGENET_STD_RGB[::-1]) and not student['bgr_to_rgb']
    assert teacher['std'] == list(IMAGENET_STD_RGB) and teacher['bgr_to_rgb']
    raw = initial_config('mgd', 'fcos_r50', 'fcos_x101', 'full', unit_inputs=False)
    assert raw.model['architecture']['data_preprocessor']['std'] == [1.0, 1.0, 1.0]
