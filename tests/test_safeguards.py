"""Safeguards against silent failures and bad input: a diverging run, a distillation that does nothing, a
truncated checkpoint, a data root that is not COCO or lacks an image, a full disk, a deleted work directory."""
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


def test_a_distillers_warm_up_defers_the_gradient_check_to_its_end(smoke_data, tmp_path):
    """ICD's loss reaches the student only after its warm-up (detached for ``warmup_iters``, released code's
    BYPASS_DISTILL): its losses are checked at the first iteration, the gradient at the warm-up's end, so a
    distillation that works is not reported as inactive (the mini-v2 ICD records of seeds 0-1 were)."""
    from kdlab.engine.runner import execute
    from kdlab.methods import distill_config
    from kdlab.zoo import detector_config
    store = RunStore(tmp_path / 'runs', tmp_path / 'work')
    student, teacher = (detector_config(n, 'smoke', data_root=str(smoke_data)) for n in ('retinanet_r18', 'retinanet_r50'))
    cfg = distill_config(student, teacher, student='retinanet_r18', teacher='retinanet_r50', teacher_ckpt=None,
                         method='icd', inherit=(), warmup_iters=3)
    active = execute(cfg, name='icd-warm-up', store=store, progress=False)['checks']['distillation_active']
    assert active['iteration'] == 0 and active['gradient_checked_at'] == 3
    assert active['gradient_reaches_student'] is True and active['student_tensors_with_gradient'] > 0
    assert active['ok'] is True and 'gradient_pending' not in active


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


def test_a_file_digest_is_remembered_until_the_file_changes(tmp_path):
    import hashlib
    import os
    from kdlab.engine import store
    path = tmp_path / 'teacher.pth'
    path.write_bytes(b'a' * 4096)
    first = store.file_digest(str(path))
    assert first == hashlib.sha256(b'a' * 4096).hexdigest()[:16] and store.file_digest(str(path)) == first
    path.write_bytes(b'b' * 4096)                                   # same size, rewritten in place
    os.utime(path, ns=(1, 1))                                       # a new modification time, whatever the clock
    assert store.file_digest(str(path)) == hashlib.sha256(b'b' * 4096).hexdigest()[:16]


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


def test_a_full_disk_while_a_checkpoint_is_written_leaves_the_previous_one_usable(smoke_data, tmp_path,
                                                                                  monkeypatch):
    """mmengine deletes the old checkpoint before writing the new one (max_keep_ckpts=1); kdlab defers that and
    writes atomically, so the run stops with an error naming the intact checkpoint and resumes from it."""
    import errno
    import torch
    import mmengine.runner.runner as mm_runner
    from kdlab.engine.runner import execute, run_key
    from kdlab.errors import CheckpointWriteError
    store = RunStore(tmp_path / 'runs', tmp_path / 'work')
    cfg = _smoke(smoke_data, lr=1e-3, epochs=2)
    real, calls = mm_runner.save_checkpoint, []

    def full_disk(checkpoint, filepath, **kwargs):
        calls.append(filepath)
        if len(calls) == 2:                        # epoch 2: half a file, then no space left
            with open(filepath, 'wb') as f:
                f.write(b'\0' * 1000)
            raise OSError(errno.ENOSPC, 'No space left on device')
        return real(checkpoint, filepath, **kwargs)

    monkeypatch.setattr(mm_runner, 'save_checkpoint', full_disk)
    with pytest.raises(CheckpointWriteError, match='No space left on device') as err:
        execute(cfg, name='full-disk', store=store, progress=False)
    work = store.work_dir(run_key(cfg))                    # beside it: the store's lock files
    assert 'epoch_1.pth' in err.value.fix and 'intact' in err.value.fix
    assert (work / 'last_checkpoint').read_text().strip().endswith('epoch_1.pth')
    assert sorted(p.name for p in work.glob('epoch_*')) == ['epoch_1.pth']          # no partial file left
    assert torch.load(work / 'epoch_1.pth', map_location='cpu', weights_only=False)['meta']['epoch'] == 1
    monkeypatch.setattr(mm_runner, 'save_checkpoint', real)
    record = execute(cfg, name='full-disk', store=store, progress=False)           # space again: resumes
    assert record['resumed'] and record['status'] == 'finished'
    assert sorted(p.name for p in work.glob('epoch_*')) == ['epoch_2.pth']


def test_a_work_directory_deleted_during_the_run_is_recreated_and_the_run_finishes(smoke_data, tmp_path,
                                                                                   monkeypatch):
    import shutil
    from kdlab.engine import hooks
    from kdlab.engine.runner import execute
    store = RunStore(tmp_path / 'runs', tmp_path / 'work')
    cfg = _smoke(smoke_data, lr=1e-3, epochs=2)
    seed_epoch = hooks.EpochSeedHook.before_train_epoch

    def delete_at_epoch_2(self, runner):
        if runner.epoch == 1:
            shutil.rmtree(runner.work_dir)
        seed_epoch(self, runner)

    monkeypatch.setattr(hooks.EpochSeedHook, 'before_train_epoch', delete_at_epoch_2)
    record = execute(cfg, name='deleted', store=store, progress=False)
    assert record['status'] == 'finished' and record['checkpoint'].endswith('epoch_2.pth')
    recreated = record['checks']['work_dir_recreated']
    assert [r['epoch'] for r in recreated] == [2] and recreated[0]['iteration'] > 0
    assert record['checks']['lr_batch']['batch'] == 4                   # kept in memory, not lost with the folder


def test_two_reproductions_of_one_paper_at_once_the_second_is_refused(tmp_path):
    import os
    from kdlab.engine.batch import reproduce_lock, run_notebooks
    from kdlab.errors import KdlabError
    with reproduce_lock(tmp_path, 'pkd', 'mini'):
        with pytest.raises(KdlabError, match=rf'another kdlab reproduce of pkd at mini scale is running '
                                             rf'\(pid {os.getpid()}\)') as err:
            run_notebooks('pkd', ['abstract'], scale='mini', out=tmp_path, progress=False, train=False)
        assert 'wait for it' in err.value.fix
        with reproduce_lock(tmp_path, 'pkd', 'smoke'):       # another scale writes other files: allowed
            pass
    with reproduce_lock(tmp_path, 'pkd', 'mini'):             # released when the first ends
        pass
    assert not list(tmp_path.glob('*.ipynb'))                 # nothing was executed or overwritten
