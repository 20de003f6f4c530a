"""From table rows to runs: the planner.

A reported row (:class:`kdlab.papers.ReportedRow`) becomes a small graph of runs at a scale:

* one run per teacher of its chain (a zoo detector trained alone),
* the baseline student (the student trained alone) — the row's ``method: baseline`` rows are exactly this,
* the distilled student: one ``distill_config`` run, or for DFMSD's stage-wise learning (SAL) a chain of
  stage runs, each starting from the previous stage's student.

Runs are content-addressed before anything is trained: a run that needs another run's checkpoint refers to
it as ``<run:KEY>`` (see :func:`run_ref`), so its key is a function of what it depends on, and a teacher or
baseline shared by several rows, tables or papers is one run. :func:`resolve_refs` swaps the references for
checkpoint paths right before a run trains.
"""
from __future__ import annotations

import copy
import dataclasses
import re
from typing import Dict, Iterable, List, Optional, Sequence, Tuple

from kdlab.engine.runner import run_key
from kdlab.engine.store import checkpoint_present
from kdlab.errors import KdlabError

_REF = re.compile(r'<run:([0-9a-f]{16})>')


def run_ref(key: str) -> str:
    """How a config names the checkpoint of run ``key`` until it exists."""
    return f'<run:{key}>'


@dataclasses.dataclass
class PlannedRun:
    """One run of a plan: its key, what it is, its (unresolved) config and the runs it needs first."""

    key: str
    role: str                 # 'teacher' | 'baseline' | 'distilled' | 'stage'
    name: str
    cfg: object
    needs: Tuple[str, ...] = ()
    detector: str = ''        # the zoo detector this run trains (the student of a distillation run)
    schedule: str = ''


@dataclasses.dataclass
class Plan:
    """The unique runs of some rows, in dependency order, and which run answers which row."""

    scale: str
    runs: Dict[str, PlannedRun] = dataclasses.field(default_factory=dict)
    rows: Dict[str, str] = dataclasses.field(default_factory=dict)        # 'paper/table/row' -> run key
    skipped: Dict[str, str] = dataclasses.field(default_factory=dict)     # 'paper/table/row' -> why
    baselines: Dict[str, str] = dataclasses.field(default_factory=dict)   # 'paper/table/row' -> baseline key
    row_count: int = 0

    def add(self, run: PlannedRun) -> str:
        self.runs.setdefault(run.key, run)
        return run.key

    def ordered(self) -> List[PlannedRun]:
        """Runs with every dependency before its dependants (insertion order already respects it)."""
        return list(self.runs.values())


# --------------------------------------------------------------------------------- row -> zoo names
#: The papers' names that stand for a zoo entry at mini scale (the registry's vocabulary -> the zoo's).
#: ``swin``: a table that names no Swin size for its Mask R-CNN teacher of 48.2 mAP (PKD's abstract, DCSF-KD
#: Table 2) means PKD's released teacher, Mask R-CNN Swin-S (PKD's official results, ../shared/methods.md).
BACKBONE_ALIASES = {'x101_dcn': 'x101', 'swin': 'swin_s'}
#: The papers' schedules -> the zoo's (multi-scale training is not simulated at mini scale).
SCHEDULE_ALIASES = {'1x_ms': '1x', '3x_ms': '3x', '2x_ms': '2x_ms'}


def zoo_name(spec) -> Optional[str]:
    """``ModelSpec(detector='retinanet', backbone='x101')`` -> ``'retinanet_x101'`` if the zoo has it."""
    from kdlab.zoo import list_detectors
    if spec.detector is None or spec.backbone is None:
        return None
    name = f'{spec.detector}_{BACKBONE_ALIASES.get(spec.backbone, spec.backbone)}'
    return name if name in list_detectors() else None


def _zoo_schedule(schedule: Optional[str], default: str) -> str:
    """A schedule as a row states it, as the zoo names it (:data:`SCHEDULE_ALIASES`); ``default`` if none."""
    return SCHEDULE_ALIASES.get(schedule, schedule) if schedule else default


def method_params(row) -> Dict[str, object]:
    """The row's switches as the parameters of its method builder (only those the method knows)."""
    from kdlab.methods import get_method
    m = get_method(row.method)
    return {k: v for k, v in row.switches.items() if k in m.defaults and v is not None}


