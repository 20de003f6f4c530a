"""The reproduction engine: a table planned, compared with stored runs, exported; pending rows; leaderboard."""
import json
import math

import pytest

from kdlab import papers
from kdlab.engine import report
from kdlab.engine.reproduce import compare_rows, reproduction
from kdlab.engine.store import RunStore
from kdlab.errors import KdlabError, UnknownNameError


def _store(tmp_path):
    return RunStore(tmp_path / 'runs', tmp_path / 'work')


def _fake_record(store, key, mAP, **extra):
    """A finished run as the runner stores it (only what the comparison reads)."""
    d = store.run_dir(key)
    d.mkdir(parents=True, exist_ok=True)
    metrics = {m: None for m in ('AP50', 'AP75', 'APs', 'APm', 'APl', 'mAR', 'ARs', 'ARm', 'ARl')}
    metrics['mAP'] = mAP
    (d / 'run.json').write_text(json.dumps({'key': key, 'status': 'finished', 'metrics': metrics,
                                            'checkpoint': None, **extra}))


def test_nothing_stored_shows_every_row_as_pending_or_skipped(tmp_path):
    job = reproduction('dcsf_kd', ['table1'], 'smoke', store=_store(tmp_path))
    frame = job.compare('table1')
    assert len(frame) == len(list(papers.iter_rows('dcsf_kd', 'table1')))
    assert set(frame['status']) <= {'pending'} | {s for s in frame['status'] if s.startswith('skipped: ')}
    assert (frame['status'] == 'pending').any()
    assert frame['mAP kdlab'].isna().all() and frame['mAP paper'].notna().all()
    summary = job.summary()
    assert summary.loc[0, 'stored'] == 0 and summary.loc[0, 'pending'] == summary.loc[0, 'runs'] > 0
    assert summary.loc[0, 'train_min'] == 0
    assert summary.attrs['unique_runs'] == len(job.runs()) < 2 * summary.loc[0, 'runnable'] + 5


def test_the_comparison_is_the_stored_runs_against_the_paper(tmp_path):
    store = _store(tmp_path)
    row_id = 'retinanet_x101.retinanet_r50.pkd'
    base_id = next(r.id for r in papers.iter_rows('dcsf_kd', 'table1') if r.method == 'baseline'
                   and r.student.detector == 'retinanet')
    job = reproduction('dcsf_kd', ['table1'], 'smoke', rows=[row_id, base_id], seeds=[0, 1], store=store)
    ref = f'dcsf_kd/table1/{row_id}'
    for seed, (distilled, baseline) in zip((0, 1), ((30.0, 20.0), (34.0, 21.0))):
        _fake_record(store, job.plans[seed].rows[ref], distilled)
        _fake_record(store, job.plans[seed].baselines[ref], baseline)
    frame = job.compare('table1').set_index('row')
    row = papers.load_table('dcsf_kd', 'table1').set_index('row').loc[row_id]
    got = frame.loc[row_id]
    assert got['status'] == 'finished' and got['seeds'] == '0,1'
    assert got['mAP kdlab'] == pytest.approx(32.0) and got['mAP sd'] == pytest.approx(math.sqrt(8), abs=0.01)
    assert got['mAP delta'] == pytest.approx(32.0 - row['mAP'])
    assert got['gain kdlab'] == pytest.approx(((30 - 20) + (34 - 21)) / 2)
    base = papers.load_table('dcsf_kd', 'table1').set_index('row').loc[base_id]
    assert got['gain paper'] == pytest.approx(row['mAP'] - base['mAP'], abs=0.05)
    assert frame.loc[base_id, 'mAP kdlab'] == pytest.approx(20.5)
    assert math.isnan(frame.loc[base_id, 'gain kdlab'])
    assert math.isnan(got['teacher kdlab']) and math.isnan(frame.loc[base_id, 'teacher kdlab'])  # none stored
    assert report.human_columns(frame.reset_index())[:3] == ['row', 'teacher', 'teacher kdlab']


