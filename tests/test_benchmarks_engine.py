"""The engine benchmarks: ``registry_runs`` prints the planner's own counts; ``train_step`` times a real
distillation step against the student's and reports a method that cannot build instead of failing."""
import json
from pathlib import Path

import pytest

from benchmarks import registry_runs, train_step


def _printed_total(out: str):
    line = next(ln for ln in out.splitlines() if ln.startswith('total '))
    return [int(v) for v in line.split()[1:5]]     # rows, runnable, skipped, unique runs


def test_registry_runs_prints_what_plan_rows_gives(capsys, tmp_path):
    from kdlab import papers
    from kdlab.engine.planner import plan_rows

    path = tmp_path / 'runs.json'
    assert registry_runs.main(['--json', str(path)]) == 0
    out = capsys.readouterr().out
    rows = list(papers.iter_rows())
    plan = plan_rows(rows, 'mini')
    expected = [len(rows), len(plan.rows), len(plan.skipped), len(plan.runs)]
    assert _printed_total(out) == expected
    result = json.loads(path.read_text())
    total = result['total']
    assert [total['rows'], total['runnable'], total['skipped'], total['unique_runs']] == expected
    assert total['runnable'] + total['skipped'] == total['rows']
    assert total['rows_per_run'] == pytest.approx(total['runnable'] / total['unique_runs'])
    # content addressing: shared teachers and baselines are one run each, so the registry needs fewer runs
    # than its rows planned one by one (at mini scale there are still more unique runs than rows: most rows
    # bring their own distilled run, and SAL rows several)
    assert 0 < total['unique_runs'] < total['alone_runs']
    assert total['saved'] == pytest.approx(total['alone_runs'] / total['unique_runs'])
    assert sum(total['roles'].values()) == total['unique_runs']
    # per paper: every row counted once, one plan per paper
    per = result['papers']
    assert sorted(p['paper'] for p in per) == sorted(papers.list_papers())
    for key in ('rows', 'runnable', 'skipped'):
        assert sum(p[key] for p in per) == total[key]
    assert sum(p['unique_runs'] for p in per) >= total['unique_runs']
    one = per[0]
    paper_plan = plan_rows([r for r in rows if r.paper == one['paper']], 'mini')
    assert one['unique_runs'] == len(paper_plan.runs) and one['runnable'] == len(paper_plan.rows)
    assert sum(n for _, n in result['skip_reasons']) == total['skipped']
    assert one['paper'] in out


def test_train_step_times_pkd_against_the_student(capsys, tmp_path):
    path = tmp_path / 'step.json'
    assert train_step.main(['--only', 'pkd', '--repeats', '1', '--warmup', '1', '--json', str(path)]) == 0
    out = capsys.readouterr().out
    [row] = json.loads(path.read_text())
    assert row['error'] is None, row
    assert row['method'] == 'pkd' and row['scale'] == 'mini'
    assert row['median_s'] > 0 and row['student_median_s'] > 0 and len(row['times_s']) == 1
    assert row['ratio'] > 0 and row['ratio'] == pytest.approx(row['median_s'] / row['student_median_s'])
    assert row['cpu_ratio'] > 0
    assert row['peak_mib'] >= row['student_peak_mib'] > 0
    assert row['optim_wrapper'] == 'OptimWrapper'
    assert row['batch_size'] >= 1
    assert 'pkd' in out and 'x student' in out


def test_a_method_that_cannot_build_is_a_row_with_its_reason():
    row = train_step.run_case('no_such_method', warmup=1, repeats=1, scale='smoke')
    assert row['stage'] == 'build' and 'no_such_method' in row['error']
    table = train_step.format_table([row])
    assert 'no_such_method' in table and 'not run (build)' in table


def test_unknown_method_is_refused():
    with pytest.raises(SystemExit):
        train_step.main(['--only', 'pkd,nope'])


def test_every_builtin_method_is_a_default_case():
    from kdlab.methods import METHODS, _load_builtin
    _load_builtin()
    assert set(train_step.methods()) == set(METHODS) and 'pkd' in train_step.methods()


def test_train_step_takes_another_pair(tmp_path):
    path = tmp_path / 'step.json'
    assert train_step.main(['--only', 'pkd', '--scale', 'smoke', '--repeats', '1', '--warmup', '1',
                            '--pair', 'retinanet_r18:faster_rcnn_r50', '--json', str(path)]) == 0
    [row] = json.loads(path.read_text())
    assert row['error'] is None, row
    assert (row['student'], row['teacher']) == ('retinanet_r18', 'faster_rcnn_r50') and row['ratio'] > 0
    with pytest.raises(SystemExit):
        train_step.main(['--only', 'pkd', '--pair', 'retinanet_r18'])
    with pytest.raises(SystemExit):
        train_step.main(['--only', 'pkd', '--pair', 'retinanet_r18:no_such_detector'])


