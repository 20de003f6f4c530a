"""Reproductions that train: every registered table at smoke scale through its notebook (papermill), the batch
CLI, torchrun on two CPU processes, and a needed checkpoint that is missing on this machine."""
import json
import os
import sys
from pathlib import Path

import pytest

from kdlab import papers
from kdlab.engine.store import RunStore

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / 'tools'))
import make_reproduce_notebooks  # noqa: E402


def test_the_committed_notebooks_are_the_generated_ones():
    for pid in make_reproduce_notebooks.PAPERS:
        path = ROOT / 'notebooks' / f'reproduce_{pid}.ipynb'
        assert path.read_text() == make_reproduce_notebooks.render(pid), \
            f'{path.name} differs: run python tools/make_reproduce_notebooks.py'
    assert set(make_reproduce_notebooks.PAPERS) == {p for p in papers.list_papers()
                                                     if any(t for t in papers.list_tables(p))}


@pytest.fixture(scope='module')
def smoke_runs(smoke_data, tmp_path_factory):
    """One run store for every smoke reproduction of this module (shared teachers and baselines train once)."""
    root = tmp_path_factory.mktemp('reproduce')
    return dict(results_dir=str(root / 'runs'), work_dir=str(root / 'work')), root


@pytest.fixture(scope='module')
def smoke_reproductions(smoke_runs):
    """Every registered table executed at smoke scale through its paper's notebook, two kernels at a time (the
    machine's two cores): one notebook per table, except DCSF-KD's two tables, which go through ``-j 2`` in one
    call. Concurrent notebooks share one run store; a run two of them need is trained once, under its lock.
    Returns ``{paper: ([executed notebooks], {table: export folder}, error or None)}``."""
    import concurrent.futures as futures
    from kdlab.engine.batch import run_notebooks
    store_params, root = smoke_runs
    jobs = []      # (paper, tables, jobs, out)
    for paper in make_reproduce_notebooks.SEED_PAPERS:
        tables = papers.list_tables(paper)
        if paper == 'dcsf_kd':
            jobs.append((paper, tables, 2, root / paper))
        else:
            jobs += [(paper, [t], 1, root / paper / t) for t in tables]
    jobs.sort(key=lambda j: -len(list(papers.iter_rows(j[0], j[1][0]))))   # the longest tables first

    def run(job):
        paper, tables, n, out = job
        return run_notebooks(paper, tables, scale='smoke', jobs=n, out=out, progress=False, export_dir=str(out),
                             formats=['csv', 'png'], train=True, **store_params)

    results = {p: ([], {}, None) for p in make_reproduce_notebooks.SEED_PAPERS}
    with futures.ThreadPoolExecutor(max_workers=2) as pool:
        for job, fut in [(j, pool.submit(run, j)) for j in jobs]:
            paper, tables, n, out = job
            executed, folders, error = results[paper]
            try:
                executed += fut.result()
            except Exception as err:        # reported by the paper's test, not here
                error = error or err
            folders.update({t: out for t in tables})
            results[paper] = (executed, folders, error)
    return results


@pytest.mark.parametrize('paper', make_reproduce_notebooks.SEED_PAPERS)
def test_every_registered_table_reproduces_at_smoke_scale(paper, smoke_reproductions):
    executed, folders, error = smoke_reproductions[paper]
    if error is not None:
        raise error
    tables = papers.list_tables(paper)
    assert len(executed) == len(tables) and all(p.is_file() for p in executed)
    import pandas as pd
    for table in tables:
        out = folders[table]
        frame = pd.read_csv(out / f'{table}_smoke.csv')
        reported = list(papers.iter_rows(paper, table))
        assert list(frame['row']) == [r.id for r in reported]
        for r, status in zip(reported, frame['status']):
            if not r.runnable:
                assert status.startswith('skipped: not runnable'), (r.id, status)
            else:       # runs, or says why kdlab cannot run it (a method or detector it does not have)
                assert status == 'finished' or status.startswith('skipped: '), (r.id, status)
        assert (frame['status'] == 'finished').any() or paper == 'dfmsd' and table == 'table10', \
            f'{paper} {table}: no row ran'
        assert frame.loc[frame['status'] == 'finished', 'mAP kdlab'].notna().all()
        assert (out / f'{table}_smoke.png').stat().st_size > 5_000
    nb = json.loads(executed[0].read_text())
    assert any(o.get('output_type') == 'display_data' or o.get('data') for c in nb['cells']
               for o in c.get('outputs', [])), 'the executed notebook shows no table'


def test_a_failing_notebook_exits_1_naming_the_cell(smoke_runs, tmp_path, capsys):
    from kdlab.cli import main
    store_params, _ = smoke_runs
    code = main(['reproduce', 'pkd', '--tables', 'metafile', '--scale', 'smoke', '--rows', 'no_such_row',
                 '--results', store_params['results_dir'], '--work-dir', store_params['work_dir'],
                 '--out', str(tmp_path), '--export-dir', str(tmp_path)])
    err = capsys.readouterr().err
    assert code == 1
    assert 'code cell 2' in err and 'no_such_row' in err and 'reproduce_pkd_smoke.ipynb' in err


def test_plan_prints_runs_without_training(tmp_path, capsys):
    from kdlab.cli import main
    assert main(['reproduce', 'dfmsd', '--tables', 'table7', '--scale', 'smoke', '--plan',
                 '--results', str(tmp_path / 'r'), '--work-dir', str(tmp_path / 'w')]) == 0
    out = capsys.readouterr().out
    assert 'table7' in out and 'unique runs' in out
    assert not (tmp_path / 'r').exists()


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
    assert "backend='gloo'" in text and "launcher = 'pytorch'" in text


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
