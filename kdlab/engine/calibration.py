"""Calibrating the mini v2 protocol by measurement (issue "Mini scale v2", items 3 and 4).

``kdlab calibrate`` trains the baselines (and teachers) of the seed tables at mini scale under a protocol, each
with its per-epoch validation mAP (``record['curve']``, :class:`kdlab.engine.hooks.LearningCurveHook`), and writes

* ``results/mini_<protocol>/curves.csv`` — detector, schedule, seed, epoch, mAP (one row per validation);
* ``results/mini_<protocol>/finals.csv`` — every run's final mAP and wall time;
* ``results/mini_<protocol>/calibration.csv`` — per detector: the final mAP of its 1x and 2x runs (mean and sd
  over seeds) and the gain between them (the schedule rule: at most 2.0 mAP from 1x to 2x);
* ``results/mini_<protocol>/curves.png`` — the curves side by side.

Runs are ordinary content-addressed runs (``results/runs/<key>``): an interrupted calibration resumes, a finished
curve is not trained again.
"""
from __future__ import annotations

import argparse
from pathlib import Path
from typing import Iterable, List, Optional, Sequence

NAME = 'calibrate'

#: The students and teachers whose curves decide the mini schedules: one student per detector family of the
#: seed tables, and the capacity ladder of RetinaNet.
DEFAULT_DETECTORS = ('retinanet_r50', 'fcos_r50', 'gfl_r50', 'reppoints_r50', 'faster_rcnn_r50',
                     'retinanet_r101', 'retinanet_x101')


def curve_rows(name: str, schedule: str, seed: int, record: dict) -> List[dict]:
    return [dict(detector=name, schedule=schedule, seed=seed, epoch=e['epoch'], mAP=e.get('mAP'))
            for e in record.get('curve') or []]


def summarise(finals):
    """Per detector: the final mAP of its 1x and 2x runs (mean over seeds, and their sd where there are two or
    more), the gain from 1x to 2x (the schedule rule: at most 2.0 mAP), and the number of seeds.

    ``finals``: one row per run, ``detector, schedule, seed, mAP``. The 1x and 2x numbers come from separate
    runs, each with its own learning-rate step, as a 1x and a 2x model of the model zoo do; reading the 1x
    number off the 2x run's curve would take it before the 2x run's step and overstate the gain."""
    import pandas as pd
    rows = []
    for det, part in finals.groupby('detector', sort=False):
        row = dict(detector=det)
        for sched in ('1x', '2x'):
            vals = part.loc[part['schedule'] == sched, 'mAP'].dropna()
            row[f'mAP_{sched}'] = round(float(vals.mean()), 2) if len(vals) else None
            row[f'sd_{sched}'] = round(float(vals.std(ddof=1)), 2) if len(vals) > 1 else None
            row[f'seeds_{sched}'] = len(vals)
        one, two = row['mAP_1x'], row['mAP_2x']
        row['gain_1x_to_2x'] = None if one is None or two is None else round(two - one, 2)
        row['meets_rule'] = None if row['gain_1x_to_2x'] is None else bool(row['gain_1x_to_2x'] <= MAX_GAIN_1X_TO_2X)
        rows.append(row)
    return pd.DataFrame(rows)


#: The schedule rule of the mini protocol (issue "Mini scale v2", item 3): a baseline gains at most this much
#: mAP from its 1x to its 2x schedule (RetinaNet-R50 on COCO: 36.5 -> 37.4).
MAX_GAIN_1X_TO_2X = 2.0


def merge_runs(path: Path, new: List[dict], done: Sequence[tuple]):
    """The rows of ``path`` (a calibration CSV) of runs other than ``done`` ((detector, schedule, seed): another
    call's detectors, schedules or seeds), followed by ``new``."""
    import pandas as pd
    old = pd.read_csv(path) if path.is_file() and path.stat().st_size else pd.DataFrame()
    if not old.empty:
        done = set(done)
        old = old[[k not in done for k in zip(old['detector'], old['schedule'], old['seed'])]]
    return pd.concat([old, pd.DataFrame(new)], ignore_index=True)