def test_throughput_times_the_student_and_each_method_on_this_device(capsys, tmp_path, smoke_data):
    """The GPU benchmark's CPU path (smoke scale): a student row, a row per method with its ratio."""
    from benchmarks import throughput
    out = tmp_path / 'rows.json'
    code = throughput.main(['--scale', 'smoke', '--warmup', '1', '--iters', '1', '--methods', 'pkd', 'icd',
                            '--json', str(out)])
    rows = json.loads(out.read_text())
    assert code == 0 and [r['what'] for r in rows][0] == 'retinanet_r50' and len(rows) == 3
    assert all(r['images_per_s'] > 0 and r['peak_mib'] > 0 and r['device'] == 'cpu' for r in rows)
    assert rows[1]['x student'] > 0 and 'retinanet_r50 <- retinanet_x101 [icd]' in capsys.readouterr().out


def test_smoke_runs_undoes_each_saving_it_times():
    """The smoke_runs benchmark's 'undone' variant is mmengine's and the mini scale's behaviour (in a process of
    its own: undoing patches modules)."""
    import subprocess
    import sys
    code = '''
import gc
from benchmarks.smoke_runs import undo, SAVINGS
import kdlab
from kdlab.engine import checkpoints, runner, store
from kdlab.zoo import detector_config
from mmengine.dataset import base_dataset
assert base_dataset.gc is not gc and not runner.FORMAT_RUN_CONFIG
assert detector_config('mask_rcnn_r50', 'smoke').model.test_cfg.rcnn.max_per_img == 20
undo(list(SAVINGS))
assert base_dataset.gc is gc and runner.FORMAT_RUN_CONFIG and runner.final_validation(None, None, None) is None
m = detector_config('mask_rcnn_r50', 'smoke').model
assert m.test_cfg.rcnn.max_per_img == 100 and m.train_cfg.rcnn.sampler.num == 128
checkpoints._PASSED.add('x'); store._DIGESTS['y'] = 'z'
assert 'x' not in checkpoints._PASSED and 'y' not in store._DIGESTS
print('ok')
'''
    out = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True,
                         cwd=str(Path(__file__).resolve().parents[1]))
    assert out.returncode == 0 and out.stdout.strip().endswith('ok'), out.stderr[-2000:]


def test_mini_width_times_each_width_against_the_first(capsys, tmp_path):
    """Each width builds a model of that width (the FPN's channels), and the first width is the reference."""
    from benchmarks import mini_width
    out = tmp_path / 'rows.json'
    code = mini_width.main(['--scale', 'smoke', '--widths', '64', '32', '--warmup', '1', '--repeats', '1',
                            '--json', str(out)])
    rows = json.loads(out.read_text())
    assert code == 0 and [r['width'] for r in rows] == [64, 32] and [r['neck_channels'] for r in rows] == [64, 32]
    assert rows[0]['ratio'] == 1.0 and rows[1]['median_s'] > 0 and 'x width 64' in capsys.readouterr().out


def test_a_trial_may_narrow_the_neck_and_head_only():
    from kdlab.engine.calibration import trial_config
    from kdlab.zoo import detector_config
    narrow, base = (trial_config('retinanet_r50', '1x', width=32),
                    detector_config('retinanet_r50', 'mini', protocol='v2'))
    assert narrow.model.neck.out_channels == 32 and narrow.model.bbox_head.feat_channels == 32
    assert narrow.model.backbone == base.model.backbone and base.model.neck.out_channels == 64


def test_step_format_times_each_format_against_float32(capsys, tmp_path):
    """The three formats alternate on one model and batch; float32, the protocol's, is the reference."""
    from benchmarks import step_format
    out = tmp_path / 'rows.json'
    code = step_format.main(['--scale', 'smoke', '--warmup', '1', '--repeats', '1', '--json', str(out)])
    rows = json.loads(out.read_text())
    assert code == 0 and [r['format'] for r in rows] == ['float32', 'channels_last', 'bfloat16']
    assert rows[0]['ratio'] == 1.0 and all(r['median_s'] > 0 for r in rows)
    assert 'x float32' in capsys.readouterr().out