def test_a_partial_seed_set_says_so(tmp_path):
    store = _store(tmp_path)
    row_id = 'retinanet_x101.retinanet_r50.pkd'
    job = reproduction('dcsf_kd', ['table1'], 'smoke', rows=[row_id], seeds=[0, 1], store=store)
    _fake_record(store, job.plans[0].rows[f'dcsf_kd/table1/{row_id}'], 25.0)
    frame = job.compare('table1')
    assert frame.loc[0, 'status'] == 'partial 1/2' and frame.loc[0, 'mAP kdlab'] == 25.0
    assert math.isnan(frame.loc[0, 'mAP sd'])


def test_unknown_names_say_what_exists(tmp_path):
    with pytest.raises(UnknownNameError, match='table1'):
        reproduction('dcsf_kd', ['table9'], 'smoke', store=_store(tmp_path))
    with pytest.raises(UnknownNameError, match='dfmsd'):
        reproduction('dfmsdd', None, 'smoke', store=_store(tmp_path))
    with pytest.raises(UnknownNameError, match='kdlab papers dcsf_kd'):
        reproduction('dcsf_kd', ['table1'], 'smoke', rows=['no_such_row'], store=_store(tmp_path))
    with pytest.raises(UnknownNameError, match='smoke'):
        reproduction('dcsf_kd', ['table1'], 'huge', store=_store(tmp_path))


def test_export_writes_every_format(tmp_path):
    job = reproduction('pkd', ['metafile'], 'smoke', store=_store(tmp_path))
    frame = job.compare('metafile')
    paths = report.export(frame, tmp_path / 'out', formats=['csv', 'md', 'tex', 'png', 'pdf'])
    names = sorted(p.name for p in paths)
    assert names == sorted([f'metafile_smoke.{f}' for f in ('csv', 'md', 'tex', 'png', 'pdf')]
                           + ['metafile_smoke_conclusions.csv'])
    md = (tmp_path / 'out' / 'metafile_smoke.md').read_text()
    assert '| row | teacher | teacher kdlab | student | method | status |' in md and 'pending' in md
    assert '**Conclusion check**' in md and 'nothing to compare yet' in md     # nothing trained here
    tex = (tmp_path / 'out' / 'metafile_smoke.tex').read_text()
    assert '\\toprule' in tex and '\\begin{tabular}' in tex
    import pandas as pd
    back = pd.read_csv(tmp_path / 'out' / 'metafile_smoke.csv')
    assert list(back['row']) == list(frame['row'])
    assert (tmp_path / 'out' / 'metafile_smoke.png').stat().st_size > 10_000
    with pytest.raises(KdlabError, match='unknown export format'):
        report.export(frame, tmp_path / 'out', formats=['docx'])


def test_styled_view_greys_pending_rows(tmp_path):
    frame = reproduction('pkd', ['metafile'], 'smoke', store=_store(tmp_path)).compare('metafile')
    html = report.styled(frame).to_html()
    assert report.PENDING_STYLE.split(';')[0] in html and 'metafile' in html


def test_cuda_asked_for_on_a_cpu_machine_names_the_fix():
    import torch
    from kdlab.engine.reproduce import check_device
    if torch.cuda.is_available():
        assert check_device('cuda') == 'cuda'
    else:
        with pytest.raises(KdlabError, match="device='cpu'"):
            check_device('cuda')
    with pytest.raises(UnknownNameError):
        check_device('tpu')


