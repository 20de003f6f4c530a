"""Every run validates every epoch at run time and stores its learning curve (``record['curve']``); the
validations do not change the trained weights, so the run's config and key stay those of its plan."""
import pytest
import torch


def _run(smoke_data, tmp_path, every_epoch, monkeypatch):
    from kdlab.engine import runner
    from kdlab.engine.store import RunStore
    from kdlab.zoo import detector_config, mini_schedule
    cfg = detector_config('retinanet_r18', 'smoke', data_root=str(smoke_data), seed=3)
    cfg.merge_from_dict(mini_schedule(2))          # two epochs, validated once (val_interval = 2) as planned
    monkeypatch.setattr(runner, 'VALIDATE_EVERY_EPOCH', every_epoch)
    store = RunStore(tmp_path / 'store', tmp_path / 'work')
    return runner.execute(cfg, name='curve', store=store, progress=False), store, runner.run_key(cfg)


def test_the_curve_is_stored_and_validating_changes_nothing(smoke_data, tmp_path, monkeypatch):
    with_curve, store, key = _run(smoke_data, tmp_path / 'a', True, monkeypatch)
    plain, _, key_plain = _run(smoke_data, tmp_path / 'b', False, monkeypatch)
    assert key == key_plain and with_curve['key'] == key
    assert [e['epoch'] for e in with_curve['curve']] == [1, 2]
    assert [e['epoch'] for e in plain['curve']] == [2]                 # the plan's own validation only
    assert with_curve['curve'][-1]['mAP'] == pytest.approx(with_curve['metrics']['mAP'])
    assert with_curve['metrics'] == plain['metrics']
    wa = torch.load(with_curve['checkpoint'], map_location='cpu', weights_only=False)['state_dict']
    wb = torch.load(plain['checkpoint'], map_location='cpu', weights_only=False)['state_dict']
    assert wa.keys() == wb.keys() and all(torch.equal(wa[k], wb[k]) for k in wa)
    assert 'val_interval=2' in (store.run_dir(key) / 'config.py').read_text()   # stored as planned


def test_the_final_validation_is_the_test_where_the_test_split_is_the_validation_split(smoke_data, tmp_path,
                                                                                       monkeypatch):
    """A run whose test split is its validation split takes its metrics from its last validation (the same weights
    on the same data) instead of evaluating twice: the record equals a tested run's, and the teacher's metrics of
    a distillation run's validation stay in its curve, not in its metrics."""
    from mmengine.runner import Runner
    from kdlab.engine import runner
    from kdlab.engine.store import RunStore
    from kdlab.methods import distill_config
    from kdlab.zoo import detector_config
    student = detector_config('retinanet_r18', 'smoke', data_root=str(smoke_data))
    teacher = detector_config('retinanet_r50', 'smoke', data_root=str(smoke_data))
    for c in (student, teacher):       # every box kept: an untrained smoke detector scores below 0.05
        c.model.test_cfg.update(score_thr=0.0, max_per_img=1000)
    cfg = distill_config(student, teacher, student='retinanet_r18', teacher='retinanet_r50', teacher_ckpt=None,
                         method='pkd', inherit=())
    tests, real_final = [], runner.final_validation
    real_test = Runner.test
    monkeypatch.setattr(Runner, 'test', lambda self: (tests.append(1), real_test(self))[1])
    once = runner.execute(cfg, name='once', store=RunStore(tmp_path / 'a', tmp_path / 'wa'), progress=False)
    assert tests == []
    monkeypatch.setattr(runner, 'final_validation', lambda *a: None)
    tested = runner.execute(cfg, name='tested', store=RunStore(tmp_path / 'b', tmp_path / 'wb'), progress=False)
    assert tests == [1]
    assert once['metrics'] == tested['metrics'] and once['raw_metrics'] == tested['raw_metrics']
    assert once['raw_metrics']['coco/bbox_mAP_50'] > 0          # detections matched: not two empty evaluations
    assert not any(k.startswith('teacher.') for k in once['raw_metrics'])
    assert 'teacher' in once['curve'][-1] and once['curve'][-1]['mAP'] == once['metrics']['mAP']
    other = detector_config('retinanet_r18', 'smoke', data_root=str(smoke_data))
    other.test_dataloader.batch_size = 2                        # a test that is not the validation: tested
    tests.clear()
    monkeypatch.setattr(runner, 'final_validation', real_final)
    runner.execute(other, name='other', store=RunStore(tmp_path / 'c', tmp_path / 'wc'), progress=False)
    assert tests == [1]


