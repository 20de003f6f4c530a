"""The main job at smoke scale: teacher, baseline and PKD student trained, evaluated, stored, reused."""
import json

import pytest

from kdlab.engine.store import RunExistsError, RunStore
from kdlab.errors import CheckpointError

METRICS = ['mAP', 'AP50', 'AP75', 'APs', 'APm', 'APl', 'mAR', 'ARs', 'ARm', 'ARl']


@pytest.fixture(scope='module')
def demo_rows(smoke_data, tmp_path_factory):
    from kdlab import demo
    store = RunStore(tmp_path_factory.mktemp('store'), tmp_path_factory.mktemp('work'))
    return store, demo.run('smoke', store=store, progress=False)


def test_demo_trains_evaluates_and_stores_three_runs(demo_rows):
    store, rows = demo_rows
    assert [r['role'] for r in rows] == ['teacher', 'baseline', 'pkd']
    assert len({r['key'] for r in rows}) == 3
    for r in rows:
        rec = store.load(r['key'])
        assert rec['status'] == 'finished'
        assert set(METRICS) <= set(rec['metrics'])
        assert all(isinstance(rec['metrics'][m], float) for m in METRICS)
        prov = rec['provenance']
        assert prov['packages']['torch'].startswith('2.13') and prov['packages']['mmrazor'] == '1.0.0'
        assert prov['seed'] == 0 and prov['world_size'] == 1 and prov['images_per_gpu'] == 4
        d = store.run_dir(r['key'])
        assert (d / 'config.py').is_file() and (d / 'train.log').stat().st_size > 0
        assert rec['checkpoint'] and rec['checkpoint'].endswith('.pth')


def test_every_run_records_its_checks(demo_rows):
    """kdlab.engine.hooks.RunChecksHook: lr x batch for every run; for the distilled one the teacher's weights
    unchanged by training and the distillation loss finite, non-zero and reaching the student."""
    store, rows = demo_rows
    for r in rows:
        rec = store.load(r['key'])
        lr = rec['checks']['lr_batch']
        assert lr['batch'] == 4 and lr['processes'] == 1 and lr['lr'] == pytest.approx(1e-3)
        assert 'checks_failed' not in rec
    baseline, distilled = store.load(rows[1]['key']), store.load(rows[2]['key'])
    assert 'teacher_frozen' not in baseline['checks']
    frozen, active = distilled['checks']['teacher_frozen'], distilled['checks']['distillation_active']
    assert frozen['ok'] and frozen['before'] == frozen['after'] and len(frozen['before']) == 64
    assert active['ok'] and active['iteration'] == 0 and active['finite'] and active['total'] > 0
    assert set(active['losses']) == {f'distill.loss_pkd_P{i}' for i in (3, 4, 5, 6)}
    assert 0 < active['student_tensors_with_gradient'] <= active['student_tensors']


def test_the_checks_catch_a_teacher_that_trains_and_a_distillation_that_does_nothing():
    import torch
    from kdlab.engine.hooks import RunChecksHook, weights_digest
    teacher = torch.nn.Linear(3, 2)
    before = weights_digest(teacher)
    assert weights_digest(teacher) == before
    with torch.no_grad():
        teacher.weight[0, 0] += 1e-6
    assert weights_digest(teacher) != before                     # any change, however small

    class Algorithm(torch.nn.Module):                            # the two parts of a distillation algorithm
        def __init__(self, scale):
            super().__init__()
            self.student, self.teacher, self.scale = torch.nn.Linear(3, 2), torch.nn.Linear(3, 2), scale

        def forward(self, x):
            s, t = self.student(x), self.teacher(x).detach()
            return {'student.loss_cls': s.pow(2).mean(), 'distill.loss_kd': self.scale * (s - t).pow(2).mean()}

    import tempfile
    from pathlib import Path
    from mmengine.config import Config
    for scale, ok in ((1.0, True), (0.0, False)):
        model = Algorithm(scale)
        runner = type('Runner', (), dict(
            model=model, rank=0, world_size=1, iter=0, cfg=Config(dict(train_dataloader=dict(batch_size=2))),
            optim_wrapper=torch.optim.SGD(model.student.parameters(), lr=0.1)))()
        hook = RunChecksHook(Path(tempfile.mkdtemp()) / 'checks.json')
        hook.before_train(runner)
        model(torch.randn(4, 3))
        with torch.no_grad():
            model.teacher.bias += 1.0                             # the optimizer "trained" the teacher
        hook.after_train(runner)
        checks = hook.read()
        assert checks['distillation_active']['ok'] is ok and checks['teacher_frozen']['ok'] is False
        assert checks['lr_batch'] == dict(batch=2, processes=1, images_per_process=2, base_batch=None,
                                          auto_scale_lr=False, lr=0.1)


