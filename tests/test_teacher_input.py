"""teacher_input='own': each model fed its own preprocessing (kdlab.models.teacher_input); 'student' (default,
the released code): the teacher is fed the student's batch and the run record says what it sees."""
import pytest
import torch

CAFFE = dict(mean=[103.53, 116.28, 123.675], std=[1.0, 1.0, 1.0], bgr_to_rgb=False)     # FCOS-R50-caffe
PYTORCH = dict(mean=[123.675, 116.28, 103.53], std=[58.395, 57.12, 57.375], bgr_to_rgb=True)  # GFL, Swin


def _normalise(bgr, norm):
    x = bgr.flip(1) if norm['bgr_to_rgb'] else bgr
    return (x - torch.tensor(norm['mean']).view(1, 3, 1, 1)) / torch.tensor(norm['std']).view(1, 3, 1, 1)


@pytest.mark.parametrize('student,teacher', [(CAFFE, PYTORCH), (PYTORCH, CAFFE), (PYTORCH, PYTORCH)])
def test_the_student_batch_becomes_the_teachers_own(student, teacher):
    from kdlab.models.teacher_input import to_teacher_input
    bgr = torch.rand(2, 3, 8, 10) * 255          # images as loaded (BGR pixels)
    got = to_teacher_input(_normalise(bgr, student), student, teacher)
    assert torch.allclose(got, _normalise(bgr, teacher), atol=1e-4)


def test_padding_stays_zero_for_the_caffe_and_pytorch_pair():
    from kdlab.models.teacher_input import to_teacher_input
    got = to_teacher_input(torch.zeros(1, 3, 2, 2), CAFFE, PYTORCH)
    assert got.abs().max() < 1e-6


def test_the_switch_adds_the_hook_only_where_the_normalisations_differ():
    from kdlab.methods import distill_config
    from kdlab.zoo import detector_config

    def cfg(student, teacher, mode, scale='full'):
        return distill_config(detector_config(student, scale), detector_config(teacher, scale), student=student,
                              teacher=teacher, teacher_ckpt=None, method='pkd', teacher_input=mode)
    hooks = lambda c: [h for h in (c.get('custom_hooks') or []) if h['type'] == 'TeacherOwnInputHook']  # noqa
    released = cfg('fcos_r50', 'gfl_r101', 'student')
    assert not hooks(released) and 'released code' in released.kdlab_method['teacher_input']
    own = cfg('fcos_r50', 'gfl_r101', 'own')
    hook, = hooks(own)
    assert hook['student']['std'] == [1.0, 1.0, 1.0] and hook['teacher']['bgr_to_rgb'] is True
    assert "teacher_input='own'" in own.kdlab_method['teacher_input']
    assert 'kdlab.models' in own.custom_imports['imports']
    assert not hooks(cfg('retinanet_r50', 'retinanet_x101', 'own'))     # one normalisation: nothing to convert
    with pytest.raises(Exception, match='teacher input'):
        cfg('fcos_r50', 'gfl_r101', 'teacher')


def test_the_hook_feeds_the_teachers_backbone_its_own_input(smoke_data):
    from types import SimpleNamespace
    from mmengine.registry import init_default_scope
    from mmrazor.registry import MODELS
    from kdlab.methods import distill_config
    from kdlab.models.teacher_input import TeacherOwnInputHook
    from kdlab.zoo import detector_config
    s = detector_config('retinanet_r18', 'smoke', data_root=str(smoke_data))
    t = detector_config('retinanet_r50', 'smoke', data_root=str(smoke_data))
    init_default_scope('mmdet')
    torch.manual_seed(0)
    model = MODELS.build(distill_config(s, t, student='retinanet_r18', teacher='retinanet_r50', teacher_ckpt=None,
                                        method='pkd').model)
    model.eval()
    bgr = torch.rand(1, 3, 64, 64) * 255
    with torch.no_grad():
        expected = model.teacher.extract_feat(_normalise(bgr, PYTORCH))
        hook = TeacherOwnInputHook(student=CAFFE, teacher=PYTORCH)
        hook.before_train(SimpleNamespace(model=model))
        hook.before_train(SimpleNamespace(model=model))          # idempotent: one conversion, not two
        got = model.teacher.extract_feat(_normalise(bgr, CAFFE))
        student_unchanged = model.student.backbone(_normalise(bgr, CAFFE))
    assert all(torch.allclose(a, b, atol=1e-4) for a, b in zip(got, expected))
    assert student_unchanged[0].shape[0] == 1
