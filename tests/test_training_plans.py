"""Plans that train outside the notebooks: torchrun on two CPU processes, two runs at a time (in order, a failing
run, an interrupt), a needed checkpoint missing on this machine, a given or committed teacher, full-scale plans.
Apart from tests/test_reproduce_runs.py so that pytest-xdist runs them beside its every-table fixture, the
suite's longest."""
import os

import pytest

from kdlab.engine.store import RunStore

def test_torchrun_two_cpu_processes_train_and_store_once(smoke_data, tmp_path):
    from kdlab.engine.planner import execute_plan, plan_pair
    store = RunStore(tmp_path / 'runs', tmp_path / 'work')
    plan = plan_pair('retinanet_r18', ['retinanet_r50'], 'pkd', 'smoke', teacher_schedule='1x')
    records = execute_plan(plan, store, progress=False, gpus=2, device='cpu')
    assert set(records) == set(plan.runs)
    for key in plan.runs:
        rec = store.load(key)
        assert rec['provenance']['world_size'] == 2 and rec['provenance']['device'] == 'cpu'
        assert os.path.isfile(rec['checkpoint'])
    text = (store.run_dir(plan.rows['distilled']) / 'config.py').read_text()
    assert "backend='gloo'" in text and "launcher='pytorch'" in text


def test_two_workers_train_a_plan_in_order_with_the_results_of_one(smoke_data, tmp_path):
    """Teacher and baseline train side by side, each in its own one-thread process; the student starts once
    its teacher is stored. Every run gives what the same run gives trained alone in this process."""
    from kdlab.engine.planner import execute_plan, plan_pair
    from kdlab.errors import KdlabError
    plan = plan_pair('retinanet_r18', ['retinanet_r50'], 'pkd', 'smoke', teacher_schedule='1x')
    student = plan.rows['distilled']
    apart = RunStore(tmp_path / 'runs', tmp_path / 'work')
    with pytest.raises(KdlabError, match='neither stored nor planned'):
        execute_plan(plan, apart, progress=False, only=[student], workers=2, device='cpu')
    with pytest.raises(KdlabError, match='choose one'):
        execute_plan(plan, apart, progress=False, workers=2, gpus=2, device='cpu')
    records = execute_plan(plan, apart, progress=False, workers=2, device='cpu')
    alone = execute_plan(plan, RunStore(tmp_path / 'runs1', tmp_path / 'work1'), progress=False, device='cpu')
    assert set(records) == set(alone) == set(plan.runs)
    for key in plan.runs:
        assert records[key]['metrics'] == alone[key]['metrics'], plan.runs[key].name
        assert records[key]['provenance']['world_size'] == 1
    teacher = apart.load(plan.rows['teacher:retinanet_r50'])
    assert apart.load(student)['built_from'] == apart.inputs(plan.runs[student].needs)
    assert teacher['checkpoint'] in (apart.run_dir(student) / 'config.py').read_text()


def test_with_two_workers_a_failing_run_stops_only_the_runs_that_need_it(smoke_data, tmp_path):
    from kdlab.engine.planner import execute_plan, plan_pair
    from kdlab.errors import KdlabError
    plan = plan_pair('retinanet_r18', ['retinanet_r50'], 'pkd', 'smoke', teacher_schedule='1x')
    teacher = plan.rows['teacher:retinanet_r50']
    plan.runs[teacher].cfg.model.type = 'NoSuchDetector'        # its process fails while building the model
    store = RunStore(tmp_path / 'runs', tmp_path / 'work')
    with pytest.raises(KdlabError, match=f'run {teacher} .* failed'):
        execute_plan(plan, store, progress=False, workers=2, device='cpu')
    assert store.load(plan.rows['baseline']) is not None               # trained beside it, kept
    assert store.load(teacher) is None and store.load(plan.rows['distilled']) is None
    assert 'NoSuchDetector' in (store.work_dir(teacher) / 'console.log').read_text()


