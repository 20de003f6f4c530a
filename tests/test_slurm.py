"""Runs dispatched to Slurm (kdlab.engine.slurm), against a real single-node Slurm: Debian's ``slurm-wlm``,
slurmctld and slurmd started on localhost by the fixture with a configuration of their own (ports, state and
spool directories under pytest's tmp dir; ``auth/none``, so no munge daemon), stopped at the end. Skipped where
Slurm is not installed (``apt-get install slurm-wlm``) or this is not root (slurmd starts jobs as their user)."""
from __future__ import annotations

import os
import shutil
import subprocess
import time

import pytest

from kdlab.engine.launch import _free_port
from kdlab.engine.store import RunStore

SLURM = all(shutil.which(c) for c in ('slurmctld', 'slurmd', 'sbatch', 'squeue', 'scontrol'))


@pytest.fixture(scope='module')
def slurm(tmp_path_factory):
    """A one-node Slurm cluster on this machine; yields its ``SLURM_CONF``."""
    if not SLURM:
        pytest.skip('Slurm is not installed: apt-get install slurm-wlm (Debian)')
    if os.geteuid() != 0:
        pytest.skip('slurmd must run as root to start jobs')
    root = tmp_path_factory.mktemp('slurm')
    for d in ('state', 'spool'):
        (root / d).mkdir()
    node = subprocess.run(['slurmd', '-C'], capture_output=True, text=True, check=True).stdout.splitlines()[0]
    node = ' '.join(f for f in node.split() if not f.startswith(('UpTime', 'RealMemory'))) + ' RealMemory=2000'
    host = node.split()[0].split('=', 1)[1]
    conf = root / 'slurm.conf'
    conf.write_text('\n'.join([
        'ClusterName=kdlabtest', f'SlurmctldHost={host}', 'AuthType=auth/none', 'CredType=cred/none',
        'SlurmUser=root', 'SlurmdUser=root', f'SlurmctldPort={_free_port()}', f'SlurmdPort={_free_port()}',
        f'StateSaveLocation={root}/state', f'SlurmdSpoolDir={root}/spool',
        f'SlurmctldPidFile={root}/slurmctld.pid', f'SlurmdPidFile={root}/slurmd.pid',
        f'SlurmctldLogFile={root}/slurmctld.log', f'SlurmdLogFile={root}/slurmd.log',
        'ProctrackType=proctrack/pgid', 'TaskPlugin=task/none', 'MpiDefault=none',
        'SchedulerType=sched/backfill', 'SelectType=select/cons_tres', 'SelectTypeParameters=CR_Core',
        'ReturnToService=2', 'JobCompType=jobcomp/none', 'JobAcctGatherType=jobacct_gather/none',
        'AccountingStorageType=accounting_storage/none', 'MinJobAge=3600', 'SchedulerParameters=sched_interval=1',
        f'{node} State=UNKNOWN', 'PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP', '']))
    old = os.environ.get('SLURM_CONF')
    os.environ['SLURM_CONF'] = str(conf)
    subprocess.run(['slurmctld', '-c', '-f', str(conf)], check=True)
    subprocess.run(['slurmd', '-f', str(conf)], check=True)
    try:
        for _ in range(60):
            state = subprocess.run(['sinfo', '-h', '-o', '%T'], capture_output=True, text=True).stdout.strip()
            if state == 'idle':
                break
            time.sleep(0.5)
        else:
            pytest.skip(f'the test cluster did not come up (node state {state!r}); see {root}/slurmctld.log')
        yield conf
    finally:
        for _ in range(60):                  # a stored run's job may still be exiting: let it end, then stop
            if not subprocess.run(['squeue', '-h'], capture_output=True, text=True).stdout.strip():
                break
            time.sleep(0.5)
        subprocess.run(['scancel', '--full', '--partition=debug'], capture_output=True)
        subprocess.run(['scontrol', 'shutdown'], capture_output=True)
        for pid in ('slurmd.pid', 'slurmctld.pid'):
            path = root / pid
            if path.is_file():
                try:
                    os.kill(int(path.read_text().strip()), 15)
                except (ProcessLookupError, ValueError):
                    pass
        if old is None:
            os.environ.pop('SLURM_CONF', None)
        else:
            os.environ['SLURM_CONF'] = old


def _wait(store, keys, states=('finished', 'failed', 'cancelled', 'diverged'), timeout=600):
    from kdlab.engine.slurm import states as run_states
    end = time.time() + timeout
    while time.time() < end:
        frame = run_states(store, keys)
        if len(frame) == len(keys) and frame['state'].isin(states).all():
            return frame.set_index('key')
        time.sleep(2)
    raise AssertionError(f'jobs not ended in {timeout} s:\n{run_states(store, keys)}')


def test_job_script_waits_on_what_the_run_needs(tmp_path):
    from kdlab.engine.planner import plan_pair
    from kdlab.engine.slurm import job_script
    plan = plan_pair('retinanet_r18', ['retinanet_r50'], 'pkd', 'smoke', teacher_schedule='1x')
    store = RunStore(tmp_path / 'runs', tmp_path / 'work')
    run = plan.runs[plan.rows['distilled']]
    text = job_script(run, store, config=tmp_path / 'c.py', gpus=4, device='cuda', depends=['11', '12'])
    assert f'#SBATCH --job-name=kdlab-{run.key}' in text
    assert '#SBATCH --dependency=afterok:11:12' in text and '#SBATCH --kill-on-invalid-dep=yes' in text
    assert '#SBATCH --ntasks=4' in text and '#SBATCH --gres=gpu:4' in text
    assert '--launcher slurm' in text and '--resolve' in text and text.count('\nsrun ') == 1
    one = job_script(run, store, config=tmp_path / 'c.py', gpus=1, device='cpu', depends=[])
    assert '--gres' not in one and 'dependency' not in one and '--launcher none' in one
    assert 'CUDA_VISIBLE_DEVICES=' in one