# ------------------------------------------------------------------------------------------ leaderboard
def test_leaderboard_cells_are_mean_and_spread_over_seeds(tmp_path):
    from kdlab.engine.leaderboard import board, plan_board
    store = _store(tmp_path)
    pairs = [('retinanet_r18', 'retinanet_r50'), ('faster_rcnn_r50', 'faster_rcnn_r101')]
    plans, unavailable = plan_board(pairs, ['pkd', 'mgd', 'crosskd'], seeds=(0, 1), scale='smoke')
    assert ('faster_rcnn_r50', 'faster_rcnn_r101', 'crosskd') in unavailable     # a dense-head method
    for (student, teacher, method, seed), plan in plans.items():
        if student != 'retinanet_r18':
            continue
        _fake_record(store, plan.rows['baseline'], 10.0 + seed)
        _fake_record(store, plan.rows[f'teacher:{teacher}'], 40.0)
        if method == 'pkd':
            _fake_record(store, plan.rows['distilled'], 20.0 + 2 * seed)
        elif seed == 0:
            _fake_record(store, plan.rows['distilled'], 12.0)
    frame = board(plans, unavailable, store, (0, 1)).set_index(['student', 'method'])
    pkd = frame.loc[('retinanet_r18', 'pkd')]
    assert pkd['seeds'] == 2 and pkd['mAP'] == 21.0 and pkd['gain'] == 10.5
    assert pkd['gain_sd'] == pytest.approx(math.sqrt(0.5), abs=0.01)
    assert frame.loc[('retinanet_r18', 'mgd'), 'status'] == 'partial 1/2'
    assert frame.loc[('retinanet_r18', 'teacher'), 'mAP'] == 40.0
    assert frame.loc[('faster_rcnn_r50', 'pkd'), 'status'] == 'pending'
    assert frame.loc[('faster_rcnn_r50', 'crosskd'), 'status'].startswith('n/a: ')
    methods = list(frame.loc['retinanet_r18'].index)
    assert methods[:3] == ['teacher', 'baseline', 'pkd']     # sorted by gain after teacher and baseline


def test_the_board_draws_each_students_curves_over_its_baselines(tmp_path):
    """The board keeps the runs it read by cell and seed; its curves figure has one panel per method that has a
    stored run, the baseline's seeds (grey) under the method's, one line per stored seed."""
    from kdlab.engine.leaderboard import board, plan_board, plot_board_curves
    store = _store(tmp_path)
    plans, unavailable = plan_board([('retinanet_r18', 'retinanet_r50')], ['pkd', 'mgd', 'dmkd'], seeds=(0, 1),
                                    scale='smoke')
    curve = lambda top: [{'epoch': e, 'mAP': top * e / 3} for e in (1, 2, 3)]
    for (student, teacher, method, seed), plan in plans.items():
        _fake_record(store, plan.rows['baseline'], 10.0 + seed, curve=curve(10.0 + seed))
        _fake_record(store, plan.rows[f'teacher:{teacher}'], 40.0, curve=curve(40.0))
        top = 25.0 if method == 'pkd' else 20.0                          # pkd first on the board
        if method == 'pkd' or seed == 0 and method == 'mgd':             # dmkd: nothing stored
            _fake_record(store, plan.rows['distilled'], top, curve=curve(top))
    frame = board(plans, unavailable, store, (0, 1))
    assert set(frame.attrs['runs'][('retinanet_r18', 'retinanet_r50', 'pkd')]) == {0, 1}
    figures = plot_board_curves(frame, store)
    panels = [ax for ax in figures[('retinanet_r18', 'retinanet_r50')].axes if ax.get_visible()]
    assert [ax.get_title().split(' ')[0] for ax in panels] == ['pkd', 'mgd']       # the board's order
    assert [len(ax.lines) for ax in panels] == [4, 3]         # two baseline seeds + the method's stored seeds
    assert panels[0].lines[0].get_ydata()[-1] == 10.0 and panels[0].lines[2].get_ydata()[-1] == 25.0


def test_the_board_reads_each_cell_beside_the_papers_gains_for_its_pair(tmp_path):
    """The conclusion check of a leaderboard cell: each method's gain beside what the papers report for that
    pair (the median over papers, each source named), the signs and the rank correlation over the methods."""
    from kdlab.engine.leaderboard import board, board_check, plan_board, reported_gains
    said = reported_gains('retinanet_r50', 'retinanet_x101')
    assert said['pkd'] == (3.4, 'dcsf_kd/table1 +3.4; pkd/metafile +3.4')
    assert said['dfmsd'][0] == 4.6 and 'table11' not in said['dfmsd'][1]        # its chain, not its ablations
    assert said['dsamkd'][0] == 4.1 and "baseline 37.4" in said['dsamkd'][1]    # an abstract without a baseline
    assert 'icd' not in said and 'crosskd' not in said                          # no paper reports them here
    store = _store(tmp_path)
    methods = ['pkd', 'mgd', 'dmkd', 'icd']
    plans, unavailable = plan_board([('retinanet_r50', 'retinanet_x101')], methods, seeds=(0,), scale='smoke')
    made = {'pkd': 51.0, 'mgd': 53.0, 'dmkd': 49.0, 'icd': 52.0}                # dmkd below the baseline
    for (student, teacher, method, seed), plan in plans.items():
        _fake_record(store, plan.rows['baseline'], 50.0)
        _fake_record(store, plan.rows[f'teacher:{teacher}'], 56.0)
        _fake_record(store, plan.rows['distilled'], made[method])
    frame = board(plans, unavailable, store, (0,))
    assert frame.set_index('method').loc['mgd', 'gain paper'] == 3.6
    check = board_check(frame).iloc[0]
    assert check['rows'] == 3 and check['same sign'] == 2                       # icd: no paper gain to compare
    assert check['rho'] == pytest.approx(-0.5) and check['verdict'].startswith('disagrees')


