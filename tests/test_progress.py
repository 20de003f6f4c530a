"""Progress bars redraw ten times a second where they are watched and once a minute into a log file."""
from __future__ import annotations

import io
import sys

import pytest

from kdlab import progress


@pytest.fixture
def text_bars(monkeypatch):
    """tqdm.auto as in a terminal, whatever an earlier test in this process made of it (IPython imported)."""
    import tqdm.auto
    import tqdm.std
    monkeypatch.setattr(tqdm.auto, 'tqdm', tqdm.std.tqdm)


def test_a_bar_written_to_a_file_redraws_once_a_minute(monkeypatch, text_bars):
    monkeypatch.setattr(sys, 'stderr', io.StringIO())
    assert not progress.watched()
    assert _redraws(io.StringIO()) <= 12           # 600 iterations of one second: once a minute


def _redraws(stream) -> int:
    """How often a bar over 600 iterations of one (simulated) second each is drawn on ``stream``."""
    clock = iter(range(100_000))
    bar = progress.progress_bar(total=600, desc='train', file=stream)
    bar._time = lambda: float(next(clock))         # tqdm reads its clock through this attribute
    bar.last_print_t = bar.start_t = bar._time()
    for _ in range(600):
        bar.update(1)
    bar.close()
    return stream.getvalue().count('\r')


def test_a_watched_bar_redraws_often(monkeypatch, text_bars):
    class Terminal(io.StringIO):
        def isatty(self):
            return True
    monkeypatch.setattr(sys, 'stderr', Terminal())
    assert progress.watched()
    assert progress.progress_bar(total=1, file=io.StringIO()).mininterval == progress.WATCHED_S
    assert _redraws(io.StringIO()) >= 300


def _fake_training(store):
    """Stands in for a training: stores a finished record of the run at once."""
    def train(cfg, *, name, store=store, key, extra=None, **kwargs):
        record = {'key': key, 'name': name, 'status': 'finished', 'metrics': {'mAP': 1.0}}
        store.save(record, '')
        return record
    return train


def test_a_plan_shows_one_bar_of_its_runs(tmp_path, capsys, monkeypatch, text_bars):
    """Training a plan shows runs k of N (stored runs not counted), sequentially and with two workers."""
    from kdlab.engine import launch, planner, runner
    from kdlab.engine.planner import execute_plan, plan_pair
    from kdlab.engine.store import RunStore
    plan = plan_pair('retinanet_r18', ['retinanet_r50'], 'pkd', 'smoke', teacher_schedule='1x')
    store = RunStore(tmp_path / 'runs', tmp_path / 'work')
    monkeypatch.setattr(runner, 'execute', _fake_training(store))
    monkeypatch.setattr(planner, 'resolve_refs', lambda cfg, store: cfg)
    monkeypatch.setattr(planner, '_prepare', lambda plan, run, store, out, progress: (run.cfg, {}))
    store.save({'key': plan.rows['baseline'], 'name': 'b', 'status': 'finished', 'metrics': {}}, '')
    execute_plan(plan, store, progress=True, device='cpu')
    err = capsys.readouterr().err
    assert 'runs: 100%' in err and '2/2' in err and '3/3' not in err

    other = RunStore(tmp_path / 'runs2', tmp_path / 'work2')
    monkeypatch.setattr(launch, 'launch', _fake_training(other))
    execute_plan(plan, other, progress=True, device='cpu', workers=2)
    captured = capsys.readouterr()
    assert '3/3' in captured.err and captured.out.count('stored, mAP 1.0') == 3


def test_a_runs_bar_with_its_loss_redraws_no_more_often(monkeypatch, text_bars):
    """The training bar's loss postfix waits for the bar's next redraw instead of forcing one per iteration
    (which wrote every iteration into a log file)."""
    import torch
    from kdlab.engine.hooks import ProgressBarHook
    log = io.StringIO()
    monkeypatch.setattr(sys, 'stderr', log)
    runner = type('Runner', (), {'max_iters': 600, 'iter': 0, 'epoch': 0})()
    hook = ProgressBarHook('train')
    hook.before_train(runner)
    for _ in range(600):
        hook.after_train_iter(runner, 0, outputs={'loss': torch.tensor(1.5, requires_grad=True)})
    hook.after_train(runner)
    assert log.getvalue().count('\r') <= 4                 # drawn at start and close (60 s between redraws)