def test_without_slurm_submitting_names_the_fix(tmp_path, monkeypatch):
    from kdlab.engine.planner import plan_pair
    from kdlab.engine.slurm import SlurmError, submit
    monkeypatch.setenv('PATH', str(tmp_path))
    plan = plan_pair('retinanet_r18', ['retinanet_r50'], 'pkd', 'smoke', teacher_schedule='1x')
    with pytest.raises(SlurmError, match=r'(?s)sbatch.*not on PATH.*login node'):
        submit(plan, RunStore(tmp_path / 'runs', tmp_path / 'work'), device='cpu', progress=False)


def test_a_plan_runs_as_slurm_jobs_in_dependency_order(slurm, smoke_data, tmp_path, capsys):
    """Teacher and baseline as two jobs, the distilled student's job waiting on the teacher's; a teacher that
    fails takes the student's job out of the queue (cancelled), the baseline is stored; submitting again skips
    the stored baseline and resubmits the rest; a third submission submits nothing."""
    from kdlab.engine.planner import plan_pair
    from kdlab.engine.slurm import ledger, main, submit
    plan = plan_pair('retinanet_r18', ['retinanet_r50'], 'pkd', 'smoke', teacher_schedule='1x')
    teacher, baseline, student = (plan.rows[k] for k in ('teacher:retinanet_r50', 'baseline', 'distilled'))
    store = RunStore(tmp_path / 'runs', tmp_path / 'work')
    plan.runs[teacher].cfg.model.type = 'NoSuchDetector'          # its job fails while building the model
    first = {line['key']: line for line in submit(plan, store, device='cpu', progress=False)}
    assert {line['action'] for line in first.values()} == {'submitted'}
    show = subprocess.run(['scontrol', 'show', 'job', '-o', first[student]['job']], capture_output=True,
                          text=True).stdout
    assert f'Dependency=afterok:{first[teacher]["job"]}' in show
    again = submit(plan, store, device='cpu', progress=False)          # while they wait or run: nothing new
    # (the failing teacher's job can end within a second, before this second submission: only a job that has
    # ended may be submitted again; found on a loaded machine, where the baseline still waited)
    resubmitted = {line['key'] for line in again if line['action'] == 'submitted'}
    assert resubmitted <= {teacher}
    assert {line['action'] for line in again} <= {'queued', 'stored', 'submitted'}
    assert {line['job'] for line in again if line['action'] == 'queued'} <= {line['job'] for line in first.values()}

    ended = _wait(store, list(plan.runs))
    assert ended.loc[baseline, 'state'] == 'finished' and ended.loc[baseline, 'mAP'] is not None
    assert ended.loc[teacher, 'state'] == 'failed'
    assert ended.loc[student, 'state'] == 'cancelled'                  # its dependency can never be met
    assert 'NoSuchDetector' in (store.work_dir(teacher) / f'slurm-{first[teacher]["job"]}.out').read_text()
    main(type('Args', (), {'results': str(store.root), 'work_dir': str(store.work_root)})())
    out = capsys.readouterr().out
    assert '1 finished' in out and '1 failed' in out and '1 cancelled' in out and 'submitting again' in out

    plan.runs[teacher].cfg.model.type = 'RetinaNet'                    # fixed: the same key, submitted again
    second = {line['key']: line for line in submit(plan, store, device='cpu', progress=False)}
    assert second[baseline]['action'] == 'stored'
    assert second[teacher]['action'] == second[student]['action'] == 'submitted'
    assert ledger(store)[teacher]['job'] == second[teacher]['job'] != first[teacher]['job']
    ended = _wait(store, list(plan.runs))
    assert set(ended['state']) == {'finished'}
    record = store.load(student)
    assert record['built_from'] == store.inputs([teacher])               # distilled from the teacher's job
    assert store.load(teacher)['checkpoint'] in (store.run_dir(student) / 'config.py').read_text()
    assert {line['action'] for line in submit(plan, store, device='cpu', progress=False)} == {'stored'}


def test_reproduce_slurm_without_sbatch_exits_2_naming_the_fix(tmp_path, monkeypatch, capsys):
    from kdlab.cli import main
    monkeypatch.setenv('PATH', str(tmp_path))
    code = main(['reproduce', 'pkd', '--scale', 'smoke', '--results', str(tmp_path / 'runs'),
                 '--work-dir', str(tmp_path / 'work'), '--slurm=--partition=gpu --time=1:00:00'])
    assert code == 2
    err = capsys.readouterr().err
    assert '`sbatch` is not on PATH' in err and 'login node' in err


def test_status_off_the_cluster_says_unknown_not_failed(tmp_path, monkeypatch):
    import json
    from kdlab.engine.slurm import states
    store = RunStore(tmp_path / 'runs', tmp_path / 'work')
    (store.work_root / 'slurm').mkdir(parents=True)
    (store.work_root / 'slurm' / 'jobs.json').write_text(json.dumps(
        {'a' * 16: dict(job='7', name='teacher', role='teacher', script='x', submitted='now')}))
    monkeypatch.setenv('PATH', str(tmp_path))
    frame = states(store)
    assert list(frame['state']) == ['unknown'] and list(frame['job']) == ['7']
