"""A run parked in the store on one machine resumes on another (``kdlab park``, kdlab.engine.park)."""
import json
import shutil

import pytest
from mmengine.hooks import Hook
from mmengine.registry import HOOKS

from kdlab.engine import park as parking
from kdlab.engine.store import RunStore
from kdlab.errors import CheckpointError, KdlabError


@HOOKS.register_module(force=True)
class StopAfterEpochHook(Hook):
    """The machine goes away after epoch ``epoch``'s checkpoint is written."""
    priority = 'LOWEST'         # after mmengine's CheckpointHook

    def __init__(self, epoch: int):
        self.epoch = epoch

    def after_train_epoch(self, runner) -> None:
        if runner.epoch + 1 == self.epoch:
            raise KeyboardInterrupt('the session ends')


@pytest.fixture(scope='module')
def distillation(smoke_data, tmp_path_factory):
    """The smoke PKD distillation (RetinaNet-R50 <- X101) at two epochs, its teacher trained, and the same run
    trained uninterrupted in a store of its own."""
    from mmengine.config import Config
    from kdlab import demo
    from kdlab.engine.runner import execute, run_key
    from kdlab.zoo import mini_schedule
    store = RunStore(tmp_path_factory.mktemp('store'), tmp_path_factory.mktemp('work'))
    rows = demo.run('smoke', store=store, progress=False)
    cfg = Config.fromfile(str(store.run_dir(rows[2]['key']) / 'config.py'))
    cfg.merge_from_dict(mini_schedule(2))
    cfg.randomness = dict(seed=0, deterministic=True)
    key = run_key(cfg)
    whole = execute(cfg, name='pkd uninterrupted', store=RunStore(store.root / 'whole', store.work_root / 'whole'),
                    progress=False, key=key)
    return store, cfg, key, whole


def _stopped_after_epoch_1(cfg, key, tmp_path, here=None) -> RunStore:
    """Run ``key`` trained on this machine until its session ends after epoch 1: the store it trains into."""
    import copy
    from kdlab.engine.runner import execute
    here = here or RunStore(tmp_path / 'results', tmp_path / 'work_here')
    stopped = copy.deepcopy(cfg)
    stopped.custom_hooks = list(stopped.get('custom_hooks') or []) + [dict(type='StopAfterEpochHook', epoch=1)]
    with pytest.raises(KeyboardInterrupt):
        execute(stopped, name='pkd', store=here, progress=False, key=key)
    return here


