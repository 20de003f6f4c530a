"""Inheriting: the student's neck / heads start from the teacher's, for any method."""
from types import SimpleNamespace

import pytest
import torch


def _detector(name):
    from mmengine.registry import DefaultScope
    from mmdet.registry import MODELS

    import kdlab.models  # noqa: F401
    from kdlab.zoo import detector_config
    with DefaultScope.overwrite_default_scope('mmdet'):
        model = MODELS.build(detector_config(name, 'smoke').model)
        model.init_weights()
    return model


@pytest.fixture(scope='module')
def pair(smoke_data):
    torch.manual_seed(0)
    return _detector('retinanet_r50'), _detector('retinanet_r101')


def _state(module):
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


def test_inherit_copies_every_matching_tensor_and_reports_the_rest(pair):
    from kdlab.models.inherit import inherit_from_teacher
    student, teacher = pair
    s_before = {m: _state(getattr(student, m)) for m in ('backbone', 'neck', 'bbox_head')}
    report = inherit_from_teacher(student, teacher, ('neck', 'bbox_head', 'roi_head'))
    assert report.absent_modules == ['roi_head'] and not report.missing_in_teacher
    # mini r50 and r101 backbones differ in width: the FPN's convs that read the backbone (the lateral 1x1
    # convs and RetinaNet's first extra conv, 'on_input') cannot be copied
    assert sorted(n for n, _, _ in report.shape_mismatch) == sorted([
        *(f'neck.lateral_convs.{i}.conv.weight' for i in range(3)), 'neck.fpn_convs.3.conv.weight'])
    n_entries = len(s_before['neck']) + len(s_before['bbox_head'])
    assert len(report.copied) == n_entries - 4 > 20
    for full in report.copied:
        mod, key = full.split('.', 1)
        assert torch.equal(getattr(student, mod).state_dict()[key], getattr(teacher, mod).state_dict()[key])
    for full, s_shape, t_shape in report.shape_mismatch:
        key = full.split('.', 1)[1]
        assert s_shape != t_shape and torch.equal(student.neck.state_dict()[key], s_before['neck'][key])
    assert all(torch.equal(v, s_before['backbone'][k]) for k, v in student.backbone.state_dict().items())
    assert f'copied {n_entries - 4} tensor(s)' in report.summary() and 'lateral_convs.0' in report.summary()


def test_inherit_refuses_modules_of_another_type_or_none_at_all(pair, smoke_data):
    from kdlab.errors import KdlabError
    from kdlab.models.inherit import inherit_from_teacher
    student, _ = pair
    fcos = _detector('fcos_r50')
    with pytest.raises(KdlabError, match='RetinaHead.*FCOSHead'):
        inherit_from_teacher(student, fcos, ('bbox_head',))
    report = inherit_from_teacher(student, fcos, ('neck', 'bbox_head'), strict=False)
    assert report.type_mismatch == ['bbox_head'] and report.copied and 'another type' in report.summary()
    with pytest.raises(KdlabError, match='none of'):
        inherit_from_teacher(student, fcos, ('rpn_head', 'roi_head'))


def _fake_runner(model, iteration=0, load_from=None):
    return SimpleNamespace(model=model, iter=iteration, _load_from=load_from)


def test_the_hook_inherits_once_on_a_fresh_run_only(smoke_data):
    from kdlab.models.inherit import InheritTeacherHook
    torch.manual_seed(1)
    algo = SimpleNamespace(student=_detector('retinanet_r50'), teacher=_detector('retinanet_r50'))
    w = lambda m: m.bbox_head.retina_cls.weight
    original = w(algo.student).detach().clone()
    for kwargs in (dict(iteration=7), dict(load_from='student.pth')):     # resumed / loaded: keep the weights
        hook = InheritTeacherHook(['neck', 'bbox_head'])
        hook.before_train(_fake_runner(algo, **kwargs))
        assert hook.report is None and torch.equal(w(algo.student), original)
    hook = InheritTeacherHook(['neck', 'bbox_head'])
    hook.before_train(_fake_runner(algo))
    assert torch.equal(w(algo.student), w(algo.teacher)) and not torch.equal(w(algo.student), original)
    assert not hook.report.shape_mismatch and len(hook.report.copied) > 0


def _cfg(method, student='retinanet_r50', teacher='retinanet_r101', **kw):
    from kdlab.methods import distill_config
    from kdlab.zoo import detector_config
    return distill_config(detector_config(student, 'smoke'), detector_config(teacher, 'smoke'), student=student,
                          teacher=teacher, teacher_ckpt=None, method=method, **kw)


def test_inherit_is_a_switch_of_every_method(smoke_data):
    from kdlab.engine.runner import run_key
    from kdlab.methods.icd import ICD_INHERIT
    from kdlab.models.inherit import DEFAULT_INHERIT
    assert ICD_INHERIT == DEFAULT_INHERIT
    plain = _cfg('pkd')
    assert not plain.get('custom_hooks') and 'inherit' not in plain.kdlab_method
    on = _cfg('pkd', inherit=('neck', 'bbox_head'))
    assert on.custom_hooks == [dict(type='InheritTeacherHook', modules=['neck', 'bbox_head'])]
    assert on.kdlab_method['inherit'] == ['neck', 'bbox_head'] and run_key(on) != run_key(plain)
    icd = _cfg('icd')                # ICD inherits by default (its released code does): what the pair has
    assert icd.custom_hooks[0]['modules'] == ['neck', 'bbox_head'] == icd.kdlab_method['inherit']
    assert not _cfg('icd', inherit=()).get('custom_hooks')
    # a method's default inherits within a detector family only (the released configs: MGD's Cascade ->
    # Faster R-CNN config does not); across families only an explicit request inherits, and it is checked
    assert not _cfg('icd', teacher='fcos_r101').get('custom_hooks')
    assert 'inherit' not in _cfg('icd', teacher='fcos_r101').kdlab_method
    assert _cfg('icd', teacher='fcos_r101', inherit=('neck',)).custom_hooks[0]['modules'] == ['neck']
    from kdlab.errors import KdlabError
    with pytest.raises(KdlabError, match='RetinaHead.*FCOSHead'):     # refused when the config is made
        _cfg('pkd', teacher='fcos_r101', inherit=('neck', 'bbox_head'))


def test_the_hook_works_with_an_fpn_teacher_distill_algorithm(smoke_data):
    from mmengine.registry import DefaultScope
    from mmrazor.registry import MODELS

    from kdlab.models.inherit import InheritTeacherHook
    cfg = _cfg('pkd', inherit=('neck', 'bbox_head'))
    with DefaultScope.overwrite_default_scope('mmdet'):
        algo = MODELS.build(cfg.model)
        algo.init_weights()
    assert type(algo).__name__ == 'FpnTeacherDistill'
    hook = InheritTeacherHook(**{k: v for k, v in cfg.custom_hooks[0].items() if k != 'type'})
    hook.before_train(_fake_runner(algo))
    assert torch.equal(algo.student.neck.fpn_convs[0].conv.weight, algo.teacher.neck.fpn_convs[0].conv.weight)
    assert len(hook.report.shape_mismatch) == 4