def test_the_teacher_gate_passes_the_teacher_the_run_names(demo_rows):
    store, rows = demo_rows
    gate = store.load(rows[2]['key'])['checks']['teacher_gate']
    assert gate['ok'] and gate['weights_equal'] and not gate['evaluated'] and gate['tensors'] > 100
    assert gate['reference_mAP'] == store.load(rows[0]['key'])['metrics']['mAP']


def test_the_teacher_gate_stops_a_run_whose_teacher_is_not_the_one_it_names(demo_rows, tmp_path):
    """The teacher checkpoint never loaded (teacher_ckpt dropped): its random weights are not the teacher run's,
    so it is evaluated, and it does not score the run's stored mAP: the run stops before training, naming the
    teacher and both numbers. (The smoke teacher learned little, so its stored mAP is set to 50 here.)"""
    from mmengine.config import Config
    from kdlab.engine.runner import execute
    from kdlab.errors import TeacherGateError
    store, rows = demo_rows
    teacher = store.load(rows[0]['key'])
    other = RunStore(tmp_path / 'runs', tmp_path / 'work')
    other.save({**teacher, 'metrics': {**teacher['metrics'], 'mAP': 50.0}}, 'x = 1')
    cfg = Config.fromfile(str(store.run_dir(rows[2]['key']) / 'config.py'))
    cfg.model.teacher_ckpt = None
    with pytest.raises(TeacherGateError, match=r'scores 0\.0 mAP on the validation data, its reference is 50\.0') as err:
        execute(cfg, name='gate', store=other, progress=False)
    assert 'did not load' in err.value.fix and 'tensor(s)' in err.value.message
    assert len(list((tmp_path / 'runs').glob('*/run.json'))) == 1       # only the teacher's: nothing stored


def test_the_distilled_run_is_an_mmrazor_fpn_teacher_distill_with_pkd(demo_rows):
    store, rows = demo_rows
    text = (store.run_dir(rows[2]['key']) / 'config.py').read_text()
    assert "type='FpnTeacherDistill'" in text and "type='PKDLoss'" in text
    assert rows[0]['key'] in text  # the teacher is identified by its run
    assert 'loss_weight=10.0' in text


def test_a_second_call_reuses_the_stored_runs(demo_rows):
    from kdlab import demo
    store, rows = demo_rows
    before = {r['key']: (store.run_dir(r['key']) / 'run.json').stat().st_mtime_ns for r in rows}
    again = demo.run('smoke', store=store, progress=False)
    assert [r['key'] for r in again] == [r['key'] for r in rows]
    assert {r['key']: (store.run_dir(r['key']) / 'run.json').stat().st_mtime_ns for r in rows} == before


def test_a_finished_run_is_not_overwritten_silently(demo_rows):
    store, rows = demo_rows
    rec = store.load(rows[1]['key'])
    with pytest.raises(RunExistsError, match='overwrite'):
        store.save(rec, 'x = 1')


def test_table_prints_every_role(demo_rows):
    from kdlab.demo import format_table
    _, rows = demo_rows
    table = format_table(rows)
    for col in ('mAP', 'AP50', 'AP75', 'APs', 'APm', 'APl', 'teacher', 'baseline', 'pkd'):
        assert col in table