def test_interrupting_two_workers_stops_their_trainings(smoke_data, tmp_path):
    """A Ctrl-C (or a Jupyter interrupt, which reaches the kernel only) while two runs train: both trainings
    and their torchrun workers end, and the interrupt reaches the caller; a rerun resumes (tested above)."""
    import signal
    import threading
    import time
    from kdlab.engine import launch
    from kdlab.engine.planner import execute_plan, plan_pair
    plan = plan_pair('retinanet_r18', ['retinanet_r50'], 'pkd', 'smoke', teacher_schedule='1x')
    store = RunStore(tmp_path / 'runs', tmp_path / 'work')
    started, main = [], threading.main_thread().ident

    def interrupt_once_both_train():
        deadline = time.time() + 120
        while time.time() < deadline and len(_workers(tmp_path)) < 2:     # torchrun has started both workers
            time.sleep(0.2)
        started.extend(launch._CHILDREN)
        signal.pthread_kill(main, signal.SIGINT)

    # Python ignores SIGINT when it was started with SIGINT ignored (`nohup cmd &` from a script): the
    # handler a terminal or Jupyter gives is installed here so that the test does not depend on its parent.
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    threading.Thread(target=interrupt_once_both_train, daemon=True).start()
    try:
        with pytest.raises(KeyboardInterrupt):
            execute_plan(plan, store, progress=False, workers=2, device='cpu')
    finally:
        signal.signal(signal.SIGINT, previous)
    assert len(started) == 2 and all(p.poll() is not None for p in started)
    assert not launch._CHILDREN and _workers(tmp_path) == []      # no worker left training unseen
    for row in ('teacher:retinanet_r50', 'baseline', 'distilled'):  # stopped, not waited for
        assert store.load(plan.rows[row]) is None, row


def test_sigterm_stops_a_command_as_an_interrupt(monkeypatch, capsys):
    """`kill PID` of a kdlab command (a background job ignores SIGINT; a batch system's time limit sends SIGTERM)
    takes the interrupt's path: the trainings it started are stopped, and it exits with 143."""
    import argparse
    import signal
    import time
    from kdlab import cli
    seen = []

    def command(args):
        try:
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(30)
        except KeyboardInterrupt:
            seen.append('interrupt')          # where execute_plan stops its trainings
            raise
        return 0

    parser = argparse.ArgumentParser()
    parser.set_defaults(func=command)
    monkeypatch.setattr(cli, 'build_parser', lambda: parser)
    before = signal.getsignal(signal.SIGTERM)
    assert cli.main([]) == 143 and seen == ['interrupt']
    assert 'terminated' in capsys.readouterr().err
    assert signal.getsignal(signal.SIGTERM) is before          # put back


def _workers(tmp_path) -> list:
    """The pids of the training processes (torchrun's workers) whose config lies under ``tmp_path``."""
    found = []
    for pid in filter(str.isdigit, os.listdir('/proc')):
        try:
            with open(f'/proc/{pid}/cmdline', 'rb') as f:
                cmd = f.read()
        except OSError:
            continue
        if str(tmp_path).encode() in cmd and b'kdlab.engine.launch' in cmd and b'torch.distributed.run' not in cmd:
            found.append(pid)
    return found


@pytest.mark.parametrize('workers', [1, 2])
def test_a_needed_checkpoint_missing_here_is_trained_again(smoke_data, tmp_path, workers):
    """With two workers the teacher is trained again in its own process, beside the baseline, and its
    student starts once the new checkpoint is stored, not on the old record."""
    from kdlab.engine.planner import execute_plan, plan_pair
    store = RunStore(tmp_path / 'runs', tmp_path / 'work')
    plan = plan_pair('retinanet_r18', ['retinanet_r50'], 'pkd', 'smoke', teacher_schedule='1x')
    teacher = plan.rows['teacher:retinanet_r50']
    first = execute_plan(plan, store, progress=False, only=[teacher])[teacher]
    os.remove(first['checkpoint'])                       # the store came from another machine
    records = execute_plan(plan, store, progress=False, workers=workers, device='cpu')
    rebuilt = store.load(teacher)
    assert os.path.isfile(rebuilt['checkpoint']) and rebuilt['previous_metrics'] == first['metrics']
    assert rebuilt['started'] > first['started'] and records[teacher] == rebuilt
    assert store.load(plan.rows['distilled'])['built_from'][teacher]['started'] == rebuilt['started']
    assert rebuilt['metrics'] == first['metrics']        # same key, same seed, CPU: the same computation
    assert store.load(plan.rows['distilled']) == records[plan.rows['distilled']]