def calibrate(detectors: Sequence[str] = DEFAULT_DETECTORS, *, schedules: Sequence[str] = ('1x', '2x'),
              seeds: Iterable[int] = (0,), protocol: str = 'v2', out: Optional[Path] = None, progress: bool = True,
              train: bool = True):
    """Train each detector for each of ``schedules`` under ``protocol`` (stored runs are reused) and write the
    curves (``curves.csv``, ``curves.png``), every run's final mAP (``finals.csv``) and the summary
    (``calibration.csv``). The files keep the runs of earlier calls (other detectors, schedules or seeds) beside
    this call's, so one detector or seed at a time builds them up. ``train=False``: only the runs already stored,
    the others left out (said so)."""
    import pandas as pd
    from kdlab.engine.report import results_dir
    from kdlab.engine.runner import execute, wall_time
    from kdlab.engine.store import RunStore, atomic_write_text
    from kdlab.viz.curves import curve_frame, plot_learning_curves
    from kdlab.zoo import detector_config, parse_detector
    out = Path(out) if out is not None else results_dir(f'mini_{protocol}')
    out.mkdir(parents=True, exist_ok=True)
    store = RunStore()
    rows, finals, done, written = [], [], [], {}
    runs = [(seed, name, sched) for seed in seeds for name in detectors for sched in schedules]
    if progress:
        from kdlab.progress import progress_bar
        runs = progress_bar(runs, desc='calibration runs', unit='run')

    for seed, name, sched in runs:
        cfg = detector_config(name, 'mini', schedule=sched, seed=seed, protocol=protocol)
        if train:
            rec = execute(cfg, name=run_name(name, sched, protocol, seed), store=store, progress=progress)
        else:
            from kdlab.engine.runner import run_key
            rec = store.load(run_key(cfg))
            if rec is None:
                print(f'not stored, left out: {name} {sched} seed {seed}')
                continue
        rows += curve_rows(name, sched, seed, rec)
        finals.append(dict(detector=name, schedule=sched, seed=seed, mAP=rec['metrics'].get('mAP'),
                           wall_time_s=wall_time(rec), run=rec.get('key')))
        done.append((name, sched, seed))
        for file, new in (('curves.csv', rows), ('finals.csv', finals)):     # after every run: nothing lost
            written[file] = merge_runs(out / file, new, done)
            atomic_write_text(out / file, written[file].to_csv(index=False))
    if not finals:
        from kdlab.errors import KdlabError
        raise KdlabError('no calibration run is stored for these detectors and schedules',
                         'run `kdlab calibrate` without --stored to train them')
    every = written['finals.csv']                   # this call's runs and those of earlier calls
    summary = summarise(every)
    atomic_write_text(out / 'calibration.csv', summary.to_csv(index=False))
    records, families = {}, {}                        # by run label; one panel per detector family
    for r in every.itertuples(index=False):
        label = f'{r.detector} {r.schedule} s{r.seed}'
        records[label], families[label] = store.load(r.run), parse_detector(r.detector)[0].name
    fig = plot_learning_curves(curve_frame({k: v for k, v in records.items() if v is not None}),
                               title=f'mini {protocol} baselines', panels=families)
    fig.savefig(out / 'curves.png', dpi=120)
    return pd.DataFrame(rows), summary


# ------------------------------------------------------------------------------ the ladder, pair by pair
#: The seed tables of the mini re-runs (issue "The seed tables and the leaderboard under mini v2"); the
#: Makefile's ``MINI_TABLES`` are these less DFMSD Table 6 (a test keeps them in step).
SEED_TABLES = ('pkd/abstract', 'dcsf_kd/table2', 'dsamkd/abstract', 'icd/readme', 'dfmsd/table4', 'dfmsd/table6')
#: The ladder's rule (issue "Mini scale v2", item 4): every teacher at least this much mAP above every baseline
#: student it teaches.
MIN_TEACHER_LEAD = 2.0


def run_name(detector: str, schedule: str, protocol: str, seed: int) -> str:
    """A calibration run's stored name: ``'fcos_r50 1x (mini v2, seed 0)'``."""
    return f'{detector} {schedule} (mini {protocol}, seed {seed})'


def planner_name(name: str) -> str:
    """A stored run's name as the planner gives the same run: a calibration run's (:func:`run_name`)
    ``'fcos_r50 1x (mini v2, seed 0)'`` -> ``'fcos_r50 1x (mini_v2)'`` (:func:`kdlab.zoo.scale_label`); any other
    name unchanged."""
    import re
    from kdlab.zoo import scale_label
    return re.sub(r' \(mini (v\d+), seed \d+\)$', lambda m: f' ({scale_label("mini", m.group(1))})', name)


def distillations(tables: Sequence[str] = SEED_TABLES, pairs: Optional[Sequence] = None,
                  methods: Optional[Sequence[str]] = None) -> List[dict]:
    """Every distillation the rows of ``tables`` and the leaderboard's ``pairs`` × ``methods`` (defaults:
    :data:`kdlab.engine.leaderboard.DEFAULT_PAIRS`, every method) ask for, one entry per teacher of a row
    (a DFMSD chain's stages each distil from their own teacher; a leaderboard pair's DFMSD through its
    paper's chain, :func:`kdlab.methods.dfmsd.sal_chain`): ``method, teacher, teacher_schedule, student,
    student_schedule, where`` in zoo names (a row's schedules; ``None`` where the row states none). What the
    ladder's rule (:func:`teacher_gaps`) and the loss-scale rule (``kdlab loss-scale --tables``) check."""
    from kdlab import papers
    from kdlab.engine.leaderboard import DEFAULT_PAIRS, default_methods
    from kdlab.engine.planner import zoo_name
    from kdlab.methods import METHODS, _load_builtin
    from kdlab.methods.dfmsd import sal_chain
    _load_builtin()
    out = []
    for t in tables:
        for row in papers.iter_rows(*t.split('/', 1)):
            student = zoo_name(row.student)
            if row.method not in METHODS or not row.runnable or student is None:    # baselines, others' methods
                continue
            for spec in row.teachers:
                teacher = zoo_name(spec)
                if teacher is not None:
                    out.append(dict(method=row.method, teacher=teacher, teacher_schedule=spec.schedule,
                                    student=student, student_schedule=row.student.schedule or '1x', where=t))
    for s_name, t_name in (DEFAULT_PAIRS if pairs is None else pairs):
        for method in methods or default_methods():
            for teacher in (sal_chain(t_name) if method == 'dfmsd' else [t_name]):
                out.append(dict(method=method, teacher=teacher, teacher_schedule=None, student=s_name,
                                student_schedule='1x', where='leaderboard'))
    return out


