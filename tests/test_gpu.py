"""On a CUDA device (marker ``gpu``; skipped without one; ``tools/gpu_check.sh`` runs them): smoke-scale
trainings of the baselines and of six methods, and one with mixed precision, each stored with ``cuda`` in its
provenance. The ops themselves on CUDA: ``tests/test_mmcv_ops.py::test_each_op_on_cuda_equals_its_cpu_result``."""
import pytest
import torch

pytestmark = [pytest.mark.gpu,
              pytest.mark.skipif(not torch.cuda.is_available(), reason='no CUDA device (tools/gpu_check.sh)')]

#: method -> (student, teachers): same-family pairs every method can distil; DFMSD a two-stage chain
DISTILLED = {
    'pkd': ('retinanet_r18', ['retinanet_r50']),
    'mgd': ('retinanet_r18', ['retinanet_r50']),
    'dmkd': ('retinanet_r18', ['retinanet_r50']),
    'icd': ('retinanet_r18', ['retinanet_r50']),
    'crosskd': ('retinanet_r18', ['retinanet_r50']),
    'dfmsd': ('retinanet_r18', ['retinanet_r50', 'retinanet_r101']),
}


def _store(tmp_path):
    from kdlab.engine.store import RunStore
    return RunStore(tmp_path / 'runs', tmp_path / 'work')


def _on_cuda(record):
    assert record['status'] == 'finished' and record['provenance']['device'] == 'cuda', record['provenance']
    assert set(record['metrics']) >= {'mAP', 'AP50'}


@pytest.mark.parametrize('name', ['retinanet_r50', 'faster_rcnn_r50', 'reppoints_r50'])
def test_a_smoke_baseline_trains_on_cuda(name, tmp_path, smoke_data):
    from kdlab.engine.runner import execute
    from kdlab.zoo import detector_config
    _on_cuda(execute(detector_config(name, 'smoke'), name=name, store=_store(tmp_path), progress=False))


@pytest.mark.parametrize('method', sorted(DISTILLED))
def test_a_smoke_distillation_trains_on_cuda(method, tmp_path, smoke_data):
    from kdlab.engine.planner import execute_plan, plan_pair
    student, teachers = DISTILLED[method]
    plan = plan_pair(student, teachers, method, 'smoke', teacher_schedule='1x')
    records = execute_plan(plan, _store(tmp_path), progress=False, device='cuda')
    _on_cuda(records[plan.rows['distilled']])


def test_mixed_precision_trains_on_cuda(tmp_path, smoke_data):
    from kdlab.engine.runner import execute
    from kdlab.zoo import detector_config
    cfg = detector_config('retinanet_r50', 'smoke')
    cfg.optim_wrapper = dict(cfg.optim_wrapper, type='AmpOptimWrapper', dtype='float16')
    record = execute(cfg, name='retinanet_r50 amp', store=_store(tmp_path), progress=False)
    _on_cuda(record)