def test_a_frozen_teacher_is_validated_once_and_its_curve_is_mmrazors(smoke_data, tmp_path, monkeypatch):
    """Two epochs validated: the teacher is evaluated at the first only, and the stored curve (student and teacher
    at both epochs) equals the one mmrazor's loop gives evaluating the teacher every time."""
    from kdlab.engine import hooks, runner
    from kdlab.engine.store import RunStore
    from kdlab.methods import distill_config
    from kdlab.zoo import detector_config
    student = detector_config('retinanet_r18', 'smoke', data_root=str(smoke_data))
    teacher = detector_config('retinanet_r50', 'smoke', data_root=str(smoke_data))
    for c in (student, teacher):
        c.model.test_cfg.update(score_thr=0.0, max_per_img=1000)
    cfg = distill_config(student, teacher, student='retinanet_r18', teacher='retinanet_r50', teacher_ckpt=None,
                         method='pkd', inherit=())
    assert cfg.val_cfg.type == 'mmrazor.SingleTeacherDistillValLoop'
    cfg.train_cfg.max_epochs = 2                 # validated after each (runner.VALIDATE_EVERY_EPOCH)
    calls = []
    from mmrazor.engine.runner.distill_val_loop import SingleTeacherDistillValLoop
    real = SingleTeacherDistillValLoop.run_iter_teacher
    monkeypatch.setattr(SingleTeacherDistillValLoop, 'run_iter_teacher',
                        lambda self, idx, batch: (calls.append(int(self.runner.epoch)), real(self, idx, batch))[1])
    once = runner.execute(cfg, name='once', store=RunStore(tmp_path / 'a', tmp_path / 'wa'), progress=False)
    assert calls and set(calls) == {1}                     # the teacher's batches at the first validation only
    calls.clear()
    monkeypatch.setattr(hooks.TeacherValidatedOnceHook, 'before_train', lambda self, runner: None)
    every = runner.execute(cfg, name='every', store=RunStore(tmp_path / 'b', tmp_path / 'wb'), progress=False)
    assert set(calls) == {1, 2}
    assert [e['epoch'] for e in once['curve']] == [1, 2] and once['curve'] == every['curve']
    assert once['curve'][0]['teacher'] == once['curve'][1]['teacher'] and once['curve'][0]['teacher']['AP50'] > 0


def test_the_record_names_the_revision_the_run_started_with(smoke_data, tmp_path, monkeypatch):
    """A commit made while a run trains does not become the run's revision: the code that ran is the one it
    started with; the later revision is said beside it."""
    from kdlab.engine import runner
    revisions = iter([{'revision': 'a' * 40, 'dirty': False}] + [{'revision': 'b' * 40, 'dirty': False}] * 9)
    monkeypatch.setattr(runner, '_git_revision', lambda: next(revisions))
    record, _, _ = _run(smoke_data, tmp_path, False, monkeypatch)
    assert record['provenance']['git'] == {'revision': 'a' * 40, 'dirty': False, 'revision_at_end': 'b' * 40}
    assert runner._revision_since({'revision': 'b' * 40, 'dirty': True}) == {'revision': 'b' * 40, 'dirty': True}


