"""A paper's table, re-run, beside the reported one.

:func:`reproduction` plans the rows of one paper's tables at a scale for one or more seeds (the planner:
:mod:`kdlab.engine.planner`; a teacher or baseline shared by rows, tables, seeds of the same configuration or
papers is one run). :meth:`Reproduction.run` trains what the run store does not hold yet (each run resumes
when it was interrupted), and :meth:`Reproduction.compare` turns one table into the reported numbers, the
reproduced ones (mean over the seeds that finished, and their spread) and the difference per cell. Rows that
have not run yet are *pending*; rows kdlab cannot run say why (*skipped: ...*).

At ``mini`` and ``smoke`` scale the absolute numbers are those of tiny detectors on the synthetic data, not
COCO's: read the *gain over the baseline* columns (distilled minus the same table's baseline student) against
the paper's gain; the per-cell difference is what to read at ``full`` scale.
"""
from __future__ import annotations

import dataclasses
import math
import statistics
from pathlib import Path
from typing import Dict, List, Optional, Sequence

from kdlab.engine.planner import Plan, PlannedRun, execute_plan, merge_plans, plan_rows
from kdlab.engine.runner import METRICS, wall_time
from kdlab.engine.store import RunStore, rebuilt_note
from kdlab.errors import CheckpointError, KdlabError, UnknownNameError

#: The metric the gain columns use.
GAIN_METRIC = 'mAP'