def test_the_board_trains_each_shared_run_once_in_one_plan():
    """Teachers and baselines are shared by the methods of a pair and seed: one run each, before the students
    that need them, all in one plan so that workers overlap cells."""
    from kdlab.engine.leaderboard import plan_board
    from kdlab.engine.planner import merge_plans
    plans, _ = plan_board([('retinanet_r18', 'retinanet_r50')], ['pkd', 'mgd'], seeds=(0, 1), scale='smoke')
    merged = merge_plans(plans.values(), 'smoke')
    assert set(merged.runs) == {k for plan in plans.values() for k in plan.runs}
    roles = sorted(r.role for r in merged.ordered())
    assert roles == ['baseline'] * 2 + ['distilled'] * 4 + ['teacher'] * 2     # 2 seeds x (teacher, baseline)
    seen = set()
    for run in merged.ordered():
        assert set(run.needs) <= seen, f'{run.name} comes before a run it needs'
        seen.add(run.key)


def test_dfmsd_distils_a_leaderboard_pair_through_its_papers_chain(tmp_path):
    """The cell RetinaNet-R50 <- X101: DFMSD's SAL runs R101 first, then X101 (the paper's Table 11 chain); the
    other methods distil from X101 alone, and the board says which chain DFMSD took."""
    from kdlab.engine.leaderboard import board, plan_board
    plans, unavailable = plan_board([('retinanet_r50', 'retinanet_x101')], ['dfmsd', 'pkd'], seeds=(0,),
                                    scale='smoke')
    dfmsd, pkd = plans[('retinanet_r50', 'retinanet_x101', 'dfmsd', 0)], plans[('retinanet_r50', 'retinanet_x101',
                                                                                'pkd', 0)]
    assert [r for r in dfmsd.rows if r.startswith('teacher:')] == ['teacher:retinanet_r101', 'teacher:retinanet_x101']
    assert [r.role for r in dfmsd.ordered()].count('stage') == 1
    assert [r for r in pkd.rows if r.startswith('teacher:')] == ['teacher:retinanet_x101']
    store = _store(tmp_path)
    for plan in (dfmsd, pkd):
        for ref in ('baseline', 'teacher:retinanet_x101', 'distilled'):
            _fake_record(store, plan.rows[ref], 30.0)
    frame = board(plans, unavailable, store, (0,)).set_index('method')
    assert frame.loc['dfmsd', 'note'] == 'through retinanet_r101 -> retinanet_x101' and frame.loc['pkd', 'note'] == ''


def test_the_board_counts_a_teacher_shared_by_every_seed_once(tmp_path, monkeypatch):
    from kdlab.engine.leaderboard import board, plan_board
    monkeypatch.setenv('KDLAB_MINI', 'v2')
    plans, unavailable = plan_board([('retinanet_r50', 'retinanet_r101')], ['dfmsd'], seeds=(0, 1), scale='mini')
    store = _store(tmp_path)
    for (_, _, _, seed), plan in plans.items():
        _fake_record(store, plan.rows['teacher:retinanet_r101'], 56.3)
        _fake_record(store, plan.rows['baseline'], 50.0 + seed)
        _fake_record(store, plan.rows['distilled'], 53.0 + seed)
    frame = board(plans, unavailable, store, (0, 1)).set_index('method')
    teacher = frame.loc['teacher']
    assert teacher['seeds'] == 2 and teacher['mAP'] == 56.3 and math.isnan(teacher['mAP_sd'])
    assert frame.loc['baseline', 'mAP'] == 50.5 and frame.loc['dfmsd', 'gain'] == 3.0