def test_a_parked_distillation_resumes_on_another_machine(distillation, tmp_path):
    import torch
    from kdlab.compat import load_local_checkpoint
    from kdlab.engine.runner import execute
    store, cfg, key, whole = distillation
    here = _stopped_after_epoch_1(cfg, key, tmp_path)
    assert parking.unfinished_keys(here) == [key]

    entry = parking.park(here, key)
    folder = parking.parked_dir(here, key)
    assert entry['epoch'] == 1 and entry['teacher_dropped'] > 0        # the frozen teacher is not copied
    source = here.work_dir(key) / entry['checkpoint']
    assert entry['bytes'] < source.stat().st_size / 2
    state = load_local_checkpoint(str(folder / parking.STATE), 'cpu')
    assert not any(k.startswith('teacher.') for k in state['state_dict'])
    assert {v.dtype for v in state['state_dict'].values() if v.is_floating_point()} == {torch.float16}
    moments = [t for s in state['optimizer']['state'].values() for t in s.values() if t.numel() > 1]
    assert moments and {t.dtype for t in moments} == {torch.bfloat16}
    # stopped between epoch 1's checkpoint and its validation: no curve yet (the resumed run validates epoch 1 first)
    assert sorted(p.name for p in folder.iterdir()) == ['checks.json', 'logs', 'park.json', 'state.pth']
    assert [(e['key'], e['epoch'], e['here']) for e in parking.parked(here)] == [(key, 1, True)]

    damaged = RunStore(tmp_path / 'damaged', tmp_path / 'work_damaged')     # a park whose file does not match
    shutil.copytree(folder, parking.parked_dir(damaged, key))
    with open(parking.parked_dir(damaged, key) / parking.STATE, 'ab') as f:
        f.write(b'x')
    with pytest.raises(CheckpointError, match='sha256') as err:
        execute(cfg, name='pkd', store=damaged, progress=False, key=key)
    assert 'git checkout' in err.value.fix

    there = RunStore(here.root, tmp_path / 'work_there')             # another machine: the store, no work root
    record = execute(cfg, name='pkd', store=there, progress=False, key=key)
    assert record['resumed'] and record['attempts'] == 2
    assert [p['epoch'] for p in record['parked']] == [1] and record['parked'][0]['weights'] == 'float16'
    from kdlab.engine.runner import machine
    assert record['parked'][0]['machine'] == machine()                 # where the part before the park ran
    assert {k: record['provenance'][k] for k in machine()} == machine()   # and the resumed part
    assert [c['epoch'] for c in record['curve']] == [1, 2]             # no epoch left out
    assert not record.get('checks_failed'), record['checks']          # the teacher is the one the run names
    assert record['checks']['teacher_frozen']['ok']                    # over the resumed part
    earlier = record['checks']['teacher_before_park']
    assert [c['before'] for c in earlier] == [record['checks']['teacher_frozen']['before']]
    assert not folder.exists()                                         # the store keeps the record, not the park
    resumed = load_local_checkpoint(record['checkpoint'], 'cpu')['state_dict']
    uninterrupted = load_local_checkpoint(whole['checkpoint'], 'cpu')['state_dict']
    assert resumed.keys() == uninterrupted.keys()
    diff = max((resumed[k].float() - uninterrupted[k].float()).abs().max().item() for k in resumed
               if resumed[k].is_floating_point())
    largest = max(v.abs().max().item() for v in uninterrupted.values() if v.is_floating_point())
    assert 0 < diff < 0.05 * largest       # rounded once, not equal; and still the same training
    assert json.loads((there.run_dir(key) / 'run.json').read_text())['parked'] == record['parked']


def test_a_parked_calibration_trial_resumes_on_another_machine(distillation, tmp_path, monkeypatch, capsys):
    """A trial (``kdlab calibrate --trial``) keeps its record in ~/.cache, but `kdlab park` parks it in the
    repository's store (``parked/trials/``), and the trial's store resumes it on a machine without its checkpoint."""
    import argparse
    from kdlab.engine.calibration import trial_store
    from kdlab.engine.runner import execute
    for var, folder in (('KDLAB_DATA', 'data'), ('KDLAB_RESULTS', 'results'), ('KDLAB_WORK', 'work')):
        monkeypatch.setenv(var, str(tmp_path / folder))        # never this machine's own runs and trials
    store, cfg, key, whole = distillation
    trials = trial_store()
    assert trials.root.parent == tmp_path / 'trials'
    assert trials.parked_root == tmp_path / 'results' / 'parked' / 'trials'
    _stopped_after_epoch_1(cfg, key, tmp_path, here=trials)
    parking.main(argparse.Namespace(store=None, list=False, keys=[]))             # `kdlab park`
    assert (trials.parked_root / key / parking.META).is_file()
    assert parking.parked_keys(RunStore()) == []                 # the store's own runs: the trials folder is not one
    parking.main(argparse.Namespace(store=None, list=True, keys=[]))
    assert f'trial {key}: epoch 1' in capsys.readouterr().out
    shutil.rmtree(trials.work_root)                             # another machine: no trial work directory
    record = execute(cfg, name='pkd trial', store=trial_store(), progress=False, key=key)
    assert record['resumed'] and record['attempts'] == 2 and [p['epoch'] for p in record['parked']] == [1]
    assert [c['epoch'] for c in record['curve']] == [1, 2]
    assert not (trials.parked_root / key).exists()               # served: removed