# ------------------------------------------------------------------------------------------ planning
#: At full scale, a schedule the zoo has no official config for is replaced by the longest one it has.
FULL_SCHEDULE_PREFERENCE = ('3x', '3x_ms', '2x_ms', '2x', '20e', '1x')


def full_schedule(name: str, schedule: str) -> str:
    """``schedule`` if the zoo has the official full-scale config of ``name`` for it, else the longest one."""
    from kdlab.zoo import parse_detector
    family, backbone = parse_detector(name)
    have = [s for b, s in family.full if b == backbone]
    if schedule in have or not have:
        return schedule
    return next((s for s in FULL_SCHEDULE_PREFERENCE if s in have), have[0])


#: The schedule of a teacher whose row states none. Mini v1 trained such teachers ``3x`` (36 epochs) so that
#: they led their students trained from scratch; the issue "Mini scale v2" names exactly that (students beside
#: teachers trained three times longer) as why v1 measured convergence speed. Under v2 the lead comes from the
#: capacity ladder and every baseline is near convergence at 1x by the schedule rule (RetinaNet-R50 1x -> 2x:
#: +0.7), so a teacher trains its 1x (48 epochs), the schedule of the papers' most used released teacher
#: (mmdet's RetinaNet-X101 1x, 41.0 mAP, in PKD's and DCSF-KD's configs), at a third of 3x's cost (144 epochs).
#: Full scale: the fallback when a row states none (the released checkpoint of the longest official schedule).
#: Keyed by :func:`kdlab.zoo.scale_label` (``mini`` is v1, ``mini_v2`` v2).
DEFAULT_TEACHER_SCHEDULE = {'mini': '3x', 'mini_v2': '1x', 'full': '3x', 'smoke': '3x'}


def default_teacher_schedule(scale: str) -> str:
    """:data:`DEFAULT_TEACHER_SCHEDULE` of ``scale`` (at mini, of its protocol: :func:`kdlab.zoo.scale_label`)."""
    from kdlab.zoo import scale_label
    return DEFAULT_TEACHER_SCHEDULE[scale_label(scale)]


def teacher_seed(scale: str, seed: int) -> int:
    """The seed a teacher trains with when its students train with ``seed``. The papers distil every student,
    whatever its seed, from one released teacher; mini v1 trained one teacher per student seed, which put the
    teacher's own seed spread (v1's RetinaNet-X101: 37.7 to 51.4 mAP) into every gain's spread. Under mini v2 a
    teacher trains once, with seed 0, and teaches the students of every seed; v1, smoke and full scale (where a
    teacher no zoo released is trained) keep the student's seed."""
    from kdlab.zoo import scale_label
    return 0 if scale_label(scale) == 'mini_v2' else seed