def test_a_stored_teacher_without_its_checkpoint_here_is_counted_as_a_rebuild(tmp_path):
    store = _store(tmp_path)
    job = reproduction('pkd', ['abstract'], 'smoke', store=store)
    teachers = [r for r in job.runs().values() if r.role == 'teacher']
    assert len(teachers) == 1 and job.to_rebuild() == []          # nothing stored: all pending, no rebuild
    ckpt = tmp_path / 'teacher.pth'
    _fake_record(store, teachers[0].key, 50.0, checkpoint=str(ckpt))   # stored on another machine
    assert [r.key for r in job.to_rebuild()] == [teachers[0].key]
    assert job.summary().loc[0, 'rebuild'] == 1
    _fake_record(store, teachers[0].key, 50.0, checkpoint=str(ckpt), wall_time_s=60.0, wall_time_total_s=90.0)
    assert job.summary().loc[0, 'train_min'] == 1.5                # every attempt of the interrupted run
    ckpt.write_bytes(b'')                                         # the checkpoint is here now
    assert job.to_rebuild() == [] and job.summary().loc[0, 'rebuild'] == 0
    for run in job.pending():                                     # all distilled rows done: nothing needs it
        _fake_record(store, run.key, 30.0)
    ckpt.unlink()
    assert job.to_rebuild() == []


def test_a_row_distilled_from_an_earlier_build_of_its_teacher_says_so(tmp_path):
    store = _store(tmp_path)
    row_id = 'retinanet_x101.retinanet_r50.pkd'
    job = reproduction('dcsf_kd', ['table1'], 'smoke', rows=[row_id], store=store)
    ref = f'dcsf_kd/table1/{row_id}'
    run = job.plans[0].runs[job.plans[0].rows[ref]]
    (teacher,) = run.needs
    ckpt = tmp_path / 'teacher.pth'
    ckpt.write_bytes(b'build 1')
    _fake_record(store, teacher, 48.2, checkpoint=str(ckpt), started='2026-12-02T05:00:00+00:00', name='T')
    built_from = store.inputs(run.needs)
    assert built_from[teacher]['mAP'] == 48.2 and len(built_from[teacher]['checkpoint_sha256']) == 16
    _fake_record(store, run.key, 30.0, needs=[teacher], built_from=built_from,
                 started='2026-12-02T06:00:00+00:00')
    assert job.compare('table1').loc[0, 'note'] == ''
    assert job.compare('table1').loc[0, 'teacher kdlab'] == 48.2
    fig = report.plot_comparison(job.compare('table1'))
    (ticks,) = fig.axes[0].collections                           # the teacher's mAP beside the student's bar
    assert ticks.get_offsets()[0][0] == 48.2
    # the teacher is trained again on another machine: a new build, other numbers
    _fake_record(store, teacher, 49.9, checkpoint=str(ckpt), started='2026-12-02T10:00:00+00:00', name='T',
                 previous_metrics={'mAP': 48.2})
    note = job.compare('table1').loc[0, 'note']
    assert note == 'distilled from an earlier build of T (48.2 mAP then, 49.9 now)'
    assert 'note' in report.human_columns(job.compare('table1'))
    assert job.compare('table1').loc[0, 'teacher kdlab'] == 48.2     # the build it learnt from, not today's
    # a run stored before runs recorded their inputs: the teacher's start after the run's gives it away
    _fake_record(store, run.key, 30.0, needs=[teacher], started='2026-12-02T06:00:00+00:00')
    assert job.compare('table1').loc[0, 'note'] == note
    assert job.compare('table1').loc[0, 'teacher kdlab'] == 49.9     # nothing recorded: the stored teacher
    _fake_record(store, run.key, 30.0, needs=[teacher], started='2026-12-02T11:00:00+00:00')
    assert job.compare('table1').loc[0, 'note'] == ''
    assert 'note' not in report.human_columns(job.compare('table1'))