@dataclasses.dataclass
class Reproduction:
    """The plan of some tables of one paper at one scale, per seed, and the store its runs go to."""

    paper: str
    tables: List[str]
    scale: str
    seeds: List[int]
    plans: Dict[int, Plan]
    store: RunStore
    rows: Optional[List[str]] = None        # row ids kept (None: every row)

    # ------------------------------------------------------------------ what is planned
    def runs(self) -> Dict[str, PlannedRun]:
        """The unique runs over all seeds, dependencies first."""
        return self.plan().runs

    def plan(self) -> Plan:
        """Every seed's plan as one (:func:`kdlab.engine.planner.merge_plans`)."""
        return merge_plans((self.plans[seed] for seed in self.seeds), self.scale)

    def pending(self) -> List[PlannedRun]:
        """Planned runs the store does not hold yet."""
        return [r for r in self.runs().values() if self.store.load(r.key) is None]

    def to_rebuild(self) -> List[PlannedRun]:
        """Stored runs trained again before the pending ones: a pending run needs their checkpoint (a teacher,
        an earlier stage) and it is not on this machine (:func:`kdlab.engine.planner.execute_plan`)."""
        from kdlab.engine.store import checkpoint_present
        runs, out = self.runs(), {}

        def visit(run: PlannedRun) -> None:
            for need in run.needs:
                rec = self.store.load(need)
                if need in runs and rec is not None and not checkpoint_present(rec) and need not in out:
                    out[need] = runs[need]
                    visit(runs[need])
        for run in self.pending():
            visit(run)
        return [r for k, r in runs.items() if k in out]

    def summary(self):
        """One row per table: reported rows, rows kdlab runs, rows skipped, unique runs, stored, pending, stored
        runs to train again here (``rebuild``), and the minutes its stored runs took to train and evaluate
        (``train_min``: each run's wall time on the machine that made it, every attempt included)."""
        import pandas as pd
        records, rebuild = [], self.to_rebuild()
        for table in self.tables:
            refs = self._refs(table)
            keys = {k for s in self.seeds for ref in refs for k in self._row_keys(s, ref)}
            skipped = [ref for ref in refs if ref in self.plans[self.seeds[0]].skipped]
            records.append(dict(table=table, rows=len(refs), runnable=len(refs) - len(skipped),
                                skipped=len(skipped), runs=len(keys),
                                stored=sum(self.store.load(k) is not None for k in keys),
                                pending=sum(self.store.load(k) is None for k in keys),
                                rebuild=sum(r.key in keys for r in rebuild),
                                train_min=round(sum(wall_time(r) for r in map(self.store.load, keys) if r)
                                                / 60, 1)))
        frame = pd.DataFrame.from_records(records, columns=['table', 'rows', 'runnable', 'skipped', 'runs',
                                                            'stored', 'pending', 'rebuild', 'train_min'])
        frame.attrs.update(paper=self.paper, scale=self.scale, seeds=list(self.seeds),
                           unique_runs=len(self.runs()))
        return frame

    def _refs(self, table: str) -> List[str]:
        from kdlab import papers
        return [f'{self.paper}/{table}/{r.id}' for r in papers.iter_rows(self.paper, table)
                if self.rows is None or r.id in self.rows]

    def _row_keys(self, seed: int, ref: str) -> List[str]:
        """Every run a row needs at ``seed``: its own, its baseline, and what they need (teachers, stages)."""
        plan = self.plans[seed]
        todo = [k for k in (plan.rows.get(ref), plan.baselines.get(ref)) if k]
        seen: List[str] = []
        while todo:
            k = todo.pop()
            if k not in seen:
                seen.append(k)
                todo.extend(plan.runs[k].needs)
        return seen

    # ------------------------------------------------------------------ training
    def estimate(self):
        """What a :meth:`run` would train here and for how long: one row per pending run with the minutes its
        name took when stored under another key on this store (another seed, an earlier build; the median of
        their wall times), NaN where none was; ``attrs['minutes']`` (the known part) and ``attrs['unknown']``.
        A calibration run (``kdlab calibrate``) names the same detector run ``'fcos_r50 1x (mini v2, seed 0)'``
        where the planner says ``'fcos_r50 1x (mini_v2)'``; both count
        (:func:`kdlab.engine.calibration.planner_name`)."""
        import math
        import statistics
        import pandas as pd
        from kdlab.engine.calibration import planner_name
        from kdlab.engine.runner import wall_time
        seen: Dict[str, List[float]] = {}
        for rec in self.store:
            seen.setdefault(planner_name(rec.get('name', '')), []).append(wall_time(rec) / 60)
        rows = [dict(run=r.name, role=r.role,
                     minutes=round(statistics.median(seen[r.name]), 1) if r.name in seen else math.nan)
                for r in self.pending()]
        frame = pd.DataFrame(rows, columns=['run', 'role', 'minutes'])
        frame.attrs['minutes'] = round(float(frame['minutes'].sum(skipna=True)), 1) if rows else 0.0
        frame.attrs['unknown'] = int(frame['minutes'].isna().sum())
        return frame

    def estimate_note(self, todo=None) -> str:
        """:meth:`estimate` (or ``todo``, its frame already made) in one line, as the notebooks and ``kdlab
        reproduce --plan`` say it: ``'9 run(s) not stored (about 512.0 min here, one core each; 3 never timed on
        this store)'``; ``''`` when all are stored."""
        if todo is None:
            todo = self.estimate()
        if not len(todo):
            return ''
        minutes, unknown = todo.attrs['minutes'], todo.attrs['unknown']
        when = '; '.join(x for x in (f'about {minutes} min here, one core each' if minutes else '',
                                     f'{unknown} never timed on this store' if unknown else '') if x)
        return f'{len(todo)} run(s) not stored ({when})'

    def run(self, *, progress: bool = True, resume: bool = True, gpus: int = 1, device: str = 'auto',
            launcher: Optional[str] = None, workers: int = 1, interrupt: str = 'raise') -> Dict[str, dict]:
        """Train and evaluate every pending run of every seed, dependencies first (all seeds one plan:
        :meth:`plan`); returns ``{key: record}``.

        ``resume=False`` restarts interrupted runs instead of resuming them (finished runs are kept: they are
        the same computation). ``gpus`` > 1 launches each run on that many processes with torchrun
        (mmengine's ``pytorch`` launcher; gloo on CPU). ``device``: ``'auto'``, ``'cpu'`` or ``'cuda'``.
        ``workers`` > 1 (CPU): that many runs train at once, a run once those it needs are stored
        (:func:`kdlab.engine.planner.execute_plan`).

        ``interrupt='stop'`` (the notebooks): an interrupt (Ctrl-C, JupyterLab's stop button) ends the training
        quietly, says what is stored and that running again resumes, and returns the stored runs, so the
        cells after it still show the tables; ``'raise'``: the interrupt propagates (the CLI).
        """
        if interrupt not in ('raise', 'stop'):
            raise UnknownNameError('interrupt behaviour', interrupt, ('raise', 'stop'))
        total = len(self.runs())
        if progress:
            print(f'{self.paper} {", ".join(self.tables)} ({self.scale}, seeds {self.seeds}): '
                  f'{total} unique runs, {len(self.pending())} to train', flush=True)
        try:
            return execute_plan(self.plan(), self.store, progress=progress, resume=resume, gpus=gpus,
                                device=device, launcher=launcher, workers=workers)
        except KeyboardInterrupt:
            if interrupt == 'raise':
                raise
            stored = total - len(self.pending())
            print(f'\nstopped: {stored} of {total} runs are stored; running this again resumes the rest (an '
                  'interrupted run from its last finished epoch)', flush=True)
            return {k: r for k in self.runs() if (r := self.store.load(k)) is not None}

    # ------------------------------------------------------------------ the comparison
    def compare(self, table: str):
        """The reported table beside the reproduced one (see :func:`compare_rows`)."""
        if table not in self.tables:
            raise UnknownNameError(f'table of this reproduction of {self.paper!r}', table, self.tables,
                                   'plan it first: reproduction(paper, tables=[...])')
        return compare_rows(self.paper, table, self.plans, self.store, seeds=self.seeds, rows=self.rows,
                            scale=self.scale)