class _Planner:
    def __init__(self, scale: str, seed: int, data_root: Optional[str], teacher_schedule: str,
                 teacher_ckpts: Optional[Dict[str, str]] = None, teacher_input: str = 'student'):
        self.plan = Plan(scale)
        self.scale, self.seed, self.data_root = scale, seed, data_root
        self.teacher_schedule = teacher_schedule or default_teacher_schedule(scale)
        self.teacher_ckpts = dict(teacher_ckpts or {})
        self.teacher_input = teacher_input

    def detector_run(self, name: str, schedule: str, role: str) -> PlannedRun:
        from kdlab.zoo import detector_config, scale_label
        if self.scale == 'full':
            schedule = full_schedule(name, schedule)
        seed = teacher_seed(self.scale, self.seed) if role == 'teacher' else self.seed
        cfg = detector_config(name, self.scale, schedule=schedule, data_root=self.data_root, seed=seed)
        label = f'{name} {schedule} ({scale_label(self.scale)})'
        if role == 'teacher' and name in self.teacher_ckpts:
            # a released teacher: evaluated, not trained (its key names the checkpoint, not where it lies)
            cfg.load_from = self.teacher_ckpts[name]
            cfg.kdlab_provided = True
            label += ' [given checkpoint]'
        elif role == 'teacher' and self.scale == 'full':
            from kdlab.zoo.released import released
            rel = released(name, schedule)
            if rel is not None:      # the papers' teacher: the model zoo's checkpoint, evaluated, not trained
                cfg.load_from = rel.url          # a local mirror serves it by file name (kdlab.zoo.released)
                cfg.kdlab_provided = True
                cfg.kdlab_released = dict(name=rel.name, url=rel.url, file=rel.file, hash=rel.hash,
                                          box_AP=rel.box_ap, metafile=rel.metafile)
                label += f' [released: {rel.file}]'
            else:
                label += ' [no released checkpoint: trained]'
        key = run_key(cfg)
        run = self.plan.runs.get(key) or PlannedRun(key, role, label, cfg, detector=name, schedule=schedule)
        self.plan.add(run)
        return run

    def distilled_runs(self, method: str, params: dict, student: str, s_sched: str,
                       teachers: List[Tuple[str, PlannedRun]]):
        from kdlab.methods import distill_config
        from kdlab.zoo import detector_config, scale_label
        if self.scale == 'full':     # the schedule its baseline trains (detector_run): the zoo's nearest config
            s_sched = full_schedule(student, s_sched)
        s_cfg = detector_config(student, self.scale, schedule=s_sched, data_root=self.data_root, seed=self.seed)
        params = dict(params)
        label = f'{student} <- {" -> ".join(t for t, _ in teachers)} [{method}] ({scale_label(self.scale)})'
        if method == 'dfmsd':
            from kdlab.methods.dfmsd import sal_stages, stage_placeholder
            sal = params.pop('sal', True)
            me = params.pop('me', 'last')
            t_cfgs = [r.cfg for _, r in teachers]
            stages = sal_stages(s_cfg, t_cfgs, student=student, teachers=[t for t, _ in teachers],
                                pairing=None,      # None: each stage pairs as its own teacher-student pair (sal_stages)
                                teacher_ckpts=[run_ref(r.key) for _, r in teachers], sal=sal, me=me,
                                teacher_input=self.teacher_input, **params)
            prev: Optional[PlannedRun] = None
            used = teachers if sal else teachers[-1:]
            for stage, (t_name, t_run) in zip(stages, used):
                cfg = stage.cfg
                if prev is not None:  # the previous stage's student, by its run
                    init = cfg.model['architecture']['init_cfg']
                    init['checkpoint'] = run_ref(prev.key)
                    cfg.kdlab_stage['init_from'] = run_ref(prev.key)
                cfg.teacher_run = t_run.key
                needs = (t_run.key,) + ((prev.key,) if prev else ()) + (
                    (used[stage.index - 1][1].key,) if 'box_teacher' in cfg.model else ())
                key = run_key(cfg)
                role = 'distilled' if stage.index == len(used) - 1 else 'stage'
                run = self.plan.runs.get(key) or PlannedRun(
                    key, role, f'{label} stage {stage.index + 1}/{len(used)}', cfg, needs, student, s_sched)
                self.plan.add(run)
                prev = run
            return prev
        if len(teachers) != 1:
            raise KdlabError(f'{method} distils from one teacher; got a chain of {len(teachers)}',
                             'give one teacher, or use dfmsd for stage-wise distillation')
        t_name, t_run = teachers[0]
        cfg = distill_config(s_cfg, t_run.cfg, student=student, teacher=t_name, teacher_ckpt=run_ref(t_run.key),
                             method=method, teacher_run=t_run.key, teacher_input=self.teacher_input, **params)
        key = run_key(cfg)
        run = self.plan.runs.get(key) or PlannedRun(key, 'distilled', label, cfg, (t_run.key,), student, s_sched)
        self.plan.add(run)
        return run

    def add_row(self, row) -> None:
        from kdlab.methods import METHODS, _load_builtin
        _load_builtin()
        ref = f'{row.paper}/{row.table}/{row.id}'
        self.plan.row_count += 1
        if not row.runnable:
            why = row.incomplete or ('switches lost in the source: ' + ', '.join(row.unknown_switches)
                                     if row.unknown_switches else 'the source does not name every model')
            self.plan.skipped[ref] = f'not runnable: {why}'
            return
        student = zoo_name(row.student)
        if student is None:
            self.plan.skipped[ref] = f'no zoo detector for student {row.student.name}'
            return
        s_sched = _zoo_schedule(row.student.schedule, '1x')
        if row.method == 'baseline':
            self.plan.rows[ref] = self.plan.baselines[ref] = self.detector_run(student, s_sched, 'baseline').key
            return
        if row.method not in METHODS:
            self.plan.skipped[ref] = f'kdlab does not implement method {row.method!r}'
            return
        teachers = []
        for t in row.teachers:
            name = zoo_name(t)
            if name is None:
                self.plan.skipped[ref] = f'no zoo detector for teacher {t.name}'
                return
            schedule = _zoo_schedule(t.schedule, self.teacher_schedule)
            teachers.append((name, self.detector_run(name, schedule, 'teacher')))
        # every distilled row is read against its baseline
        self.plan.baselines[ref] = self.detector_run(student, s_sched, 'baseline').key
        self.plan.rows[ref] = self.distilled_runs(row.method, method_params(row), student, s_sched, teachers).key