def test_two_runs_started_within_one_second_keep_their_own_log_and_message_hub(smoke_data, tmp_path,
                                                                               monkeypatch):
    """mmengine names a runner's logger and message hub by its start second; kdlab names them by the run, so two
    runs started in the same second (forced here) each write their own train.log."""
    import time
    import types
    import mmengine.runner.runner as mm_runner
    from kdlab.engine import runner
    from kdlab.engine.store import RunStore
    from kdlab.zoo import detector_config
    monkeypatch.setattr(mm_runner, 'time', types.SimpleNamespace(
        time=time.time, localtime=time.localtime, strftime=lambda fmt, t=None: '20261205_120000'))
    store = RunStore(tmp_path / 'runs', tmp_path / 'work')
    keys = []
    for seed in (1, 2):
        cfg = detector_config('retinanet_r18', 'smoke', data_root=str(smoke_data), seed=seed)
        keys.append(runner.execute(cfg, name=f'seed {seed}', store=store, progress=False)['key'])
    logs = [(store.run_dir(k) / 'train.log').read_text() for k in keys]
    for key, log in zip(keys, logs):
        assert str(store.work_dir(key)) in log and 'Epoch(train)' in log
    assert str(store.work_dir(keys[1])) not in logs[0]


def test_curves_side_by_side():
    from kdlab.viz.curves import curve_frame, plot_learning_curves
    records = {'baseline': {'curve': [{'epoch': 1, 'mAP': 10.0}, {'epoch': 2, 'mAP': 12.0}]},
               'pkd': {'curve': [{'epoch': 1, 'mAP': 11.0, 'teacher': {'mAP': 30.0}},
                                 {'epoch': 2, 'mAP': 14.0, 'teacher': {'mAP': 30.0}}]},
               'old': {'metrics': {'mAP': 9.0}}, 'missing': None}
    frame = curve_frame(records)
    assert list(frame['label']) == ['baseline', 'baseline', 'pkd', 'pkd', 'old']
    assert frame.loc[frame.label == 'pkd', 'teacher_mAP'].tolist() == [30.0, 30.0]
    fig = plot_learning_curves(frame, title='RetinaNet-R50 <- X101')
    assert len(fig.axes[0].lines) == 3          # two students and one teacher reference


def test_curves_in_panels_keep_each_panels_colours_apart():
    """Calibration draws one panel per detector family: every run in one, the colours distinct within each."""
    from kdlab.viz.curves import curve_frame, plot_learning_curves
    run = lambda m: {'curve': [{'epoch': 1, 'mAP': m}, {'epoch': 2, 'mAP': m + 1}]}
    labels = [f'retinanet_r50 1x s{s}' for s in range(11)] + ['fcos_r50 1x s0', 'fcos_r50 2x s0']
    frame = curve_frame({label: run(float(i)) for i, label in enumerate(labels)})
    fig = plot_learning_curves(frame, panels={label: label.split('_')[0] for label in labels}, title='baselines')
    shown = [ax for ax in fig.axes if ax.get_visible()]
    assert [ax.get_title() for ax in shown] == ['retinanet', 'fcos']
    assert [len(ax.lines) for ax in shown] == [11, 2]
    for ax in shown:
        colours = [line.get_color() for line in ax.lines]
        assert len(set(colours[:10])) == min(10, len(colours))   # matplotlib's cycle: 10 colours per panel


def test_the_calibration_summary_compares_separate_1x_and_2x_runs():
    import pandas as pd
    from kdlab.engine.calibration import summarise
    finals = pd.DataFrame([dict(detector='retinanet_r50', schedule='1x', seed=0, mAP=30.0),
                           dict(detector='retinanet_r50', schedule='1x', seed=1, mAP=32.0),
                           dict(detector='retinanet_r50', schedule='2x', seed=0, mAP=33.5),
                           dict(detector='fcos_r50', schedule='1x', seed=0, mAP=20.0),
                           dict(detector='fcos_r50', schedule='2x', seed=0, mAP=21.5)])
    s = summarise(finals).set_index('detector')
    assert s.loc['retinanet_r50', 'mAP_1x'] == 31.0 and s.loc['retinanet_r50', 'sd_1x'] == 1.41
    assert s.loc['retinanet_r50', 'gain_1x_to_2x'] == 2.5 and not s.loc['retinanet_r50', 'meets_rule']
    assert s.loc['fcos_r50', 'gain_1x_to_2x'] == 1.5 and s.loc['fcos_r50', 'meets_rule']
    assert s.loc['fcos_r50', 'sd_1x'] is None or pd.isna(s.loc['fcos_r50', 'sd_1x'])