def reproduction(paper: str, tables: Optional[Sequence[str]] = None, scale: str = 'mini', *,
                 rows: Optional[Sequence[str]] = None, seeds: Sequence[int] = (0,), data_root: Optional[str] = None,
                 store: Optional[RunStore] = None, teacher_schedule: Optional[str] = None,
                 teacher_ckpts: Optional[Dict[str, str]] = None, teacher_input: str = 'student') -> Reproduction:
    """Plan ``tables`` (default: all) of ``paper`` at ``scale`` for each seed.

    ``rows``: keep only these row ids (as ``kdlab papers PAPER --table ID`` prints them). Unknown papers, tables
    or rows raise :class:`kdlab.errors.UnknownNameError` naming what exists. ``teacher_ckpts``: zoo name ->
    checkpoint path or URL of a teacher to evaluate and distil from instead of training it (full scale: the
    papers' released teachers). ``teacher_input``: ``'own'`` feeds each teacher its own preprocessing instead of
    the student's batch (the released code's, default; :mod:`kdlab.methods.preprocessing`).
    """
    from kdlab import papers
    from kdlab.zoo import _check_scale
    _check_scale(scale)
    known = papers.list_tables(paper)                 # raises for an unknown paper
    tables = list(tables or known)
    for t in tables:
        if t not in known:
            raise UnknownNameError(f'table of {paper!r}', t, known, f'run `kdlab papers {paper}` to list them')
    all_rows = [r for t in tables for r in papers.iter_rows(paper, t)]
    if rows:
        ids = {r.id for r in all_rows}
        for r in rows:
            if r not in ids:
                raise UnknownNameError(f'row of {paper} {", ".join(tables)}', r, sorted(ids),
                                       f'run `kdlab papers {paper} --table {tables[0]}` to see the row ids')
        all_rows = [r for r in all_rows if r.id in rows]
    seeds = [int(s) for s in seeds] or [0]
    from kdlab.zoo import list_detectors
    for name, ckpt in (teacher_ckpts or {}).items():
        if name not in list_detectors():
            raise UnknownNameError('detector (teacher_ckpts key)', name, list_detectors(), 'see `kdlab zoo`')
        if '://' not in str(ckpt) and not Path(ckpt).expanduser().is_file():
            raise CheckpointError(f'teacher checkpoint {ckpt!r} of {name} does not exist',
                                  'give the path of a downloaded checkpoint, or its URL')
    plans = {s: plan_rows(all_rows, scale, seed=s, data_root=data_root, teacher_schedule=teacher_schedule,
                          teacher_ckpts=teacher_ckpts, teacher_input=teacher_input) for s in seeds}
    return Reproduction(paper, tables, scale, seeds, plans, store or RunStore(), list(rows) if rows else None)


