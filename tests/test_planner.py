"""The planner: table rows -> unique, content-addressed runs, in dependency order."""
import json

import pytest

from kdlab import papers
from kdlab.engine.planner import plan_pair, plan_rows, plan_table, resolve_refs, run_ref
from kdlab.engine.store import RunStore
from kdlab.errors import KdlabError


@pytest.fixture(scope='module')
def registry_plan():
    return plan_rows(list(papers.iter_rows()), 'smoke')


def test_the_registry_needs_fewer_runs_than_it_has_rows(registry_plan):
    plan = registry_plan
    assert plan.row_count == len(list(papers.iter_rows()))
    assert len(plan.rows) + len(plan.skipped) == plan.row_count
    assert len(plan.runs) < len(plan.rows)
    shared = [k for k in set(plan.rows.values()) if list(plan.rows.values()).count(k) > 1]
    assert shared, 'no run answers two rows: baselines should be shared'


def test_every_dependency_comes_first(registry_plan):
    seen = set()
    for run in registry_plan.ordered():
        assert set(run.needs) <= seen, run.name
        seen.add(run.key)


def test_a_shared_teacher_is_one_run():
    a = plan_table('dcsf_kd', ['table1'], 'smoke')
    teachers = [r for r in a.runs.values() if r.role == 'teacher']
    assert len({r.name for r in teachers}) == len(teachers)
    pkd = a.runs[a.rows['dcsf_kd/table1/retinanet_x101.retinanet_r50.pkd']]
    dcsf = a.runs[a.rows['dcsf_kd/table1/retinanet_x101.retinanet_r50.dcsf_kd']]
    assert pkd.needs == dcsf.needs and pkd.key != dcsf.key


def test_unimplemented_and_unpublished_rows_say_why(registry_plan):
    reasons = registry_plan.skipped
    assert any("method 'fkd'" in v for v in reasons.values())
    assert not any(k.startswith('dsamkd/') for k in reasons)      # runnable through their interpretation
    assert 'not runnable' in reasons['dfmsd/table10/r2']             # a switch lost in the source


def test_sal_rows_become_chains():
    plan = plan_table('dfmsd', ['table7'], 'smoke')
    finals = [plan.runs[k] for k in plan.rows.values() if plan.runs[k].role == 'distilled']
    assert finals
    final = finals[0]
    stage_keys = [k for k in final.needs if plan.runs[k].role == 'stage']
    assert stage_keys, 'the last stage starts from the previous one'
    init = final.cfg.model['architecture']['init_cfg']
    assert init['checkpoint'] == run_ref(stage_keys[0]) and init['prefix'] == 'architecture.'


def test_refs_resolve_to_stored_checkpoints_and_fail_clearly(tmp_path):
    plan = plan_pair('retinanet_r18', ['retinanet_r50'], 'pkd', 'smoke', teacher_schedule='1x')
    distilled = plan.runs[plan.rows['distilled']]
    teacher_key = plan.rows['teacher:retinanet_r50']
    store = RunStore(tmp_path / 'r', tmp_path / 'w')
    with pytest.raises(KdlabError, match='not stored'):
        resolve_refs(distilled.cfg, store)
    d = store.run_dir(teacher_key)
    d.mkdir(parents=True)
    (d / 'run.json').write_text(json.dumps({'key': teacher_key, 'status': 'finished',
                                            'checkpoint': '/ckpts/teacher.pth'}))
    assert resolve_refs(distilled.cfg, store).model.teacher_ckpt == '/ckpts/teacher.pth'


def test_keys_do_not_depend_on_the_machine(tmp_path, monkeypatch):
    a = plan_pair('retinanet_r18', ['retinanet_r50'], 'pkd', 'smoke', teacher_schedule='1x')
    monkeypatch.setenv('KDLAB_WORK', str(tmp_path / 'elsewhere'))
    b = plan_pair('retinanet_r18', ['retinanet_r50'], 'pkd', 'smoke', teacher_schedule='1x')
    assert a.rows == b.rows
    c = plan_pair('retinanet_r18', ['retinanet_r50'], 'pkd', 'smoke', teacher_schedule='1x', seed=1)
    assert c.rows['distilled'] != a.rows['distilled']


def test_full_scale_distilled_students_train_their_baselines_schedule():
    """A row whose student schedule has no official config (DFMSD's FCOS-R50 2x: the zoo has 1x and 2x_ms) is
    distilled on the schedule its baseline gets, not refused (the dry run found `kdlab reproduce dfmsd --scale
    full --plan` failing)."""
    from kdlab.engine.reproduce import reproduction
    job = reproduction('dfmsd', scale='full')
    plan = job.plans[0]
    assert plan.rows and not any('schedule' in why for why in plan.skipped.values())
    for ref, key in plan.rows.items():
        base = plan.baselines.get(ref)
        if base and base != key:
            assert plan.runs[key].schedule == plan.runs[base].schedule, ref


@pytest.mark.parametrize('protocol, epochs', [('v1', 36), ('v2', 48)])
def test_a_teacher_without_a_schedule_trains_3x_under_v1_and_1x_under_v2(monkeypatch, protocol, epochs):
    """Mini v1's teachers trained three times longer than their students; v2's lead comes from the ladder."""
    from kdlab.engine.planner import default_teacher_schedule
    monkeypatch.setenv('KDLAB_MINI', protocol)
    plan = plan_pair('retinanet_r50', ['retinanet_r101'], 'dfmsd', 'mini')
    teacher = plan.runs[plan.rows['teacher:retinanet_r101']]
    assert teacher.cfg.train_cfg.max_epochs == epochs and teacher.schedule == default_teacher_schedule('mini')
    assert default_teacher_schedule('full') == '3x'


@pytest.mark.parametrize('protocol', ['v1', 'v2'])
def test_under_v2_one_teacher_teaches_the_students_of_every_seed(monkeypatch, protocol):
    """As the papers distil every student from one released teacher; v1 trained a teacher per seed."""
    monkeypatch.setenv('KDLAB_MINI', protocol)
    a, b = (plan_pair('retinanet_r50', ['retinanet_r101'], 'dfmsd', 'mini', seed=s) for s in (0, 1))
    same_teacher = a.rows['teacher:retinanet_r101'] == b.rows['teacher:retinanet_r101']
    assert same_teacher == (protocol == 'v2') and a.rows['baseline'] != b.rows['baseline']
    assert b.runs[b.rows['teacher:retinanet_r101']].cfg.randomness.seed == (0 if protocol == 'v2' else 1)