def test_a_teacher_below_its_baseline_student_is_noted(tmp_path):
    """At mini scale a one-stage teacher can score below a two-stage student's baseline (DFMSD Table 4:
    FCOS-X101 58.6, Faster R-CNN-R50 77.0): the row says so instead of reading as an ordinary gain."""
    store = _store(tmp_path)
    row_id = 'retinanet_x101.retinanet_r50.pkd'
    job = reproduction('dcsf_kd', ['table1'], 'smoke', rows=[row_id], store=store)
    ref = f'dcsf_kd/table1/{row_id}'
    plan = job.plans[0]
    (teacher,) = plan.runs[plan.rows[ref]].needs
    _fake_record(store, plan.baselines[ref], 40.0)
    _fake_record(store, teacher, 48.2, name='T')
    _fake_record(store, plan.rows[ref], 45.0, needs=[teacher], built_from=store.inputs([teacher]))
    assert job.compare('table1').loc[0, 'note'] == ''
    _fake_record(store, plan.baselines[ref], 50.0)
    assert job.compare('table1').loc[0, 'note'] == ('teacher below the baseline student at this scale '
                                                     '(48.2 vs 50.0 mAP)')


def test_the_leaderboard_notes_students_of_an_earlier_teacher_build(tmp_path):
    from kdlab.engine.leaderboard import board, plan_board
    store = _store(tmp_path)
    plans, unavailable = plan_board([('retinanet_r18', 'retinanet_r50')], ['pkd'], seeds=(0,), scale='smoke')
    plan = plans[('retinanet_r18', 'retinanet_r50', 'pkd', 0)]
    teacher = plan.rows['teacher:retinanet_r50']
    _fake_record(store, plan.rows['baseline'], 10.0)
    _fake_record(store, plan.rows['distilled'], 20.0, needs=[teacher], started='2026-12-02T06:00:00+00:00')
    _fake_record(store, teacher, 40.0, name='T', started='2026-12-02T05:00:00+00:00')
    frame = board(plans, unavailable, store, (0,)).set_index('method')
    assert frame.loc['pkd', 'note'] == '' and frame.loc['teacher', 'note'] == ''
    _fake_record(store, teacher, 41.0, name='T', started='2026-12-02T09:00:00+00:00', previous_metrics={'mAP': 40.0})
    frame = board(plans, unavailable, store, (0,)).set_index('method')
    assert frame.loc['pkd', 'note'] == 'distilled from an earlier build of T (40.0 mAP then, 41.0 now)'
    assert frame.loc['pkd', 'gain'] == 10.0


def test_the_progress_bar_says_which_run_trains_and_where(tmp_path):
    import os
    import time
    from kdlab.engine.batch import training_now
    from kdlab.engine.runner import training_progress
    from kdlab.engine.store import FILE_MODE, atomic_write_text
    store = _store(tmp_path)
    job = reproduction('pkd', ['abstract'], 'smoke', store=store)
    teacher = next(r for r in job.runs().values() if r.role == 'teacher')
    assert training_progress(store.work_dir(teacher.key)) is None and training_now(store, job.runs(), [teacher.key]) == ''
    log = store.work_dir(teacher.key) / '20261203_053753' / '20261203_053753.log'
    log.parent.mkdir(parents=True)
    log.write_text('2026/12/03 05:38:47 - mmengine - INFO - Checkpoints will be saved to ...\n'
                   '2026/12/03 05:47:03 - mmengine - INFO - Epoch(train)  [8][20/60]  lr: 1.0000e-03  '
                   'eta: 3:15:50  time: 7.2578  data_time: 0.0244  loss: 1.2442\n'
                   '2026/12/03 05:48:15 - mmengine - INFO - Epoch(train)  [8][30/60]  lr: 1.0000e-03  '
                   'eta: 1 day, 3:14:38  time: 7.2  loss: 1.2\n')
    state = training_progress(store.work_dir(teacher.key))
    assert (state['epoch'], state['iter'], state['iters'], state['eta']) == (8, 30, 60, '1 day, 3:14:38')
    epochs = teacher.cfg['train_cfg']['max_epochs']
    assert training_now(store, job.runs(), [teacher.key]) == \
        f'{teacher.name}: epoch 8/{epochs} (30/60), eta 1 day, 3:14:38'
    assert training_now(store, job.runs(), [teacher.key], now=time.time() + 3600) == ''   # a log gone quiet
    atomic_write_text(tmp_path / 'table.md', 'x')           # exports readable as files written directly are
    assert os.stat(tmp_path / 'table.md').st_mode & 0o777 == FILE_MODE