# ---------------------------------------------------------------------------------------------- comparing
def mean_sd(values: List[float]):
    """Mean and sample standard deviation (NaN where undefined: no value, or one)."""
    if not values:
        return math.nan, math.nan
    return statistics.fmean(values), (statistics.stdev(values) if len(values) > 1 else math.nan)


def reported_gains(rows) -> Dict[str, float]:
    """Row id -> the paper's gain in :data:`GAIN_METRIC` over the same table's baseline of the same student
    (the printed ``(+x.y)`` where the paper prints one)."""
    baselines = {}
    for r in rows:
        if r.method == 'baseline' and GAIN_METRIC in r.metrics:
            baselines.setdefault((r.student.detector, r.student.backbone, r.student.schedule), r.metrics[GAIN_METRIC])
    out = {}
    for r in rows:
        if r.method == 'baseline':
            continue
        if GAIN_METRIC in r.printed_gain:
            out[r.id] = float(r.printed_gain[GAIN_METRIC])
            continue
        base = baselines.get((r.student.detector, r.student.backbone, r.student.schedule))
        if base is not None and GAIN_METRIC in r.metrics:
            out[r.id] = round(float(r.metrics[GAIN_METRIC]) - float(base), 1)
    return out


def compare_rows(paper: str, table: str, plans: Dict[int, Plan], store: RunStore, *, seeds: Sequence[int],
                 rows: Optional[Sequence[str]] = None, scale: str = 'mini'):
    """One DataFrame row per reported row.

    Columns: ``row, teacher, student, method, status`` (``finished``, ``partial k/n`` seeds, ``pending``,
    ``skipped: why``), ``seeds`` (finished seeds), then per metric the table reports ``<m> paper``,
    ``<m> kdlab`` (mean over finished seeds), ``<m> sd`` (spread over seeds, from 2 seeds), ``<m> delta``
    (kdlab - paper); ``teacher kdlab``: the :data:`GAIN_METRIC` of the teacher build the row distilled from
    (as recorded in the run's ``built_from``, else the stored teacher's), so that a student's number is read
    beside the teacher it had at this scale; ``gain paper`` / ``gain kdlab`` / ``gain sd``: :data:`GAIN_METRIC` of the row minus its
    baseline student's; ``runs``: the row's run key per seed; ``note``: a teacher or earlier stage trained
    again after the row's run distilled from it (:meth:`RunStore.rebuilt_inputs`), with both builds' mAP; a
    teacher that scored below the row's baseline student at this scale; the run record's ``notes`` (a teacher
    fed input normalised for another detector). ``attrs``: paper, table, title, source, scale,
    seeds, label (the scale's name in results files, :func:`kdlab.zoo.scale_label`).
    """
    import pandas as pd
    from kdlab import papers
    from kdlab.zoo import scale_label
    reported = [r for r in papers.iter_rows(paper, table) if rows is None or r.id in rows]
    data = papers.load_table_data(paper, table)
    metrics = [m for m in data['metrics'] if m in METRICS]
    gains = reported_gains(list(papers.iter_rows(paper, table)))
    records = []
    for r in reported:
        ref = f'{paper}/{table}/{r.id}'
        rec = dict(row=r.id, teacher=r.teacher_text, student=r.student_text, method=r.method)
        skipped = plans[seeds[0]].skipped.get(ref)
        done, gain_values = [], []
        per_metric: Dict[str, List[float]] = {m: [] for m in metrics}
        keys, notes, teacher_values = [], [], []
        for s in seeds:
            key = plans[s].rows.get(ref)
            keys.append(key or '')
            run = store.load(key) if key else None
            if run is None:
                continue
            done.append(s)
            note = rebuilt_note(store.rebuilt_inputs(run))
            if note and note not in notes:
                notes.append(note)
            for m in metrics:
                if run['metrics'].get(m) is not None:
                    per_metric[m].append(float(run['metrics'][m]))
            teachers = _teacher_metric(plans[s], key, run, store)
            teacher_values += teachers
            base = store.load(plans[s].baselines.get(ref, '')) if r.method != 'baseline' else run
            if base is not None and run['metrics'].get(GAIN_METRIC) is not None:
                gain_values.append(float(run['metrics'][GAIN_METRIC]) - float(base['metrics'][GAIN_METRIC]))
            note = _weak_teacher_note(teachers, base if r.method != 'baseline' else None)
            if note and note not in notes:
                notes.append(note)
            for note in run.get('notes') or []:     # e.g. the teacher's input (kdlab.methods.preprocessing)
                if note not in notes:
                    notes.append(note)
        if skipped:
            status = f'skipped: {skipped}'
        elif not done:
            status = 'pending'
        elif len(done) < len(seeds):
            status = f'partial {len(done)}/{len(seeds)}'
        else:
            status = 'finished'
        rec.update(status=status, seeds=','.join(map(str, done)))
        for m in metrics:
            paper_v = float(r.metrics[m]) if m in r.metrics else math.nan
            mean, sd = mean_sd(per_metric[m])
            rec[f'{m} paper'] = paper_v
            rec[f'{m} kdlab'] = round(mean, 2)
            rec[f'{m} sd'] = round(sd, 2)
            rec[f'{m} delta'] = round(mean - paper_v, 2)   # NaN where either is
        g_mean, g_sd = mean_sd(gain_values) if r.method != 'baseline' else (math.nan, math.nan)
        t_mean, _ = mean_sd(teacher_values)
        rec['teacher kdlab'] = round(t_mean, 2)
        rec['gain paper'] = gains.get(r.id, math.nan)
        rec['gain kdlab'] = round(g_mean, 2)
        rec['gain sd'] = round(g_sd, 2)
        rec['runs'] = ' '.join(keys)
        rec['note'] = '; '.join(notes)
        records.append(rec)
    frame = pd.DataFrame.from_records(records)
    frame.attrs.update(paper=paper, table=table, title=data['title'], source=data['source'], scale=scale,
                       label=scale_label(scale),
                       seeds=list(seeds), metrics=metrics)
    return frame