def teacher_gaps(tables: Sequence[str] = SEED_TABLES, pairs: Optional[Sequence] = None, *, protocol: str = 'v2',
                 store=None):
    """Every (teacher, baseline student) pair that the distillation rows of ``tables`` and the leaderboard's
    ``pairs`` (default :data:`kdlab.engine.leaderboard.DEFAULT_PAIRS`) name, at mini scale under ``protocol``:
    each detector's run as the planner keys it (seed 0; the row's schedules, a teacher without one
    :func:`kdlab.engine.planner.default_teacher_schedule`; a DFMSD chain gives one pair per teacher, a
    leaderboard pair's too, :func:`kdlab.methods.dfmsd.sal_chain`), both
    runs' stored mAP, the teacher's lead and whether it meets :data:`MIN_TEACHER_LEAD`. Nothing is trained; a
    run not stored yet, or a detector the zoo cannot build at this protocol yet, says so in ``status``."""
    import pandas as pd
    from kdlab.engine.planner import default_teacher_schedule, detector_run
    from kdlab.engine.store import RunStore
    from kdlab.errors import KdlabError
    from kdlab.zoo import under_protocol
    store = store or RunStore()
    wanted: dict = {}           # (teacher, its schedule, student, its schedule) -> where
    for d in distillations(tables, pairs):
        wanted.setdefault((d['teacher'], d['teacher_schedule'], d['student'], d['student_schedule']), []).append(
            d['where'])

    def mAP(key):
        rec = store.load(key)
        return None if rec is None else (rec.get('metrics') or {}).get('mAP')

    rows: dict = {}             # one row per pair of runs (two rows may name one run: 1x_ms is mini's 1x)
    with under_protocol(protocol):
        for (t_name, t_sched, s_name, s_sched), where in wanted.items():
            try:
                t_run = detector_run(t_name, t_sched, 'teacher')
                s_run = detector_run(s_name, s_sched, 'baseline')
            except KdlabError as err:     # a detector the zoo cannot build at this protocol yet: said, not hidden
                row = rows.setdefault((t_name, t_sched, s_name, s_sched), dict(
                    teacher=t_name, teacher_schedule=t_sched or default_teacher_schedule('mini'), student=s_name,
                    student_schedule=s_sched, status='cannot be built: ' + str(err).splitlines()[0], where=[]))
                row['where'] += where
                continue
            t_map, s_map = mAP(t_run.key), mAP(s_run.key)
            lead = None if t_map is None or s_map is None else round(t_map - s_map, 2)
            missing = [f'{r.detector} {r.schedule}' for r, v in ((t_run, t_map), (s_run, s_map)) if v is None]
            coco_t, coco_s = released_box_ap(t_name, t_run.schedule), released_box_ap(s_name, s_run.schedule)
            row = rows.setdefault((t_run.key, s_run.key), dict(
                teacher=t_name, teacher_schedule=t_run.schedule, student=s_name, student_schedule=s_run.schedule,
                teacher_mAP=t_map, student_mAP=s_map, lead=lead,
                meets_rule=None if lead is None else bool(lead >= MIN_TEACHER_LEAD),
                status='measured' if not missing else 'not trained: ' + ', '.join(missing),
                teacher_run=t_run.key, student_run=s_run.key, teacher_coco=coco_t, student_coco=coco_s,
                coco_lead=None if coco_t is None or coco_s is None else round(coco_t - coco_s, 2), where=[]))
            row['where'] += where
    for row in rows.values():
        row['tables'] = ' '.join(dict.fromkeys(row.pop('where')))
    rows = list(rows.values())
    frame = pd.DataFrame(rows)
    return frame.sort_values(['student', 'student_schedule', 'teacher']).reset_index(drop=True)


def released_box_ap(detector: str, schedule: str) -> Optional[float]:
    """The COCO box AP the mmdet model zoo gives the released checkpoint of ``detector`` at ``schedule`` (the
    checkpoints the papers distil from; :func:`kdlab.zoo.released.released`), or None where it releases none: the
    lead a pair has on COCO, beside the mini one."""
    from kdlab.zoo.released import released
    found = released(detector, schedule)
    return None if found is None else found.box_ap


# ------------------------------------------------------------------------------------------- the report
#: where the README shows :func:`report` (rewritten by ``kdlab calibrate --report``; a test keeps it in step)
README_MARKERS = ('<!-- calibration report: begin (kdlab calibrate --report) -->', '<!-- calibration report: end -->')
#: the ladders of the mini stand-ins, weakest first (issue "Mini scale v2", item 4)
LADDERS = (('r18', 'r50', 'r101', 'x101'), ('swin_t', 'swin_s'))


def _fmt(v, spec: str = '.1f') -> str:
    import math
    if v is None or (isinstance(v, float) and math.isnan(v)) or v == '':
        return ''
    return format(float(v), spec)