def test_a_calibration_trial_changes_only_the_knobs_it_names(tmp_path, monkeypatch):
    from kdlab.engine.calibration import trial_config
    monkeypatch.setenv('KDLAB_DATA', str(tmp_path))
    base = trial_config('retinanet_r50', '2x', scene={'num_train': 4, 'num_val': 2})
    cfg = trial_config('retinanet_r50', '2x', scene={'num_train': 4, 'num_val': 2, 'clutter_under': [2, 4]},
                       epochs=6, batch=2, lr=2e-3)
    assert cfg.train_cfg.max_epochs == 6 and cfg.param_scheduler[1]['milestones'] == [4]
    assert cfg.train_dataloader.batch_size == 2 and cfg.optim_wrapper.optimizer.lr == 2e-3
    assert cfg.train_dataloader.dataset.data_root != base.train_dataloader.dataset.data_root
    assert cfg.model == base.model
    official = trial_config('retinanet_r50', '1x', scene={'num_train': 4, 'num_val': 2}, epochs=24,
                            steps=['8/12', '11/12'])                      # the official 1x's two steps
    assert official.param_scheduler[1]['milestones'] == [16, 22] and official.train_cfg.max_epochs == 24
    assert trial_config('retinanet_r50', '1x', scene={'num_train': 4, 'num_val': 2}, steps=['2/3'],
                        ).param_scheduler[1]['milestones'] == [32]         # the protocol's 1x (48 epochs), one step
    from kdlab.engine.calibration import trial
    with pytest.raises(Exception, match='calibration knob'):
        trial('retinanet_r50', '2x', loss_weight=2.0)


def test_the_calibration_report_reads_the_ladder_and_the_leads_from_the_results(tmp_path):
    import pandas as pd
    from kdlab.engine.calibration import report
    out = tmp_path / 'mini_v2'
    out.mkdir()
    pd.DataFrame([dict(detector='retinanet_r50', mAP_1x=50.0, sd_1x=0.5, seeds_1x=3, mAP_2x=51.0, sd_2x=None,
                       seeds_2x=1, gain_1x_to_2x=1.0, meets_rule=True),
                  dict(detector='retinanet_r101', mAP_1x=58.0, sd_1x=None, seeds_1x=1, mAP_2x=None, sd_2x=None,
                       seeds_2x=0, gain_1x_to_2x=None, meets_rule=None),
                  dict(detector='retinanet_x101', mAP_1x=56.0, sd_1x=None, seeds_1x=1, mAP_2x=None, sd_2x=None,
                       seeds_2x=0, gain_1x_to_2x=None, meets_rule=None)]).to_csv(out / 'calibration.csv', index=False)
    pd.DataFrame([dict(detector='retinanet_r50', schedule='1x', seed=0, mAP=50.0, wall_time_s=3000, run='a')]
                 ).to_csv(out / 'finals.csv', index=False)
    pd.DataFrame([dict(teacher='retinanet_x101', teacher_schedule='1x', student='retinanet_r50', student_schedule='1x',
                       status='measured', tables='leaderboard', teacher_mAP=51.5, student_mAP=50.0, lead=1.5,
                       meets_rule=False, teacher_run='t', student_run='s', coco_lead=4.5),
                  dict(teacher='fcos_r101', teacher_schedule='1x', student='fcos_r50', student_schedule='2x',
                       status='not trained: fcos_r101 1x', tables='dfmsd/table6', teacher_mAP=None,
                       student_mAP=None, lead=None, meets_rule=None, teacher_run='u', student_run='v')]
                 ).to_csv(out / 'gaps.csv', index=False)
    text = report('v2', root=tmp_path)
    assert '| retinanet_r50 | 50.0 +- 0.50 (3 seeds) | 51.0 (1 seed) | +1.0 | met | 50 / - |' in text
    assert '| retinanet | r50 50.0 < r101 58.0 < x101 56.0 | no |  |' in text       # the inverted rung is seen
    assert '1 of 2 measured' in text and '| +1.5 | not met | +4.5 | leaderboard |' in text