def detector_run(name: str, schedule: Optional[str], role: str, scale: str = 'mini', *, seed: int = 0,
                 data_root: Optional[str] = None) -> PlannedRun:
    """The run a plan would make of zoo detector ``name`` in ``role`` (``'teacher'`` or ``'baseline'``): its key and
    config, as :func:`plan_rows` keys it (a teacher's schedule, None: :func:`default_teacher_schedule`; its seed:
    :func:`teacher_seed`). ``schedule`` as a row states it (``1x_ms`` is mini's ``1x``)."""
    planner = _Planner(scale, seed, data_root, None)
    default = planner.teacher_schedule if role == 'teacher' else '1x'
    return planner.detector_run(name, _zoo_schedule(schedule, default), role)


def plan_rows(rows: Iterable, scale: str = 'mini', *, seed: int = 0, data_root: Optional[str] = None,
              teacher_schedule: Optional[str] = None, teacher_ckpts: Optional[Dict[str, str]] = None,
              teacher_input: str = 'student') -> Plan:
    """Plan the unique runs that answer ``rows`` at ``scale``.

    ``teacher_schedule``: the schedule of a teacher whose row does not state one (default
    :func:`default_teacher_schedule`: mini v1 ``3x``, mini v2 ``1x``; full scale ``3x``, or the longest official
    schedule the zoo has when that one is missing; see ARCHITECTURE.md).
    ``teacher_ckpts``: zoo name -> checkpoint path or URL of a teacher that is evaluated instead of trained
    (the papers' released teachers at full scale). ``teacher_input``: ``'student'`` (the released code: the
    teacher is fed the student's preprocessed batch) or ``'own'`` (:mod:`kdlab.methods.preprocessing`).
    """
    planner = _Planner(scale, seed, data_root, teacher_schedule, teacher_ckpts, teacher_input)
    for row in rows:
        planner.add_row(row)
    return planner.plan


def plan_pair(student: str, teachers: Sequence[str], method: str = 'pkd', scale: str = 'mini', *,
              schedule: str = '1x', teacher_schedule: Optional[str] = None, seed: int = 0,
              data_root: Optional[str] = None,
              teacher_input: str = 'student', **params) -> Plan:
    """Plan one distillation outside the registry: the teacher(s), the baseline student, the distilled one.

    The plan's ``rows`` name them ``teacher:<name>``, ``baseline`` and ``distilled``.
    """
    planner = _Planner(scale, seed, data_root, teacher_schedule, teacher_input=teacher_input)
    t_runs = [(t, planner.detector_run(t, planner.teacher_schedule, 'teacher')) for t in teachers]
    plan = planner.plan
    for t, r in t_runs:
        plan.rows[f'teacher:{t}'] = r.key
    plan.rows['baseline'] = plan.baselines['distilled'] = planner.detector_run(student, schedule, 'baseline').key
    plan.rows['distilled'] = planner.distilled_runs(method, params, student, schedule, t_runs).key
    return plan


def merge_plans(plans: Iterable[Plan], scale: str) -> Plan:
    """Several plans (seeds of a table, cells of the leaderboard) as one: every unique run once, each after the
    runs it needs, so that ``execute_plan(..., workers=N)`` overlaps runs of different plans."""
    merged = Plan(scale=scale)
    for plan in plans:
        for run in plan.ordered():
            merged.add(run)
    return merged


def plan_table(paper: str, tables: Sequence[str] = (), scale: str = 'mini', *, row_ids: Sequence[str] = (),
               **kwargs) -> Plan:
    from kdlab import papers
    tables = list(tables) or papers.list_tables(paper)
    rows = [r for t in tables for r in papers.iter_rows(paper, t) if not row_ids or r.id in row_ids]
    return plan_rows(rows, scale, **kwargs)