def test_park_refuses_a_finished_run_and_a_run_without_a_checkpoint(distillation, tmp_path):
    store, cfg, key, whole = distillation
    finished = RunStore(store.root / 'whole', store.work_root / 'whole')
    with pytest.raises(KdlabError, match='commit-weights'):
        parking.park(finished, key)
    with pytest.raises(KdlabError, match='no checkpoint'):
        parking.park(RunStore(tmp_path / 'r', tmp_path / 'w'), 'abc')


def test_a_distillation_runs_committed_weights_are_its_students(distillation, tmp_path):
    """commit-weights of a finished distillation run keeps the student (and the distiller's own modules), not
    the frozen teacher, whose weights are its own run's: the file loads into the student as the checkpoint did."""
    import torch
    from mmengine.config import Config
    from kdlab.analysis.features import build_detector, load_weights
    store, cfg, key, whole = distillation
    shutil.copytree(store.root / 'whole' / key, tmp_path / 'runs' / key)      # the module's store stays as it is
    here = RunStore(tmp_path / 'runs', store.work_root / 'whole')
    entry = here.commit_weights(key)
    full = torch.load(whole['checkpoint'], map_location='cpu', weights_only=False)['state_dict']
    half = torch.load(tmp_path / 'runs' / key / entry['file'], map_location='cpu', weights_only=False)['state_dict']
    teacher = [k for k in full if k.startswith('teacher.')]
    assert teacher and entry['teacher_dropped'] == len(teacher)
    assert sorted(half) == sorted(k for k in full if not k.startswith('teacher.'))
    student = build_detector(Config.fromfile(str(here.run_dir(key) / 'config.py')))
    load_weights(student, str(tmp_path / 'runs' / key / entry['file']))
    name, value = next((k, v) for k, v in student.state_dict().items() if v.is_floating_point())
    assert torch.allclose(value, full['architecture.' + name].to(torch.float16).float())


def test_a_parked_run_resumes_through_the_launcher_of_concurrent_runs(distillation, tmp_path):
    """``-w N`` and ``--gpus N`` train each run in its own torchrun process (kdlab.engine.launch): it unparks too."""
    from kdlab.engine.launch import launch
    store, cfg, key, whole = distillation
    here = _stopped_after_epoch_1(cfg, key, tmp_path)
    parking.park(here, key)
    record = launch(cfg, name='pkd', store=RunStore(here.root, tmp_path / 'there'), key=key, device='cpu',
                    progress=False)
    assert [p['epoch'] for p in record['parked']] == [1] and record['resumed']
    assert parking.parked_keys(here) == []


def test_the_cost_table_says_which_runs_are_parked(tmp_path):
    from kdlab.engine.calibration import run_status
    store = RunStore(tmp_path / 'results', tmp_path / 'work')
    folder = parking.parked_dir(store, 'k')
    folder.mkdir(parents=True)
    (folder / parking.META).write_text(json.dumps({'key': 'k', 'epoch': 7}))
    (entry,) = parking.parked(store)
    assert run_status(None, entry) == 'parked at epoch 7' and not entry['here']
    assert run_status(None) == 'not trained' and run_status({'key': 'k'}, entry) == 'stored'


def test_a_plan_resumes_the_runs_it_began_before_it_starts_new_ones(tmp_path):
    from kdlab.engine.planner import PlannedRun, begun_first
    store = RunStore(tmp_path / 'results', tmp_path / 'work')
    runs = [PlannedRun(key=k, role='distilled', name=k, cfg=None, needs=needs)
            for k, needs in (('a', ()), ('b', ()), ('c', ()), ('d', ('t',)), ('e', ()))]
    for key in ('c', 'd'):                         # begun here; d needs a run that is not stored
        (store.work_dir(key)).mkdir(parents=True)
        (store.work_dir(key) / 'last_checkpoint').write_text('x')
    (parking.parked_dir(store, 'e')).mkdir(parents=True)      # begun on another machine
    (parking.parked_dir(store, 'e') / parking.META).write_text('{}')
    assert [r.key for r in begun_first(runs, store)] == ['c', 'e', 'a', 'b', 'd']