def test_the_calibration_report_shows_the_cell_with_its_conclusion_check(monkeypatch):
    """The leaderboard cell's section: each method's gain with its seed sd beside the papers', and the verdict of
    the board's conclusion check (a method reported with the wrong sign makes it disagree)."""
    import math
    import pandas as pd
    from kdlab.engine import calibration
    from kdlab.engine.leaderboard import board_check
    frame = pd.DataFrame([
        dict(student='s', teacher='t', method='baseline', seeds=2, mAP=50.0, mAP_sd=0.3, gain=math.nan,
             gain_sd=math.nan, **{'gain paper': math.nan}, status='partial 2/3', note='', paper=''),
        dict(student='s', teacher='t', method='pkd', seeds=2, mAP=53.3, mAP_sd=0.4, gain=3.3, gain_sd=0.4,
             **{'gain paper': 3.4}, status='partial 2/3', note='', paper='pkd'),
        dict(student='s', teacher='t', method='mgd', seeds=1, mAP=49.0, mAP_sd=math.nan, gain=-1.0,
             gain_sd=math.nan, **{'gain paper': 3.6}, status='partial 1/3', note='', paper='mgd')])
    monkeypatch.setattr(calibration, 'cell_board', lambda **kw: (frame, board_check(frame)))
    text = '\n'.join(calibration._cell_section('v2'))
    assert '| pkd | 2 | 53.3 +- 0.40 | +3.3 +- 0.40 | +3.4 | partial 2/3 |' in text
    assert '| mgd | 1 | 49.0 | -1.0 | +3.6 | partial 1/3 |' in text
    assert 'Conclusion check: partly: signs agree in 1/2' in text


def test_the_readme_shows_the_committed_calibration(monkeypatch):
    """The README's calibration block is what `kdlab calibrate --report` makes of the committed files (the
    committed run store, not a test session's)."""
    monkeypatch.delenv('KDLAB_RESULTS', raising=False)
    from kdlab.engine.calibration import README_MARKERS, report
    from kdlab.engine.store import repo_root
    body = (repo_root() / 'README.md').read_text()
    begin, end = README_MARKERS
    block = body.split(begin, 1)[1].split(end, 1)[0]
    assert block.strip() == report('v2', full=False).strip(), 'run `kdlab calibrate --report`, commit the README'


def test_a_calibration_call_keeps_the_runs_of_earlier_calls(tmp_path):
    """One detector or seed at a time builds the calibration files up: a call replaces its own runs' rows only."""
    import pandas as pd
    from kdlab.engine.calibration import merge_runs
    path = tmp_path / 'finals.csv'
    pd.DataFrame([dict(detector='retinanet_r50', schedule='1x', seed=0, mAP=50.8),
                  dict(detector='retinanet_r50', schedule='1x', seed=1, mAP=40.0)]).to_csv(path, index=False)
    new = [dict(detector='retinanet_r50', schedule='1x', seed=1, mAP=51.2),
           dict(detector='retinanet_r101', schedule='1x', seed=0, mAP=58.2)]
    out = merge_runs(path, new, [('retinanet_r50', '1x', 1), ('retinanet_r101', '1x', 0)])
    assert sorted(zip(out['detector'], out['seed'], out['mAP'])) == [
        ('retinanet_r101', 0, 58.2), ('retinanet_r50', 0, 50.8), ('retinanet_r50', 1, 51.2)]
    assert len(merge_runs(tmp_path / 'none.csv', new, [])) == 2