def _weak_teacher_note(teachers: List[float], base: Optional[dict]) -> str:
    """Says so when a teacher scored below the baseline student at this scale: the papers' premise (a teacher
    stronger than its student) does not hold for that row, which changes what its gain means."""
    b = ((base or {}).get('metrics') or {}).get(GAIN_METRIC)
    weak = [t for t in teachers if b is not None and t < float(b)]
    if not weak:
        return ''
    return f'teacher below the baseline student at this scale ({min(weak):.1f} vs {float(b):.1f} mAP)'


def _teacher_metric(plan: Plan, key: str, run: dict, store: RunStore) -> List[float]:
    """:data:`GAIN_METRIC` of the teacher(s) run ``key`` distilled from: the build it recorded using, else the
    stored one (runs stored before inputs were recorded); empty for a baseline or a teacher not stored."""
    planned = plan.runs.get(key)
    teachers = [k for k in (planned.needs if planned else ()) if plan.runs[k].role == 'teacher']
    values = []
    for t in teachers:
        recorded = (run.get('built_from') or {}).get(t, {}).get(GAIN_METRIC)
        if recorded is None:
            stored = store.load(t)
            recorded = stored['metrics'].get(GAIN_METRIC) if stored else None
        if recorded is not None:
            values.append(float(recorded))
    return values


def metric_columns(frame, kind: str) -> List[str]:
    """The ``<m> <kind>`` columns of a comparison frame (``kind``: paper, kdlab, sd, delta)."""
    return [f'{m} {kind}' for m in frame.attrs.get('metrics', []) if f'{m} {kind}' in frame.columns]


def check_device(device: str) -> str:
    """``'auto'`` / ``'cpu'`` / ``'cuda'`` -> the device runs will use; a clear error for one this machine lacks."""
    import torch
    if device not in ('auto', 'cpu', 'cuda'):
        raise UnknownNameError('device', device, ('auto', 'cpu', 'cuda'))
    if device == 'cuda' and not torch.cuda.is_available():
        raise KdlabError('device cuda was asked for but torch sees no GPU',
                         "use device='cpu' (or 'auto'), or install a CUDA build of torch (README, GPU users)")
    if device == 'auto':
        return 'cuda' if torch.cuda.is_available() else 'cpu'
    return device