def _with_sd(value, sd, spec: str = '.1f') -> str:
    """``value +- sd`` (the sd to two decimals), or the value alone where there is no sd (one seed)."""
    return _fmt(value, spec) + (f' +- {_fmt(sd, ".2f")}' if _fmt(sd) else '')


def _rung(backbone: str):
    rungs = [b for ladder in LADDERS for b in ladder]
    return (rungs.index(backbone) if backbone in rungs else len(rungs), backbone)


#: the leaderboard cell whose cost the issue's goal is set for: one seed of it in 3 core-hours
COST_CELL = ('retinanet_r50', 'retinanet_x101')
COST_GOAL_HOURS = 3.0


def run_status(record: Optional[dict], park: Optional[dict] = None) -> str:
    """'stored', 'parked at epoch N' (begun, resumed by the next call on any machine: kdlab park), or
    'not trained'."""
    if record is not None:
        return 'stored'
    return f'parked at epoch {park["epoch"]}' if park else 'not trained'


def cell_cost(pair=COST_CELL, methods: Optional[Sequence[str]] = None, seed: int = 0, protocol: str = 'v2',
              store=None):
    """Every run one seed of a leaderboard cell makes under ``protocol`` (the teachers, trained once for all
    seeds under v2, then the baseline and each method's student; a DFMSD chain's first stage too), with the
    wall minutes its stored record took on one core of this machine (shared with the other jobs of the day,
    said in the docs), or why there is none: what the issue's cost goal is measured on."""
    import pandas as pd
    from kdlab.engine.leaderboard import plan_board
    from kdlab.engine.runner import wall_time
    from kdlab.engine.store import RunStore
    from kdlab.zoo import under_protocol
    store = store or RunStore()
    with under_protocol(protocol):
        plans, unavailable = plan_board([tuple(pair)], methods, seeds=(seed,), scale='mini')
    from kdlab.engine.park import parked as parked_runs
    parked = {e['key']: e for e in parked_runs(store)}
    rows, seen = [], set()
    for (_, _, method, _), plan in plans.items():
        for run in plan.ordered():
            if run.key in seen:
                continue
            seen.add(run.key)
            rec = store.load(run.key)
            wall = wall_time(rec) if rec is not None else None
            rows.append(dict(role=run.role, method=method if run.role in ('distilled', 'stage') else '',
                             run=run.name, key=run.key, minutes=None if wall is None else round(wall / 60, 1),
                             status=run_status(rec, parked.get(run.key))))
    for (_, _, method), why in unavailable.items():
        rows.append(dict(role='distilled', method=method, run='', key='', minutes=None, status=f'n/a: {why}'))
    return pd.DataFrame(rows, columns=['role', 'method', 'run', 'key', 'minutes', 'status'])


def _pretraining_section() -> List[str]:
    import pandas as pd
    from kdlab.engine.conclusions import to_markdown
    from kdlab.zoo.pretrain import pretrained_index
    index = sorted(pretrained_index().items(), key=lambda kv: _rung(kv[0]))
    pre = pd.DataFrame([dict(backbone=k, **{'top-1 %': _fmt(v.get('top1')), 'epochs': len(v.get('history', [])),
                                           'minutes': _fmt(v.get('seconds', 0) / 60, '.0f')})
                        for k, v in index if 'superseded' not in k])
    return ['Pretrained backbones (top-1 on 2,000 held-out images, chance 4.5 %):', '', to_markdown(pre)]


def _baselines_section(cal, finals) -> List[str]:
    import pandas as pd
    from kdlab.engine.conclusions import to_markdown
    wall = (finals.groupby(['detector', 'schedule'])['wall_time_s'].median() / 60) if not finals.empty else {}
    rows = []
    for r in cal.to_dict('records'):
        def cell(s):
            m, sd, n = r.get(f'mAP_{s}'), r.get(f'sd_{s}'), int(r.get(f'seeds_{s}') or 0)
            if not n:
                return ''
            return _with_sd(m, sd) + f' ({n} seed{"s" * (n > 1)})'
        rule = r.get('meets_rule')
        rows.append({'baseline': r['detector'], '1x mAP': cell('1x'), '2x mAP': cell('2x'),
                     '1x -> 2x': _fmt(r.get('gain_1x_to_2x'), '+.1f'),
                     f'rule (<= {MAX_GAIN_1X_TO_2X})': '' if pd.isna(rule) else ('met' if rule else 'not met'),
                     'minutes 1x / 2x (one core)': ' / '.join(_fmt(wall.get((r['detector'], s)), '.0f') or '-'
                                                    for s in ('1x', '2x'))})
    return ['Baselines (final validation mAP on 500 images; mean +- sd over seeds):', '', to_markdown(pd.DataFrame(rows))]