def test_an_attempts_time_ends_at_its_logs_last_line_not_at_the_files_copy(tmp_path):
    """A log restored from a park is a copy written later: its modification time is the restore's, so an attempt
    parked at 19:52 and restored at 02:50 counted the night (RepPoints-R50 2x: 682 min reported for 264)."""
    import os
    import time
    from kdlab.engine.runner import training_attempts
    log = tmp_path / '20261206_183922' / '20261206_183922.log'
    log.parent.mkdir()
    log.write_text('2026/12/06 18:39:22 - mmengine - INFO - \nSystem environment:\n'
                   '2026/12/06 19:52:21 - mmengine - INFO - Epoch(train) [29][280/300]  lr: 1.0000e-03\n')
    restored = time.mktime(time.strptime('20261207_025000', '%Y%m%d_%H%M%S'))
    os.utime(log, (restored, restored))
    (attempt,) = training_attempts(tmp_path)
    assert attempt['seconds'] == 19 * 3600 + 52 * 60 + 21 - (18 * 3600 + 39 * 60 + 22)
    log.write_text('no time on any line\n')         # nothing to read: the file's modification time
    os.utime(log, (restored, restored))
    assert training_attempts(tmp_path)[0]['seconds'] == restored - attempt['started']


def test_every_resumed_records_total_time_is_the_sum_of_its_stored_attempts():
    """A resumed run's ``wall_time_total_s`` is its earlier attempts' time, each from its start to its log's last
    timed line, plus the last attempt's ``wall_time_s``: read again from the committed ``train.log``, so a total
    that counted a park's idle hours (as RepPoints-R50 2x once did) fails here."""
    from kdlab.engine.runner import stored_attempts
    from kdlab.engine.store import repo_root
    store = RunStore(repo_root() / 'results' / 'runs')      # the committed records (tests run with their own store)
    records = [json.loads(p.read_text()) for p in sorted(store.root.glob('*/run.json'))]   # not load(): it would
    resumed = [r for r in records if r.get('attempts', 1) > 1]                              # write checkpoints
    assert resumed, 'the committed results hold resumed runs'
    for record in resumed:
        attempts = stored_attempts(store, record['key'])
        assert len(attempts) == record['attempts'], record['key']
        total = sum(a['seconds'] for a in attempts[:-1]) + record['wall_time_s']
        assert abs(total - record['wall_time_total_s']) < 60, (record['key'], total, record['wall_time_total_s'])


def test_a_stored_log_splits_into_its_attempts(tmp_path):
    from kdlab.engine.runner import stored_attempts
    store = RunStore(tmp_path / 'runs', tmp_path / 'work')
    logs = []
    for start, last in (('20261206_183922', '2026/12/06 19:52:21'), ('20261207_025000', '2026/12/07 03:00:00')):
        log = tmp_path / f'{start}.log'
        log.write_text(f'{last[:10]} 00:00:00 - noise\n{last} - mmengine - INFO - Epoch(train) [2][1/9]\n')
        logs.append(log)
    store.save(dict(key='k', status='finished'), 'cfg = 1\n', log_path=logs)
    first, second = stored_attempts(store, 'k')
    assert (first['log'], first['seconds']) == ('20261206_183922.log', 3600 + 12 * 60 + 59)
    assert second['seconds'] == 10 * 60
    (tmp_path / 'one.log').write_text('2026/12/06 18:39:22 - x\n')
    store.save(dict(key='j', status='finished'), 'cfg = 1\n', log_path=tmp_path / 'one.log')
    assert store.logged_attempts('j')[0][0] == 'train.log' and stored_attempts(store, 'j') == []