def test_teacher_checkpoint_that_does_not_match_its_config(demo_rows):
    from kdlab.engine.checkpoints import check_checkpoint
    from kdlab.zoo import detector_config
    store, rows = demo_rows
    student_ckpt = store.load(rows[1]['key'])['checkpoint']        # a retinanet_r50 checkpoint...
    wrong = detector_config('retinanet_x101', 'smoke').model.to_dict()  # ...offered as the x101 teacher
    with pytest.raises(CheckpointError, match='does not match its config'):
        check_checkpoint(wrong, student_ckpt)
    with pytest.raises(CheckpointError, match='does not exist'):
        check_checkpoint(wrong, '/nonexistent/teacher.pth')


def test_a_checked_checkpoint_is_checked_again_once_its_file_changes(demo_rows, tmp_path, monkeypatch):
    """check_checkpoint remembers a file that passed for a config (a table's teacher serves many students), by
    the file's identity: a copy cut in place afterwards is read again and refused."""
    import shutil
    from kdlab.engine import checkpoints
    from kdlab.zoo import detector_config
    store, rows = demo_rows
    copy = tmp_path / 'teacher.pth'
    shutil.copy(store.load(rows[1]['key'])['checkpoint'], copy)
    model = detector_config('retinanet_r50', 'smoke').model.to_dict()
    reads = []
    monkeypatch.setattr(checkpoints, '_check', lambda *a, _real=checkpoints._check, **k: (reads.append(1),
                                                                                         _real(*a, **k)))
    checkpoints.check_checkpoint(model, str(copy))
    checkpoints.check_checkpoint(model, str(copy))
    assert len(reads) == 1
    data = copy.read_bytes()
    copy.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match='truncated or corrupted'):
        checkpoints.check_checkpoint(model, str(copy))
    assert len(reads) == 2


def test_official_mmrazor_pkd_retinanet_config_runs_through_kdlab(demo_rows, tmp_path):
    """mmrazor's own PKD RetinaNet X101 -> R50 config: only data and widths changed, a few iterations."""
    from mmengine.config import Config
    from kdlab.engine.official import adapt_official
    from kdlab.engine.runner import execute
    from kdlab.zoo import load_config
    store, rows = demo_rows
    official = load_config('mmrazor::distill/mmdet/pkd/pkd_fpn_retina_x101_retina_r50_2x_coco.py')
    teacher_ckpt = store.load(rows[0]['key'])['checkpoint']         # the smoke retinanet_x101 teacher
    cfg = adapt_official(official, 'smoke', teacher_ckpt=teacher_ckpt)
    # unchanged: algorithm, distiller, loss weights, optimizer
    assert cfg.model.type == 'FpnTeacherDistill'
    assert cfg.model.distiller.to_dict() == official.model.distiller.to_dict()
    assert cfg.optim_wrapper.to_dict() == official.optim_wrapper.to_dict()
    # changed: widths (same families/backbones) and data
    assert cfg.model.architecture.type == 'RetinaNet' and cfg.model.teacher.backbone.type == 'ResNeXt'
    assert cfg.model.architecture.neck.out_channels == 64
    assert 'synthetic-' in cfg.train_dataloader.dataset.data_root
    rec = execute(cfg, name='official pkd retina x101->r50', store=RunStore(tmp_path / 's', tmp_path / 'w'),
                  progress=False)
    assert rec['status'] == 'finished'
    log = json.dumps(rec)
    assert 'mAP' in log


def test_official_config_with_a_url_teacher_says_what_to_do():
    from kdlab.engine.official import adapt_official
    from kdlab.zoo import load_config
    official = load_config('mmrazor::distill/mmdet/pkd/pkd_fpn_retina_x101_retina_r50_2x_coco.py')
    with pytest.raises(CheckpointError, match='--teacher-ckpt'):
        adapt_official(official, 'smoke')


