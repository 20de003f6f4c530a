"""kdlab/configs/icd and kdlab/configs/crosskd: plain mmrazor configs that parse and agree with the method
builders at full scale (the config a table row of the same pair runs), field by field."""
import os

import pytest

import kdlab

CONFIG_ROOT = os.path.join(os.path.dirname(kdlab.__file__), 'configs')

# file -> (method, student, student schedule, teacher, teacher schedule)
ROWS = {
    'icd/icd_faster-rcnn_r101-ms-3x_faster-rcnn_r50-ms-1x_coco.py': ('icd', 'faster_rcnn_r50', '1x', 'faster_rcnn_r101', '2x'),
    'icd/icd_retina_r101-caffe-ms-3x_retina_r50-caffe-ms-1x_coco.py': ('icd', 'retinanet_r50', '1x', 'retinanet_r101', '2x'),
    'icd/icd_fcos_r101-caffe-ms-2x_fcos_r50-caffe-ms-1x_coco.py': ('icd', 'fcos_r50', '1x', 'fcos_r101', '2x_ms'),
    'crosskd/crosskd_retina_r101-2x_retina_r50_2x_coco.py': ('crosskd', 'retinanet_r50', '2x', 'retinanet_r101', '2x'),
    'crosskd/crosskd_gfl_r101-ms-2x_gfl_r50_1x_coco.py': ('crosskd', 'gfl_r50', '1x', 'gfl_r101', '2x_ms'),
    'crosskd/crosskd_fcos_r101-caffe-ms-2x_fcos_r50-caffe-ms-2x_coco.py': ('crosskd', 'fcos_r50', '2x_ms', 'fcos_r101', '2x_ms'),
}


def _plain(v):
    """Plain dicts and lists; a registered component's constructor defaults filled in (channels left out)."""
    from _components import constructor_defaults
    if hasattr(v, 'to_dict'):
        v = v.to_dict()
    if isinstance(v, dict):
        v = {**constructor_defaults(v.get('type')), **v}
        return {k: _plain(x) for k, x in v.items() if k not in ('student_channels', 'teacher_channels')}
    if isinstance(v, (list, tuple)):
        return [_plain(x) for x in v]
    return v


def test_every_icd_and_crosskd_config_is_listed():
    import glob
    found = {os.path.relpath(p, CONFIG_ROOT) for d in ('icd', 'crosskd') for p in glob.glob(f'{CONFIG_ROOT}/{d}/*.py')}
    assert set(ROWS) <= found
    assert {f for f in found if 'swin' not in f} == set(ROWS)     # the Swin teacher: no zoo pair at full scale


@pytest.mark.parametrize('rel', sorted(ROWS))
def test_config_agrees_with_the_method_builder(rel):
    from mmengine.config import Config
    from kdlab.methods import distill_config
    from kdlab.zoo import detector_config
    method, student, s_sched, teacher, t_sched = ROWS[rel]
    cfg = Config.fromfile(os.path.join(CONFIG_ROOT, rel))
    ref = distill_config(detector_config(student, 'full', schedule=s_sched),
                         detector_config(teacher, 'full', schedule=t_sched), student=student, teacher=teacher,
                         teacher_ckpt=None, method=method)
    assert cfg.model.type == ref.model.type
    assert _plain(cfg.model.distiller) == _plain(ref.model.distiller)
    if method == 'icd':
        mine, theirs = cfg.optim_wrapper, ref.optim_wrapper
        assert _plain(mine.decoder) == _plain(theirs.decoder)
        assert mine.student.clip_grad == theirs.student.clip_grad == dict(type='value', clip_value=1.0)
        hooks = [h for h in cfg.custom_hooks if h.type == 'InheritTeacherHook']
        assert set(hooks[0].modules) == set(ref.kdlab_method['inherit'])