def test_a_parked_backbone_pretraining_resumes_on_another_machine(tmp_path, monkeypatch, capsys):
    """A Swin stand-in's pretraining outlasts a session: ``kdlab park`` parks its state (float16 weights, bfloat16
    AdamW state) in the store, a machine without the state resumes from there, and the written weights' entry says
    where each part ran; the park is removed once the weights are written."""
    import argparse
    import torch
    from kdlab.zoo import pretrain
    monkeypatch.setattr(pretrain, 'PRETRAINED_DIR', tmp_path / 'pretrained')
    monkeypatch.setenv('KDLAB_DATA', str(tmp_path / 'data'))     # never this machine's own pretrainings,
    monkeypatch.setenv('KDLAB_WORK', str(tmp_path / 'work'))     # runs or trials
    store, cache = RunStore(tmp_path / 'store'), pretrain._cache_dir('r18')
    shutil.rmtree(cache, ignore_errors=True)        # the session's cache root is shared with other tests
    monkeypatch.setenv('KDLAB_RESULTS', str(store.root))
    kwargs = dict(epochs=2, train_images=64, val_images=32, batch=32, progress=False, min_over_chance=0)
    real, calls = pretrain._accuracy, []

    def session_ends_in_epoch_two(*args, **kw):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt('the session ends')
        return real(*args, **kw)
    monkeypatch.setattr(pretrain, '_accuracy', session_ends_in_epoch_two)
    with pytest.raises(KeyboardInterrupt):
        pretrain.pretrain('r18', cache=cache, **kwargs)
    first_epoch = torch.load(cache / 'last.pth', weights_only=False)['history']
    with pytest.raises(KdlabError, match='no pretraining state'):
        pretrain.park_state('r18', cache=tmp_path / 'elsewhere')
    parking.main(argparse.Namespace(store=None, list=False, keys=[]))      # `kdlab park`: runs and pretrainings
    (entry,) = parking.parked_pretrainings(store)
    assert (entry['backbone'], entry['epoch'], entry['epochs'], entry['weights']) == ('r18', 1, 2, 'float16')
    parked = torch.load(parking.pretraining_dir(store, 'r18', torch.load(cache / 'last.pth', weights_only=False)
                                                ['resume_key']) / parking.STATE, weights_only=False)
    assert all(v.dtype == torch.float16 for v in parked['model'].values() if v.is_floating_point())
    parking.main(argparse.Namespace(store=None, list=True, keys=[]))
    assert 'pretraining of r18' in capsys.readouterr().out
    shutil.rmtree(cache)                                                  # another machine: an empty ~/.cache
    monkeypatch.setattr(pretrain, '_accuracy', real)
    written = pretrain.pretrain('r18', cache=cache, **kwargs)
    assert [h['epoch'] for h in written['history']] == [1, 2] and written['history'][0] == first_epoch[0]
    assert len(written['parks']) == 1 and written['parks'][0]['machine'] and written['parks'][0]['epoch'] == 1
    assert parking.parked_pretrainings(store) == []                       # served: removed
    with pytest.raises(KdlabError, match='finished'):                     # a finished state is not parked
        pretrain.park_state('r18', cache=cache)
    shutil.rmtree(cache)


def test_an_attempt_started_in_the_second_of_the_one_before_gets_a_log_of_its_own(tmp_path, monkeypatch):
    """mmengine names an attempt's log by its start second: a resumed attempt that starts within the second of the
    one before it waits for the next second, else it would overwrite that log and be counted as the same attempt
    (a smoke run stopped and resumed from its park at once, as above)."""
    import time
    from kdlab.engine import runner
    now = time.strftime(runner.LOG_NAME_FORMAT, time.localtime())
    (tmp_path / now).mkdir()
    runner._new_log_second(tmp_path)
    assert time.strftime(runner.LOG_NAME_FORMAT, time.localtime()) > now
    assert runner.log_started(f'{now}.log') is not None        # the name the attempts are read back by
    naps = []
    monkeypatch.setattr(runner.time, 'sleep', naps.append)
    runner._new_log_second(tmp_path)          # no earlier log in this second: no wait
    assert naps == []
