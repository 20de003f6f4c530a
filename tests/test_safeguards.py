"""Safeguards against silent failures: a run that diverges stops at once, says where, stores a 'diverged'
record (never over a finished one) and keeps its last good checkpoint."""
import json

import pytest

from kdlab.engine.store import RunStore


def _smoke(smoke_data, lr, epochs=2):
    from kdlab.zoo import detector_config
    cfg = detector_config('retinanet_r18', 'smoke', data_root=str(smoke_data))
    cfg.optim_wrapper.optimizer.lr = lr
    cfg.optim_wrapper.clip_grad = None
    cfg.train_cfg.max_epochs = epochs
    cfg.param_scheduler = []
    return cfg


def test_a_diverging_run_stops_names_the_iteration_and_term_and_is_stored_as_diverged(smoke_data, tmp_path):
    import math
    from kdlab.engine.runner import execute, run_key
    from kdlab.errors import RunDivergedError
    store = RunStore(tmp_path / 'runs', tmp_path / 'work')
    cfg = _smoke(smoke_data, lr=1e12)
    key = run_key(cfg)
    with pytest.raises(RunDivergedError, match=r'diverged at iteration \d+ \(epoch 1\): .*loss') as err:
        execute(cfg, name='diverging', store=store, progress=False)
    assert err.value.terms and not any(math.isfinite(v) for v in err.value.terms.values())
    assert store.load(key) is None                                # not a finished run: the next call trains again
    record = json.loads((store.run_dir(key) / 'run.json').read_text())
    assert record['status'] == 'diverged' and record['diverged']['iteration'] == err.value.iteration
    assert set(record['diverged']['terms']) == set(err.value.terms)
    assert record['checks']['lr_batch']['lr'] == pytest.approx(1e12)
    assert 'fix' not in record and 'lower the learning rate' in err.value.fix


@pytest.mark.parametrize('method', ['pkd', 'mgd'])
def test_with_every_distillation_loss_at_zero_a_distilled_run_equals_its_baseline(smoke_data, tmp_path, method):
    """The distilled student starts where its baseline starts (student_init='baseline') and, with the
    distillation losses x 0, trains weight for weight as the baseline does: nothing but the losses differs.
    mmrazor's own order (student_init='algorithm') draws the student's random layers after building the
    teacher, so the two runs start apart."""
    import torch
    from kdlab.engine.runner import execute
    from kdlab.methods import distill_config
    from kdlab.zoo import detector_config
    store = RunStore(tmp_path / 'runs', tmp_path / 'work')
    student, teacher = (detector_config(n, 'smoke', data_root=str(smoke_data)) for n in ('retinanet_r18', 'retinanet_r50'))
    baseline = execute(student, name='baseline', store=store, progress=False)

    def student_weights(record, prefix=''):
        state = torch.load(record['checkpoint'], map_location='cpu', weights_only=False)['state_dict']
        return {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}

    base = student_weights(baseline)
    for init, equal in (('baseline', True), ('algorithm', False)):
        cfg = distill_config(student, teacher, student='retinanet_r18', teacher='retinanet_r50', teacher_ckpt=None,
                             method=method, loss_scale=0.0, inherit=(), student_init=init)
        record = execute(cfg, name=f'{method}-x0-{init}', store=store, progress=False)
        distilled = student_weights(record, 'architecture.')
        assert set(distilled) == set(base)
        assert all(torch.equal(distilled[k], base[k]) for k in base) is equal, init
        assert record['checks']['distillation_active']['ok'] is False          # the check sees the zero loss
        assert record['checks_failed'] == ['distillation_active']


# ----------------------------------------------------------------------------------------------- bad input
def test_a_truncated_or_foreign_checkpoint_is_refused_naming_the_fix(tmp_path):
    import torch
    from kdlab.engine.checkpoints import check_checkpoint
    from kdlab.errors import CheckpointError
    good = tmp_path / 'good.pth'
    torch.save({'state_dict': {'w': torch.zeros(1000)}}, good)
    cut = tmp_path / 'cut.pth'
    cut.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    with pytest.raises(CheckpointError, match='truncated or corrupted') as err:
        check_checkpoint(dict(type='RetinaNet'), str(cut))
    assert 'train it again' in err.value.fix
    junk = tmp_path / 'list.pth'
    torch.save([1, 2, 3], junk)
    with pytest.raises(CheckpointError, match='holds a list, not a checkpoint'):
        check_checkpoint(dict(type='RetinaNet'), str(junk))


@pytest.fixture
def coco_copy(smoke_data, tmp_path):
    import shutil
    root = tmp_path / 'coco'
    shutil.copytree(smoke_data, root)
    return root


def test_a_data_root_whose_annotation_file_is_not_coco(coco_copy):
    from kdlab.data import check_data_root
    from kdlab.errors import DataRootError
    ann = coco_copy / 'annotations' / 'instances_val.json'
    ann.write_text('{"images": [], "annotations": {}}')
    with pytest.raises(DataRootError, match="not a COCO detection annotation file: no list 'annotations', "
                                            "'categories'") as err:
        check_data_root(coco_copy)
    assert 'cocodataset.org' in err.value.fix
    ann.write_text('{"images": [')
    with pytest.raises(DataRootError, match='is not JSON'):
        check_data_root(coco_copy)


def test_an_image_listed_but_missing(coco_copy):
    from kdlab.data import check_data_root
    from kdlab.errors import DataRootError
    victim = sorted((coco_copy / 'train').iterdir())[3]
    victim.unlink()
    with pytest.raises(DataRootError, match=rf"1 image\(s\) listed in .*instances_train.json are not in .*train, "
                                            rf"e.g. \['{victim.name}'\]"):
        check_data_root(coco_copy)