def test_run_all_in_a_notebook_is_safe_an_interrupt_stops_cleanly_and_says_what_is_stored(tmp_path, monkeypatch,
                                                                                          capsys):
    from kdlab.engine import reproduce as rep
    job = reproduction('pkd', ['metafile'], 'smoke', store=_store(tmp_path))
    todo = job.estimate()
    assert len(todo) == len(job.pending()) > 0 and todo.attrs['unknown'] == len(todo)   # nothing timed here yet

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt
    monkeypatch.setattr(rep, 'execute_plan', interrupted)
    assert job.run(progress=False, interrupt='stop') == {}
    out = capsys.readouterr().out
    assert f'stopped: 0 of {len(job.runs())} runs are stored; running this again resumes' in out
    with pytest.raises(KeyboardInterrupt):
        job.run(progress=False)                     # the CLI's default: the interrupt propagates


def test_a_board_for_some_methods_keeps_the_stored_boards_other_cells(tmp_path):
    """`kdlab leaderboard --methods dcsf_kd` writes its cells over the stored board, not the board over."""
    import math
    import pandas as pd
    from kdlab.engine.leaderboard import merge_board
    row = dict(student='s', teacher='t', seeds=1, mAP_sd=math.nan, gain_sd=math.nan, status='finished', note='')
    stored = pd.DataFrame([dict(row, method='baseline', mAP=50.0, gain=math.nan, **{'gain paper': math.nan}, paper=''),
                           dict(row, method='pkd', mAP=53.0, gain=3.0, **{'gain paper': 3.4}, paper='p'),
                           dict(row, method='dcsf_kd', mAP=math.nan, gain=math.nan, **{'gain paper': 3.6}, paper='d',
                                seeds=0, status='pending')])
    stored.to_csv(tmp_path / 'board.csv', index=False)
    call = pd.DataFrame([dict(row, method='baseline', mAP=50.0, gain=math.nan, **{'gain paper': math.nan}, paper=''),
                         dict(row, method='dcsf_kd', mAP=54.0, gain=4.0, **{'gain paper': 3.6}, paper='d')])
    merged = merge_board(tmp_path / 'board.csv', call)
    assert list(merged['method']) == ['baseline', 'dcsf_kd', 'pkd']            # the board's order: by gain
    assert merged.set_index('method').loc['dcsf_kd', 'status'] == 'finished'
    assert merge_board(tmp_path / 'none.csv', call) is call


def test_the_estimate_times_a_pending_run_by_a_stored_run_of_the_same_name_calibration_names_included(tmp_path):
    """`kdlab reproduce --plan` and the notebooks say how long the pending runs take: a calibration run (named
    '... (mini v2, seed 5)') times the planner's baseline of the same detector ('... (mini_v2)')."""
    from kdlab.engine.calibration import planner_name
    from kdlab.zoo import under_protocol
    assert planner_name('fcos_r50 1x (mini v2, seed 0)') == 'fcos_r50 1x (mini_v2)'
    assert planner_name('fcos_r50 1x (mini v1, seed 2)') == 'fcos_r50 1x (mini)'
    assert planner_name('retinanet_r50 <- retinanet_x101 [pkd] (mini_v2)').endswith('[pkd] (mini_v2)')
    store = _store(tmp_path)
    with under_protocol('v2'):
        job = reproduction('pkd', ['abstract'], 'mini', store=store)
        pending = job.pending()
        baseline = next(r for r in pending if r.role == 'baseline')
        assert job.estimate_note() == f'{len(pending)} run(s) not stored ({len(pending)} never timed on this store)'
        _fake_record(store, 'calibration0000', 50.0, wall_time_s=600.0,
                     name=baseline.name.replace('(mini_v2)', '(mini v2, seed 5)'))
        todo = job.estimate()
        assert todo.set_index('run').loc[baseline.name, 'minutes'] == 10.0
        assert todo.attrs['unknown'] == len(pending) - 1
        assert job.estimate_note() == (f'{len(pending)} run(s) not stored (about 10.0 min here, one core each; '
                                       f'{len(pending) - 1} never timed on this store)')