def _ladder_section(cal) -> List[str]:
    import pandas as pd
    from kdlab.engine.conclusions import to_markdown
    from kdlab.zoo import list_detectors
    one = {r['detector']: r.get('mAP_1x') for r in cal.to_dict('records') if not pd.isna(r.get('mAP_1x'))}
    ladder = []
    for fam in dict.fromkeys(list_detectors()[d][0] for d in one):
        for rungs in LADDERS:
            got = [(b, one[f'{fam}_{b}']) for b in rungs if f'{fam}_{b}' in one]
            if len(got) < 2:
                continue
            ladder.append({'family': fam, 'ladder (1x mAP)': ' < '.join(f'{b} {_fmt(m)}' for b, m in got),
                           'holds': 'yes' if all(a[1] < b[1] for a, b in zip(got, got[1:])) else 'no',
                           'not measured': ' '.join(b for b in rungs if f'{fam}_{b}' not in one and b != 'r18')})
    return ['The ladder (1x mAP, weakest stand-in first):', '', to_markdown(pd.DataFrame(ladder))] if ladder else []


def _gaps_section(gaps) -> List[str]:
    import pandas as pd
    from kdlab.engine.conclusions import to_markdown
    done = gaps[gaps['status'] == 'measured']
    rows = [{'teacher': f"{r['teacher']} {r['teacher_schedule']}", 'student': f"{r['student']} "
             f"{r['student_schedule']}", 'teacher mAP': _fmt(r['teacher_mAP']), 'student mAP': _fmt(r['student_mAP']),
             'lead': _fmt(r['lead'], '+.1f'), f'rule (>= {MIN_TEACHER_LEAD})': 'met' if r['meets_rule'] else 'not met',
             'lead on COCO': _fmt(r.get('coco_lead'), '+.1f'), 'tables': r['tables']} for r in done.to_dict('records')]
    return ([f'Teacher minus student, the pairs of the seed tables and the leaderboard: {len(done)} of {len(gaps)} '
             'measured (`gaps.csv` says what each other one waits for; lead on COCO: the box APs the mmdet model '
             "zoo's metafiles give the released checkpoints, where both are released):", '']
            + ([to_markdown(pd.DataFrame(rows))] if rows else []))


def _loss_scale_section(protocol: str, full: bool) -> List[str]:
    import pandas as pd
    from kdlab.engine.conclusions import to_markdown
    from kdlab.methods.dfmsd import sal_chain
    from kdlab.methods.loss_scale import read_table, stand_ins
    cell = {(COST_CELL[0], t) for t in sal_chain(COST_CELL[1])}         # the leaderboard cell's pairs
    rows = [{'method': r['method'], 'pair': f"{r['student']} <- {r['teacher']}",
             'r full': f"{r['ratio_full']:.4g}", 'r mini': f"{r['ratio_mini']:.4g}",
             'factor': f"{r['factor']:.3g}" + ('' if r['applicable'] else ' (rule n/a)'),
             'stand-ins': 'current' if r.get('stand_ins') == stand_ins(r['student'], r['teacher'])
             else 'stale: measure again'}
            for r in read_table() if full or (r['student'], r['teacher']) in cell]
    if not rows:
        return []
    what = '' if full else (f' for the leaderboard cell {COST_CELL[0]} <- {COST_CELL[1]} and its DFMSD chain '
                            f'(every other pair: `results/mini_{protocol}/calibration.md`)')
    return [f'The loss-scale rule{what} (distillation / detection loss at the first iteration; factor = r full / '
            'r mini):', '', to_markdown(pd.DataFrame(rows))]


def _rule_state_section(protocol: str, cost) -> List[str]:
    """The rule's open question in numbers: each cell pair's ratio in the trained state (``kdlab loss-scale
    --state trained``, ``results/mini_<protocol>/loss_scale_trained.csv``) beside its initial-state ratios, and
    the balance each stored student of the cell met (:func:`kdlab.analysis.balance.balance_summary`, from its
    record): at iteration 0, the end of epoch 1 and its last iteration. ``cost``: :func:`cell_cost`'s runs."""
    import pandas as pd
    from kdlab.analysis.balance import balance_summary
    from kdlab.engine.conclusions import to_markdown
    from kdlab.engine.report import results_dir
    parts = []
    path = results_dir(f'mini_{protocol}') / 'loss_scale_trained.csv'
    if path.is_file():
        t = pd.read_csv(path)
        rows = [{'method': r['method'], 'pair': f"{r['student']} <- {r['teacher']}",
                 'r full initial': f"{r['ratio_full_initial']:.4g}", 'r mini initial': f"{r['ratio_mini_initial']:.4g}",
                 'factor': f"{r['factor']:.3g}", 'r mini trained': f"{r['ratio_mini_trained']:.4g}",
                 'r full trained': (f"{r['ratio_full_trained']:.4g}" if pd.notna(r['ratio_full_trained'])
                                    else 'not measured (why: the CSV)')}
                for r in t.to_dict('records')]
        parts += ['The rule in the trained state (distillation / detection before the factor, the teacher trained '
                  'and the student pretrained, as a run starts; `kdlab loss-scale --state trained`; the factors '
                  'stay the initial state\'s; docs/mini_v2.md):', '', to_markdown(pd.DataFrame(rows)), '']
    stored = cost[cost['role'].isin(['distilled', 'stage']) & (cost['status'] == 'stored')]
    if len(stored):
        b = balance_summary(stored['key'])
        rows = [{'method': r['method'] + (f" ({r['teacher']})" if r['method'] == 'dfmsd' else ''),
                 'factor': f"{r['factor']:.3g}", 'iteration 0': f"{r['ratio_start']:.3g}",
                 'end of epoch 1': f"{r['ratio_epoch_1']:.3g}", 'last iteration': f"{r['ratio_end']:.3g}"}
                for r in b.to_dict('records')]
        parts += [f'The balance the cell\'s stored students met, seed 0 (distillation after the factor / detection, '
                  'from each run\'s record: `kdlab.analysis.balance`):', '', to_markdown(pd.DataFrame(rows))]
    return parts