# ------------------------------------------------------------------------------------------ executing
def resolve_refs(cfg, store):
    """A copy of ``cfg`` with every ``<run:KEY>`` replaced by that stored run's checkpoint path."""
    cfg = copy.deepcopy(cfg)

    def sub(match):
        rec = store.load(match.group(1))
        if rec is None or not rec.get('checkpoint'):
            raise KdlabError(f'run {match.group(1)} is needed first but is not stored',
                             'execute the plan in order (kdlab.engine.planner.execute_plan)')
        return rec['checkpoint']

    def walk(node):
        if isinstance(node, dict):
            return {k: walk(v) for k, v in node.items()}
        if isinstance(node, list):
            return [walk(v) for v in node]
        if isinstance(node, tuple):
            return tuple(walk(v) for v in node)
        if isinstance(node, str) and _REF.search(node):
            return _REF.sub(sub, node)
        return node

    from mmengine.config import Config
    data = walk(cfg.to_dict())
    return Config(data)


def execute_plan(plan: Plan, store=None, *, progress: bool = True, only: Optional[Sequence[str]] = None,
                 resume: bool = True, gpus: int = 1, device: str = 'auto', launcher: Optional[str] = None,
                 workers: int = 1):
    """Train what is not stored yet, dependencies first; return ``{key: record}``.

    ``gpus`` > 1, or ``device='cpu'`` on a machine with a GPU, runs each run in its own processes
    (:func:`kdlab.engine.launch.launch`: torchrun, one process per GPU, gloo on CPU); ``launcher``:
    this process is already one of several (``kdlab train --launcher pytorch`` under torchrun / srun).
    ``workers`` > 1 (CPU): that many runs train at once, see :func:`_execute_concurrently`.
    """
    from kdlab.engine.launch import launch
    from kdlab.engine.reproduce import check_device
    from kdlab.engine.runner import execute
    from kdlab.engine.store import RunStore
    store = store or RunStore()
    device = check_device(device)
    if workers > 1 and gpus > 1:
        raise KdlabError(f'workers={workers} with gpus={gpus}: choose one', 'workers: several runs at once on the '
                         'CPU; gpus: one run on several processes')
    if workers > 1:
        return _execute_concurrently(plan, store, workers=workers, progress=progress, only=only, resume=resume,
                                     device=device)
    import torch
    apart = gpus > 1 or (device == 'cpu' and torch.cuda.is_available())
    out = {}
    runs = begun_first([run for run in plan.ordered() if only is None or run.key in only], store)
    todo = sum(store.load(run.key) is None for run in runs)
    bar = runs_bar(todo) if progress and todo else None     # runs k of N; each run's own bar below it
    try:
        for run in runs:
            cached = store.load(run.key)
            if cached is not None:
                out[run.key] = cached
                continue
            cfg, extra = _prepare(plan, run, store, out, progress=progress)
            if bar is not None:
                bar.set_postfix_str(f'{run.role}: {run.name}')
            if apart:
                out[run.key] = launch(cfg, name=run.name, store=store, key=run.key, extra=extra, gpus=gpus,
                                      device=device, resume=resume, progress=progress)
            else:
                out[run.key] = execute(cfg, name=run.name, store=store, progress=progress, key=run.key,
                                       extra=extra, resume=resume, launcher=launcher)
            if bar is not None:
                bar.update(1)
    finally:
        if bar is not None:
            bar.close()
    return out


def runs_bar(total: int, desc: str = 'runs'):
    """The overall bar of a plan's training: runs stored of those to train (the current run's epochs and ETA
    are its own bar, :class:`kdlab.engine.hooks.ProgressBarHook`, or this bar's postfix with several workers).
    The same bar watches notebooks train from another process (:func:`kdlab.engine.batch._watch_runs`)."""
    from kdlab.progress import progress_bar
    return progress_bar(total=total, desc=desc, unit='run', dynamic_ncols=True)


