"""Reproductions that train: every registered table at smoke scale through its notebook (papermill), and the batch
CLI (the trainings outside the notebooks: tests/test_training_plans.py)."""
import json
import sys
from pathlib import Path

import pytest

from kdlab import papers

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
    assert 'to train: ' in out and 'never timed on this store)' in out      # the estimate, nothing timed yet
    assert not (tmp_path / 'r').exists()