def cell_board(pair=COST_CELL, seeds: Sequence[int] = (0, 1, 2), protocol: str = 'v2', store=None):
    """The leaderboard cell ``pair`` under ``protocol`` as far as it is stored (nothing trained): the board
    (:func:`kdlab.engine.leaderboard.leaderboard` with ``train=False``: per method its mAP and gain over the
    baseline, mean and sd over the stored seeds, beside the papers' gain for the pair) and its conclusion check
    (:func:`kdlab.engine.leaderboard.board_check`)."""
    from kdlab.engine.leaderboard import board_check, leaderboard
    from kdlab.zoo import under_protocol
    with under_protocol(protocol):
        frame = leaderboard([tuple(pair)], None, seeds, 'mini', store=store, train=False, progress=False)
    return frame, board_check(frame)


def _cell_section(protocol: str) -> List[str]:
    import pandas as pd
    from kdlab.engine.conclusions import to_markdown
    frame, check = cell_board(protocol=protocol)
    rows = [{'method': r['method'], 'seeds': int(r['seeds']), 'mAP': _with_sd(r['mAP'], r['mAP_sd']),
             'gain': _with_sd(r['gain'], r['gain_sd'], '+.1f'), 'gain paper': _fmt(r['gain paper'], '+.1f'),
             'status': r['status']}
            for r in frame.to_dict('records')]
    verdict = check.iloc[0]['verdict'] if len(check) else 'nothing to compare yet'
    return [f'The leaderboard cell {COST_CELL[0]} <- {COST_CELL[1]} as far as it is stored (mean +- sd over the '
            'stored seeds of 0-2; gain: over the baseline student of the same seed; gain paper: what the papers '
            'report for the pair on COCO, `kdlab.engine.leaderboard.reported_gains`; '
            '`results/leaderboard/leaderboard_mini_v2.csv` names the sources). Conclusion check: ' + verdict + '.',
            '', to_markdown(pd.DataFrame(rows))]


def _cost_section(cost) -> List[str]:
    from kdlab.engine.conclusions import to_markdown
    students = cost[cost['role'] != 'teacher']
    done = students.dropna(subset=['minutes'])
    teachers = cost[cost['role'] == 'teacher'].dropna(subset=['minutes'])
    shown = cost.assign(minutes=[_fmt(m, '.0f') for m in cost['minutes']]).drop(columns=['run'])
    return [f'The cost of one seed of the leaderboard cell {COST_CELL[0]} <- {COST_CELL[1]} (wall minutes on one core, '
            f'shared with other jobs; the goal: {COST_GOAL_HOURS:g} core-hours a seed): {len(done)} of '
            f'{len(students)} student runs stored, {done["minutes"].sum() / 60:.1f} h; the teachers, trained once for '
            f'every seed, {teachers["minutes"].sum() / 60:.1f} h.', '', to_markdown(shown)]


def report(protocol: str = 'v2', root: Optional[Path] = None, *, full: bool = True) -> str:
    """The calibration figures the issue asks the README to show, as Markdown, from the committed files only
    (nothing trained): the pretrained backbones' top-1 (``kdlab/zoo/pretrained/index.json``); each baseline's 1x
    and 2x mAP with its seed sd, the gain and the schedule rule (``calibration.csv``) and its wall time
    (``finals.csv``); the ladder per detector family (the stored 1x mAPs in the stand-ins' order); every
    teacher-student pair's lead (``gaps.csv``); the loss-scale rule's ratios (``loss_scale.csv``, rows measured on
    other stand-ins marked stale; ``full=False``, the README's: only the leaderboard cell's pairs); under v2, the
    leaderboard cell as far as it is stored (:func:`cell_board`) and the cost of one seed of it
    (:func:`cell_cost`), from the stored run records."""
    import pandas as pd
    from kdlab.engine.report import results_dir
    out = results_dir(f'mini_{protocol}', root)

    def read(name):
        path = out / name
        return pd.read_csv(path) if path.is_file() else pd.DataFrame()

    parts = [f'Mini {protocol} calibration, from the committed results (`results/mini_{protocol}/`, '
             '`kdlab/methods/loss_scale.csv`, `kdlab/zoo/pretrained/index.json`; `kdlab calibrate --report` '
             'rewrites this block).', '']
    parts += _pretraining_section()
    cal, finals, gaps = read('calibration.csv'), read('finals.csv'), read('gaps.csv')
    if not cal.empty:
        parts += _baselines_section(cal, finals) + _ladder_section(cal)
    if not gaps.empty:
        parts += _gaps_section(gaps)
    parts += _loss_scale_section(protocol, full)
    if protocol == 'v2':
        cost = cell_cost(protocol=protocol)          # the cell's runs, planned once for both sections
        parts += _rule_state_section(protocol, cost) if full else []
        parts += _cell_section(protocol) + _cost_section(cost)
    return '\n'.join(parts)