def test_the_demo_trains_the_student_again_and_reproduces_its_record(demo_rows, tmp_path, monkeypatch):
    """kdlab demo's fourth row: the stored distilled run trained again here, into a scratch store; on the CPU,
    from the same teacher checkpoint, the same computation: the stored mAP, the stored record untouched."""
    from kdlab import demo
    store, rows = demo_rows
    monkeypatch.setenv('KDLAB_WORK', str(tmp_path / 'work'))          # the scratch store lives beside it
    before = (store.run_dir(rows[2]['key']) / 'run.json').read_text()
    again = demo.run('smoke', store=store, progress=False, again=True)
    assert [r['role'] for r in again] == ['teacher', 'baseline', 'pkd', 'pkd here']
    here = again[3]
    assert here['key'] == rows[2]['key'] and here['mAP'] == rows[2]['mAP'] and here['AP50'] == rows[2]['AP50']
    assert 'its checkpoint' in here['note']
    assert (store.run_dir(rows[2]['key']) / 'run.json').read_text() == before
    scratch = RunStore(tmp_path / 'demo' / 'runs', tmp_path / 'demo' / 'work')
    assert scratch.load(here['key'])['checks']['teacher_gate']['ok']
    import torch
    a = torch.load(store.load(here['key'])['checkpoint'], map_location='cpu', weights_only=False)['state_dict']
    b = torch.load(scratch.load(here['key'])['checkpoint'], map_location='cpu', weights_only=False)['state_dict']
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)    # weight for weight


def test_the_demo_can_train_the_student_again_for_its_first_epochs(demo_rows, tmp_path, monkeypatch):
    """Mini v2's demo trains the student again for its first epochs only and reads both records' learning curves
    at that epoch; here the smoke run's one epoch: the same computation, so the record's curve point."""
    from kdlab import demo
    store, rows = demo_rows
    monkeypatch.setenv('KDLAB_WORK', str(tmp_path / 'work'))
    again = demo.run('smoke', store=store, progress=False, again=True, epochs=1)
    assert [r['role'] for r in again] == ['teacher', 'baseline', 'pkd', 'baseline, epoch 1', 'pkd, epoch 1',
                                          'pkd here, epoch 1']
    base, rec, here = again[3:]
    assert rec['mAP'] == demo.at_epoch(store.load(rows[2]['key']), 1)['mAP']
    assert base['mAP'] == demo.at_epoch(store.load(rows[1]['key']), 1)['mAP']
    assert here['mAP'] == rec['mAP'] and here['AP50'] == rec['AP50']
    assert 'its first 1 of 1 epochs' in here['note']
    scratch = RunStore(tmp_path / 'demo' / 'runs', tmp_path / 'demo' / 'work')
    assert scratch.load(here['key'])['first_epochs'] == 1
    table = demo.format_table(again)
    assert 'pkd here, epoch 1' in table


def test_first_epochs_keeps_the_schedule_and_stops_the_loop():
    """The first 4 epochs of mini v2's 48-epoch 1x: the same learning-rate steps (set in epochs), the loop ends at
    4; a count outside the run is refused."""
    from kdlab import demo
    from kdlab.errors import KdlabError
    from kdlab.zoo import detector_config
    cfg = detector_config('retinanet_r50', 'mini', schedule='1x', protocol='v2')
    assert cfg.train_cfg['max_epochs'] == 48
    first = demo.first_epochs(cfg, 4)
    assert first.train_cfg['max_epochs'] == 4 and cfg.train_cfg['max_epochs'] == 48
    assert first.param_scheduler == cfg.param_scheduler
    assert first.param_scheduler[-1]['milestones'] == [36] and first.param_scheduler[-1]['end'] == 48
    for bad in (0, 49):
        with pytest.raises(KdlabError, match='choose 1 to 48'):
            demo.first_epochs(cfg, bad)


def test_a_record_without_a_curve_point_names_the_fix():
    from kdlab import demo
    from kdlab.errors import KdlabError
    with pytest.raises(KdlabError, match='no learning-curve point at epoch 4') as err:
        demo.at_epoch({'key': 'k', 'name': 'n', 'curve': [{'epoch': 1, 'mAP': 1.0}]}, 4)
    assert '--epochs 0' in str(err.value)