def test_a_given_teacher_checkpoint_is_evaluated_not_trained(smoke_data, tmp_path):
    from kdlab.engine.planner import execute_plan, plan_pair
    from kdlab.engine.reproduce import reproduction
    store = RunStore(tmp_path / 'runs', tmp_path / 'work')
    plan = plan_pair('retinanet_r18', ['retinanet_r50'], 'pkd', 'smoke', teacher_schedule='1x')
    trained_key = plan.rows['teacher:retinanet_r50']
    trained = execute_plan(plan, store, progress=False, only=[trained_key])[trained_key]
    job = reproduction('dcsf_kd', ['table1'], 'smoke', rows=['retinanet_x101.retinanet_r50.pkd'],
                       store=RunStore(tmp_path / 'runs2', tmp_path / 'work2'),
                       teacher_ckpts={'retinanet_x101': trained['checkpoint']})
    teacher = next(r for r in job.runs().values() if r.role == 'teacher')
    assert 'given checkpoint' in teacher.name and teacher.cfg.load_from == trained['checkpoint']
    rec = execute_plan(job.plans[0], job.store, progress=False, only=[teacher.key])[teacher.key]
    assert rec['checkpoint'] == trained['checkpoint']
    assert not list(job.store.work_dir(teacher.key).glob('epoch_*.pth'))      # nothing was trained
    with pytest.raises(Exception, match='does not exist'):
        reproduction('dcsf_kd', ['table1'], 'smoke', teacher_ckpts={'retinanet_x101': str(tmp_path / 'no.pth')})


def test_full_scale_plans_from_official_configs_with_released_teachers():
    from kdlab.engine.reproduce import reproduction
    url = 'https://download.openmmlab.com/mmdetection/v2.0/retinanet/retinanet_x101_64x4d_fpn_2x_coco.pth'
    job = reproduction('dcsf_kd', ['table1'], 'full', rows=['retinanet_x101.retinanet_r50.dcsf_kd'],
                       teacher_ckpts={'retinanet_x101': url})
    runs = {r.role: r for r in job.runs().values()}
    assert runs['teacher'].cfg.load_from == url and runs['teacher'].cfg.model.backbone.depth == 101
    assert runs['distilled'].cfg.model.architecture.neck.out_channels == 256      # the official widths


def test_committed_weights_spare_a_new_machine_the_teacher(smoke_data, tmp_path):
    """A teacher's weights committed beside its record (fp16, sha256): on a machine without its checkpoint
    (another work root) the student trains at once, from those weights, and the teacher gate passes; a
    corrupted weights file stops with the fix."""
    import shutil
    from kdlab.engine.planner import execute_plan, plan_pair
    from kdlab.errors import CheckpointError
    plan = plan_pair('retinanet_r18', ['retinanet_r50'], 'pkd', 'smoke', teacher_schedule='1x')
    teacher, student = plan.rows['teacher:retinanet_r50'], plan.rows['distilled']
    here = RunStore(tmp_path / 'runs', tmp_path / 'work')
    trained = execute_plan(plan, here, progress=False, only=[teacher])[teacher]
    entry = here.commit_weights(teacher)
    assert entry['bytes'] < 0.6 * os.path.getsize(trained['checkpoint'])     # no optimizer state, half precision
    assert here.load(teacher)['checkpoint'] == trained['checkpoint']          # this machine keeps its own

    shutil.copytree(tmp_path / 'runs', tmp_path / 'runs_clone')               # a clone on another machine,
    (tmp_path / 'work').rename(tmp_path / 'work_elsewhere')                   # where the checkpoint is not
    there = RunStore(tmp_path / 'runs_clone', tmp_path / 'work_there')
    rec = there.load(teacher)
    assert rec['checkpoint_source'] == 'committed fp16 weights' and os.path.isfile(rec['checkpoint'])
    records = execute_plan(plan, there, progress=False, only=[plan.rows['baseline'], student])
    assert not list(there.work_dir(teacher).glob('epoch_*.pth'))               # the teacher was not trained
    gate = records[student]['checks']['teacher_gate']
    assert gate['ok'] and gate['weights_equal'] and not gate['checkpoint_digest_matches']
    assert gate['evaluated']         # fp16 weights are not the file the teacher's mAP was measured on: measured again
    assert there.load(teacher)['started'] == trained['started']

    weights = tmp_path / 'runs_clone' / teacher / 'weights-fp16.pth'
    weights.write_bytes(weights.read_bytes()[:-10])
    for f in there.work_dir(teacher).glob('committed-*.pth'):
        f.unlink()
    with pytest.raises(CheckpointError, match='(?s)do not match.*git checkout'):
        there.load(teacher)