def write_report(protocol: str = 'v2', readme: Optional[Path] = None) -> str:
    """:func:`report` into ``results/mini_<protocol>/calibration.md`` and, for v2, its short form (``full=False``)
    between the README's :data:`README_MARKERS`."""
    from kdlab.engine.report import results_dir
    from kdlab.engine.store import atomic_write_text, repo_root
    text = report(protocol)
    atomic_write_text(results_dir(f'mini_{protocol}') / 'calibration.md', text)
    text = report(protocol, full=False)
    if protocol == 'v2':
        readme = Path(readme or repo_root() / 'README.md')
        body = readme.read_text()
        begin, end = README_MARKERS
        if begin not in body or end not in body:
            from kdlab.errors import KdlabError
            raise KdlabError(f'{readme} has no calibration block', f'add the two lines {begin} and {end}')
        head, rest = body.split(begin, 1)
        atomic_write_text(readme, head + begin + '\n' + text + rest[rest.index(end):])
    return text


# ------------------------------------------------------------------------------------------------ trials
#: The protocol knobs a trial may change: the same for every method (data, schedule, batch, learning rate).
TRIAL_KNOBS = ('scene', 'epochs', 'steps', 'batch', 'lr', 'pretrained', 'width')


def scene_spec(scene: Optional[dict] = None):
    """The :class:`kdlab.data.scenes.SceneSpec` with the fields of ``scene`` (JSON lists read as tuples)."""
    from kdlab.data.scenes import SceneSpec
    return SceneSpec(**{k: tuple(v) if isinstance(v, list) else v for k, v in (scene or {}).items()})


def trial_config(detector: str, schedule: str = '2x', *, seed: int = 0, protocol: str = 'v2',
                 scene: Optional[dict] = None, epochs: Optional[int] = None, steps: Optional[list] = None,
                 batch: Optional[int] = None, lr: Optional[float] = None, pretrained: Optional[str] = None,
                 width: Optional[int] = None):
    """The mini config of ``detector`` with some protocol knobs changed: ``scene`` (fields of
    :class:`kdlab.data.scenes.SceneSpec`), ``epochs`` (the schedule's length), ``steps`` (its learning-rate
    steps as fractions, e.g. ``['8/12', '11/12']``, the official 1x's; default one at 3/4),
    ``batch`` (images per iteration), ``lr`` (AdamW's) and ``pretrained`` (a backbone checkpoint written by
    ``kdlab.zoo.pretrain.pretrain(..., out_dir=)``, in place of the committed one) and ``width`` (the neck and
    head channels, :data:`kdlab.zoo.MINI_WIDTH` by default). What the calibration tries
    before a knob becomes the protocol's default."""
    from kdlab.zoo import detector_config, mini_schedule
    data_root = None
    if scene:
        from kdlab.data.scenes import ensure_scenes
        data_root = str(ensure_scenes(scene_spec(scene)))
    cfg = detector_config(detector, 'mini', schedule=schedule, seed=seed, protocol=protocol, data_root=data_root,
                          **({'width': int(width)} if width else {}))
    if epochs or steps:
        from fractions import Fraction
        cfg.merge_from_dict(mini_schedule(int(epochs or cfg.train_cfg.max_epochs),
                                          steps=tuple(Fraction(f) for f in steps) if steps else (0.75,)))
    if batch:
        cfg.train_dataloader.batch_size = int(batch)
    if lr:
        cfg.optim_wrapper.optimizer.lr = float(lr)
    if pretrained:
        from kdlab.zoo.pretrain import file_init
        cfg.model.backbone.init_cfg = file_init(pretrained, cfg.model.backbone.type)
    return cfg


def trial_store(parked_root: Optional[Path] = None):
    """The trials' run store: records and work directories in ``~/.cache/kdlab/trials`` (never mixed with the
    protocol's runs), parks in the repository's store (``results/runs/parked/trials/``: a trial of hours resumes on
    another machine, as a run does)."""
    from kdlab.data.synthetic import cache_root
    from kdlab.engine.park import TRIALS
    from kdlab.engine.store import RunStore
    root = cache_root().parent / 'trials'
    return RunStore(root=root / 'runs', work_root=root / 'work',
                    parked_root=parked_root or RunStore().parked_root / TRIALS)