def _prepare(plan: Plan, run: PlannedRun, store, out: dict, *, progress: bool):
    """What ``run`` trains from: its config with the checkpoints it needs filled in (a needed run stored
    without its checkpoint here is trained again first, into ``out``; a teacher checkpoint must fit its
    config) and the record's ``extra``."""
    from kdlab.engine.checkpoints import check_checkpoint
    for need in run.needs:
        dep = plan.runs.get(need)
        rec = store.load(need)
        if dep is not None and rec is not None and not checkpoint_present(rec):
            rec = out[need] = _rebuild(plan, dep, rec, store, progress=progress)
        if dep is not None and dep.role == 'teacher' and rec is not None:
            check_checkpoint(dep.cfg.model.to_dict(), rec['checkpoint'], what=f'checkpoint of {dep.name}')
    extra = {'role': run.role, 'needs': list(run.needs), 'built_from': store.inputs(run.needs)}
    return resolve_refs(run.cfg, store), extra


def cores() -> int:
    """The CPU cores this process may use."""
    import os
    return len(os.sched_getaffinity(0)) if hasattr(os, 'sched_getaffinity') else (os.cpu_count() or 1)


def begun_first(runs: Sequence[PlannedRun], store) -> List[PlannedRun]:
    """``runs`` with those already begun first (a checkpoint in this work root, or parked in the store by
    ``kdlab park``, and every run they need stored), each group in its own order: a call resumes what an earlier
    one started, on this machine or another, before it starts anything new, so that an interrupted session
    leaves as few half-trained runs as it found."""
    from kdlab.engine.park import has_checkpoint, is_parked
    begun = [run for run in runs if store.load(run.key) is None
             and (has_checkpoint(store, run.key) or is_parked(store, run.key))
             and all(store.load(need) is not None for need in run.needs)]
    keys = {run.key for run in begun}
    return begun + [run for run in runs if run.key not in keys]