def trial(detector: str, schedule: str = '2x', *, seed: int = 0, protocol: str = 'v2', out: Optional[Path] = None,
          progress: bool = True, **knobs) -> dict:
    """Train one trial (:func:`trial_config`) in the trials store (``~/.cache/kdlab/trials``: trials never mix
    with the protocol's runs) and append its row to ``results/mini_<protocol>/trials.csv`` (knobs, final
    metrics, the per-epoch mAP, wall time): the committed trace of how the protocol's defaults were chosen."""
    import json
    import pandas as pd
    from kdlab.engine.report import results_dir
    from kdlab.engine.runner import execute, wall_time
    knobs = {k: v for k, v in knobs.items() if v is not None}
    unknown = set(knobs) - set(TRIAL_KNOBS)
    if unknown:
        from kdlab.errors import UnknownNameError
        raise UnknownNameError('calibration knob', sorted(unknown)[0], TRIAL_KNOBS)
    cfg = trial_config(detector, schedule, seed=seed, protocol=protocol, **knobs)
    store = trial_store()
    label = json.dumps(knobs, sort_keys=True)
    rec = execute(cfg, name=f'{detector} {schedule} trial {label} (mini {protocol}, seed {seed})', store=store,
                  progress=progress)
    import dataclasses
    row = dict(detector=detector, schedule=schedule, seed=seed, knobs=label, epochs=cfg.train_cfg.max_epochs,
               batch=cfg.train_dataloader.batch_size, lr=cfg.optim_wrapper.optimizer.lr,
               scene=json.dumps(dataclasses.asdict(scene_spec(knobs.get('scene'))), sort_keys=True),
               **{k: rec['metrics'].get(k) for k in ('mAP', 'AP50', 'APs', 'APm', 'APl')},
               wall_time_s=wall_time(rec),
               curve=' '.join(f"{e.get('mAP')}" for e in rec.get('curve') or []), run=rec.get('key'))
    out = Path(out) if out is not None else results_dir(f'mini_{protocol}')
    out.mkdir(parents=True, exist_ok=True)
    path = out / 'trials.csv'
    table = pd.read_csv(path) if path.is_file() else pd.DataFrame(columns=list(row))
    table = table[table['run'] != row['run']]          # a trial run again replaces its row
    pd.concat([table, pd.DataFrame([row])], ignore_index=True).to_csv(path, index=False)
    return row


def main(args) -> int:
    if args.gaps:
        from kdlab.engine.report import results_dir
        frame = teacher_gaps(protocol=args.protocol)
        out = results_dir(f'mini_{args.protocol}')
        out.mkdir(parents=True, exist_ok=True)
        frame.to_csv(out / 'gaps.csv', index=False)
        cols = ['teacher', 'teacher_schedule', 'student', 'student_schedule', 'teacher_mAP', 'student_mAP', 'lead',
                'meets_rule', 'status']
        print(frame[cols].to_string(index=False))
        print(f'written: {out / "gaps.csv"}')
        return 0
    if args.report:
        print(write_report(args.protocol))
        return 0
    if args.trial:
        import json
        row = trial(args.trial, args.schedules[-1], seed=args.seeds[0], protocol=args.protocol,
                    progress=not args.quiet, scene=json.loads(args.scene) if args.scene else None,
                    epochs=args.epochs, steps=args.steps, batch=args.batch, lr=args.lr,
                    pretrained=args.pretrained, width=args.width)
        print(row)
        return 0
    _, summary = calibrate(args.detectors or DEFAULT_DETECTORS, schedules=args.schedules, seeds=args.seeds,
                           protocol=args.protocol, progress=not args.quiet, train=not args.stored)
    print(summary.to_string(index=False))
    return 0


def register(sub) -> None:
    p: argparse.ArgumentParser = sub.add_parser(
        'calibrate', help="train the mini baselines with their learning curves (the mini protocol's calibration)")
    p.add_argument('detectors', nargs='*', help=f'zoo detectors (default: {" ".join(DEFAULT_DETECTORS)})')
    p.add_argument('--schedules', nargs='+', default=['1x', '2x'], help='each trained as its own run')
    p.add_argument('--seeds', nargs='+', type=int, default=[0])
    p.add_argument('--protocol', default='v2', choices=('v1', 'v2'))
    p.add_argument('--stored', action='store_true', help='train nothing: summarise the runs already stored')
    p.add_argument('--quiet', action='store_true')
    p.add_argument('--report', action='store_true', help='train nothing: the calibration figures from the '
                   'committed results, written to results/mini_<protocol>/calibration.md and the README')
    p.add_argument('--gaps', action='store_true', help='train nothing: every teacher-student pair of the seed '
                   'tables and the leaderboard with both stored mAPs and the teacher\'s lead (at least '
                   f'{MIN_TEACHER_LEAD}), written to results/mini_<protocol>/gaps.csv')
    g = p.add_argument_group('trials', 'train one detector with protocol knobs changed (kept apart from the '
                             "protocol's runs; a row of results/mini_<protocol>/trials.csv)")
    g.add_argument('--trial', metavar='DETECTOR', help='the detector of the trial (its schedule: the last of '
                   '--schedules)')
    g.add_argument('--scene', metavar='JSON', help='SceneSpec fields, e.g. \'{"clutter_under": [1, 3]}\'')
    g.add_argument('--epochs', type=int)
    g.add_argument('--steps', nargs='+', metavar='FRACTION', help="learning-rate steps as fractions of the "
                   "schedule, e.g. 8/12 11/12 (the official 1x's; default: one at 3/4)")
    g.add_argument('--batch', type=int)
    g.add_argument('--lr', type=float)
    g.add_argument('--pretrained', metavar='FILE', help='a backbone checkpoint in place of the committed one')
    g.add_argument('--width', type=int, help='neck and head channels (default: the protocol\'s, 64)')
    p.set_defaults(func=main)