def _execute_concurrently(plan: Plan, store, *, workers: int, progress: bool, only: Optional[Sequence[str]],
                          resume: bool, device: str) -> dict:
    """``workers`` runs at a time, each in its own process (:func:`kdlab.engine.launch.launch`, one process)
    with ``cores() // workers`` threads; a run starts once every run it needs is stored. On a 2-core CPU two
    one-thread trainings do more per hour than one two-thread training, and a table's teachers, baselines and
    distilled students are mostly independent. A run gives the result it gives alone (same config, seed and
    deterministic CPU kernels; ``tests/test_reproduce_runs.py``). A failing run stops nothing already
    training; the runs that need it are not started, and the first failure is raised once the others end.
    A stored run whose checkpoint a run here needs and this machine lacks is trained again like the others,
    before the runs that need it (:func:`_rebuild` says how it is recorded). An interrupt stops the trainings too (:func:`kdlab.engine.launch.stop_children`) before it is re-raised."""
    import concurrent.futures as futures
    from kdlab.engine.launch import stop_children
    if device != 'cpu':
        raise KdlabError(f'workers={workers} trains several runs at once on the CPU; on {device} use gpus=N '
                         '(one run on N GPUs) and workers=1', "or pass device='cpu'")
    threads = max(1, cores() // workers)
    out, todo = {}, {}
    for run in plan.ordered():
        if only is not None and run.key not in only:
            continue
        cached = store.load(run.key)
        if cached is not None:
            out[run.key] = cached
        else:
            todo[run.key] = run
    rebuild = {}                       # stored runs whose checkpoint a run here needs and this machine lacks

    def visit(run: PlannedRun) -> None:
        for need in run.needs:
            rec = store.load(need)
            if need in plan.runs and rec is not None and not checkpoint_present(rec) and need not in rebuild:
                rebuild[need] = rec
                visit(plan.runs[need])
    for run in list(todo.values()):
        visit(run)
    todo = {r.key: r for r in begun_first(plan.ordered(), store) if r.key in todo or r.key in rebuild}
    failed: Dict[str, BaseException] = {}
    running: Dict[object, PlannedRun] = {}

    bar = runs_bar(len(todo)) if progress and todo else None
    with futures.ThreadPoolExecutor(max_workers=workers) as pool:
        try:
            _dispatch(plan, store, pool, todo, running, out, failed, rebuild, workers=workers, threads=threads,
                      progress=progress, resume=resume, bar=bar)
        except BaseException:        # an interrupt (Ctrl-C, a Jupyter interrupt) or an error here: the trainings
            pool.shutdown(wait=False, cancel_futures=True)       # stop too; a rerun resumes their checkpoints
            while not all(f.done() for f in running):            # (a launch may start its process meanwhile)
                stop_children()
                futures.wait(list(running), timeout=1.0)
            raise
        finally:
            if bar is not None:
                bar.close()
    if failed:
        raise next(iter(failed.values()))
    return out


def _dispatch(plan: Plan, store, pool, todo: dict, running: dict, out: dict, failed: dict, rebuild: dict, *,
              workers: int, threads: int, progress: bool, resume: bool, bar=None) -> None:
    """The loop of :func:`_execute_concurrently`: start the runs that are ready, collect those that end.
    ``rebuild``: key -> stored record of the runs in ``todo`` that are trained again for their checkpoint."""
    import concurrent.futures as futures
    from kdlab.engine.batch import training_now
    from kdlab.engine.launch import launch
    say = bar.write if bar is not None else print      # lines above the bar, not through it

    def ready(run: PlannedRun) -> bool:
        waiting = set(todo) | {r.key for r in running.values()}
        return all(need not in plan.runs or (need not in waiting and store.load(need) is not None)
                   for need in run.needs)

    while todo or running:
        blocked = True
        while blocked:                   # the runs that need a failed run, and those that need them
            blocked = [k for k, r in todo.items() if any(n in failed for n in r.needs)]
            for key in blocked:
                failed[key] = KdlabError(f'not trained: {todo.pop(key).name} needs a run that failed')
        for key, run in list(todo.items()):
            if len(running) < workers and ready(run):
                cfg, extra = _prepare(plan, run, store, out, progress=progress)
                if key in rebuild:
                    extra['previous_metrics'] = rebuild[key].get('metrics')
                if progress:
                    again = (f'stored, but its checkpoint {rebuild[key].get("checkpoint")} is not on this machine; '
                             'training it again' if key in rebuild else 'training')
                    say(f'[{run.role}] {run.name}: {again} ({threads} thread{"s" * (threads > 1)}; '
                        f'console: {store.work_dir(key) / "console.log"})')
                running[pool.submit(launch, cfg, name=run.name, store=store, key=key, extra=extra, gpus=1,
                                    device='cpu', resume=resume, progress=False, threads=threads,
                                    console='console.log', overwrite=key in rebuild)] = run
                del todo[key]
        if not running:
            if not todo:                 # what was left needed a failed run
                break
            missing = sorted({n for r in todo.values() for n in r.needs if store.load(n) is None})
            raise KdlabError(f'{len(todo)} run(s) need runs that are neither stored nor planned here: '
                             + ', '.join(missing), 'train the whole plan (no `only`), or those runs first')
        finished, _ = futures.wait(list(running), timeout=30 if bar is not None else None,
                                   return_when=futures.FIRST_COMPLETED)
        if bar is not None:              # each training run's epoch and eta, from its mmengine log
            bar.set_postfix_str(training_now(store, plan.runs, [r.key for r in running.values()]))
        for fut in finished:
            run = running.pop(fut)
            try:
                out[run.key] = fut.result()
            except Exception as err:             # noqa: BLE001  (raised once the others end)
                failed[run.key] = err
                continue
            if bar is not None:
                bar.update(1)
            if progress:
                m = out[run.key].get('metrics', {}).get('mAP')
                say(f'[{run.role}] {run.name}: stored, mAP {m}')


def _rebuild(plan: Plan, run: PlannedRun, record: dict, store, *, progress: bool) -> dict:
    """Train a stored run again because its checkpoint is not on this machine (the store came from another
    one, or the cache was cleared) and a later run needs it; what it needs itself is rebuilt first. The new
    record replaces the old one and keeps the old metrics as ``previous_metrics``: the same key is the same
    computation, so on CPU with the same seed they agree, and where they do not (another device) the record
    says so."""
    from kdlab.engine.runner import execute
    for need in run.needs:
        dep, rec = plan.runs.get(need), store.load(need)
        if dep is not None and rec is not None and not checkpoint_present(rec):
            _rebuild(plan, dep, rec, store, progress=progress)
    if progress:
        print(f'[{run.role}] {run.name}: stored, but its checkpoint {record.get("checkpoint")} is not on this '
              f'machine; training it again', flush=True)
    return execute(resolve_refs(run.cfg, store), name=run.name, store=store, progress=progress, key=run.key,
                   overwrite=True, extra={'role': run.role, 'needs': list(run.needs),
                                          'built_from': store.inputs(run.needs),
                                          'previous_metrics': record.get('metrics')})
