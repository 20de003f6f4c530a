"""The cross-paper leaderboard: every method on the same teacher/student pairs, one protocol, several seeds.

No single paper gives this: each compares a few methods on its own teachers, schedules and seeds. Here every
method kdlab implements distils the same students from the same teachers at one scale, each (pair, method)
for every seed, and the board reports the mean and spread (sample standard deviation) over the seeds of the
student's mAP and of its gain over the baseline student trained with the same seed.

    kdlab leaderboard --scale mini --seeds 0 1 2                 # train what is missing, print the board
    kdlab leaderboard --no-train                                 # the board of what is stored
"""
from __future__ import annotations

import math
import sys
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

from kdlab.engine.planner import execute_plan, merge_plans, plan_pair
from kdlab.engine.reproduce import mean_sd
from kdlab.engine.store import RunStore, atomic_write_text, rebuilt_note, repo_root
from kdlab.errors import KdlabError

#: (student, teacher): a homogeneous one-stage pair (PKD, DCSF-KD, DFMSD), a two-stage pair (FGD, ICD) and a
#: heterogeneous pair (DCSF-KD Table 1: a Swin Mask R-CNN teacher, P2-P6, for a RetinaNet student, P3-P7).
DEFAULT_PAIRS: Tuple[Tuple[str, str], ...] = (
    ('retinanet_r50', 'retinanet_x101'),
    ('faster_rcnn_r50', 'faster_rcnn_r101'),
    ('retinanet_r50', 'mask_rcnn_swin_s'),
)


def default_methods() -> List[str]:
    from kdlab.methods import METHODS, _load_builtin
    _load_builtin()
    return sorted(METHODS)


def parse_pair(text: str) -> Tuple[str, str]:
    """``'retinanet_r50:retinanet_x101'`` (student:teacher) -> a pair of zoo names."""
    from kdlab.zoo import list_detectors
    parts = text.split(':')
    if len(parts) != 2:
        raise KdlabError(f'pair {text!r} is not STUDENT:TEACHER', 'e.g. retinanet_r50:retinanet_x101')
    for name in parts:
        if name not in list_detectors():
            from kdlab.errors import UnknownNameError
            raise UnknownNameError('detector', name, list_detectors(), 'see `kdlab zoo`')
    return parts[0], parts[1]


def plan_board(pairs: Sequence[Tuple[str, str]] = DEFAULT_PAIRS, methods: Optional[Sequence[str]] = None,
               seeds: Sequence[int] = (0, 1, 2), scale: str = 'mini', *, data_root: Optional[str] = None):
    """``({(student, teacher, method, seed): plan}, {(student, teacher, method): why not})``: one plan per
    cell and seed; a method that cannot distil a pair (CrossKD on a two-stage head, ...) says why. DFMSD
    distils through its paper's chain (:func:`kdlab.methods.dfmsd.sal_chain`: RetinaNet-R101 -> X101 for an
    X101 teacher), as the issue's leaderboard cell asks."""
    from kdlab.methods.dfmsd import sal_chain
    plans, unavailable = {}, {}
    for student, teacher in pairs:
        for method in methods or default_methods():
            teachers = sal_chain(teacher) if method == 'dfmsd' else [teacher]
            for seed in seeds:
                try:
                    plans[(student, teacher, method, seed)] = plan_pair(student, teachers, method, scale,
                                                                        seed=seed, data_root=data_root)
                except KdlabError as err:
                    unavailable[(student, teacher, method)] = str(err).splitlines()[0]
                    break
    return plans, unavailable


def reported_gains(student: str, teacher: str, *, root=None) -> Dict[str, Tuple[float, str]]:
    """``{method: (gain, sources)}``: what the papers report a method adds to ``student`` distilled from
    ``teacher`` (zoo names), in mAP over the baseline student, for the leaderboard's conclusion check.

    Every registered row whose student and teacher chain are the pair's (DFMSD's: its chain,
    :func:`kdlab.methods.dfmsd.sal_chain`; other chains, such as DFMSD Table 7's two-stage assistant, are
    another experiment; an ablation's rows are variants of the method, not the method) counts,
    with its gain over the same table's baseline of the same student
    (:func:`kdlab.engine.reproduce.reported_gains`). A row whose table prints no baseline (the AMD and
    DSAMKD abstracts) is read against the median of the baselines the registry reports for that student
    and schedule, and says so in its source (kdlab's choice: the abstracts' authors report the same lab's
    protocol, whose RetinaNet-R50 2x baseline is 37.4 in DFMSD Table 6). A method reported by several
    papers gets the median of their gains; ``sources`` lists each."""
    import statistics
    from kdlab import papers
    from kdlab.engine.planner import zoo_name
    from kdlab.engine.reproduce import GAIN_METRIC
    from kdlab.engine.reproduce import reported_gains as table_gains
    from kdlab.methods import METHODS, _load_builtin
    from kdlab.methods.dfmsd import sal_chain
    _load_builtin()
    tables: Dict[Tuple[str, str], list] = {}
    for r in papers.iter_rows(root=root):
        tables.setdefault((r.paper, r.table), []).append(r)
    baselines: Dict[tuple, List[float]] = {}
    for rows in tables.values():
        for r in rows:
            if r.method == 'baseline' and GAIN_METRIC in r.metrics:
                key = (r.student.detector, r.student.backbone, r.student.schedule)
                baselines.setdefault(key, []).append(float(r.metrics[GAIN_METRIC]))
    found: Dict[str, List[Tuple[float, str]]] = {}
    for (paper, table), rows in tables.items():
        gains = table_gains(rows)
        for r in rows:
            if r.method not in METHODS or zoo_name(r.student) != student:
                continue
            if r.ablation or r.unknown_switches:      # an ablation's variant, not the method as published
                continue
            chain = sal_chain(teacher) if r.method == 'dfmsd' else [teacher]
            if [zoo_name(t) for t in r.teachers] != chain:
                continue
            where = f'{paper}/{table}'
            gain = gains.get(r.id)
            if gain is None and GAIN_METRIC in r.metrics:
                others = baselines.get((r.student.detector, r.student.backbone, r.student.schedule))
                if others:
                    base = statistics.median(others)
                    gain = round(float(r.metrics[GAIN_METRIC]) - base, 1)
                    where += f' (over the registry\'s baseline {base:.1f})'
            if gain is not None:
                found.setdefault(r.method, []).append((gain, f'{where} {gain:+.1f}'))
    return {m: (round(statistics.median(g for g, _ in v), 2), '; '.join(w for _, w in v)) for m, v in found.items()}


def _papers_say(pairs) -> Dict[Tuple[str, str], Dict[str, Tuple[float, str]]]:
    return {pair: reported_gains(*pair) for pair in dict.fromkeys(pairs)}


def with_reported_gains(frame):
    """``frame`` (a board) with the papers' gain per method (``gain paper``) where it has none: a board written
    before the papers' gains were put beside it."""
    if 'gain paper' in frame.columns:
        return frame
    said = _papers_say(zip(frame['student'], frame['teacher']))
    return frame.assign(**{'gain paper': [said[(s, t)].get(m, (math.nan, ''))[0] for s, t, m in
                                          zip(frame['student'], frame['teacher'], frame['method'])]})


def board_check(frame):
    """The leaderboard's conclusion check (:func:`kdlab.engine.conclusions.conclusion_check`), one block per
    pair: how many methods' gains have the papers' sign, the median ratio to the papers' gains, the rank
    correlation of the gains with the papers' for the pair (``gain paper``: :func:`reported_gains`)."""
    from kdlab.engine import conclusions
    frame = with_reported_gains(frame)
    methods = frame[~frame['method'].isin(['teacher', 'baseline'])]
    return conclusions.conclusion_check(methods.rename(columns={'gain': 'gain kdlab', 'gain_sd': 'gain sd'}),
                                        paper='leaderboard', table=frame.attrs.get('label', ''))


def _mean_sd(values: List[float]) -> Tuple[float, float]:
    """:func:`kdlab.engine.reproduce.mean_sd`, to two decimals."""
    mean, sd = mean_sd(values)
    return round(mean, 2), round(sd, 2)          # NaN stays NaN


def board(plans, unavailable, store: RunStore, seeds: Sequence[int]):
    """The leaderboard as a DataFrame: per pair its teacher, its baseline and every method, sorted by the
    mean gain; ``seeds``: how many seeds finished; ``status``: finished / partial / pending / n/a: why;
    ``note``: students distilled from an earlier build of a teacher trained again since
    (:meth:`kdlab.engine.store.RunStore.rebuilt_inputs`)."""
    import pandas as pd
    cells: Dict[Tuple[str, str, str], Dict[str, List[float]]] = {}
    keys: Dict[Tuple[str, str, str], Dict[int, str]] = {}      # the stored runs by cell and seed (the curves)
    for (student, teacher, method, seed), plan in plans.items():
        chain = [ref.split(':', 1)[1] for ref in plan.rows if ref.startswith('teacher:')]
        get = {role: store.load(plan.rows[ref]) for role, ref in
               (('teacher', f'teacher:{teacher}'), ('baseline', 'baseline'), ('distilled', 'distilled'))}
        for role, label in (('teacher', 'teacher'), ('baseline', 'baseline'), ('distilled', method)):
            c = cells.setdefault((student, teacher, label), {'mAP': [], 'gain': [], 'seeds': [], 'notes': [],
                                                             'runs': []})
            rec = get[role]
            if rec is None or seed in c['seeds']:
                continue
            c['seeds'].append(seed)
            if rec.get('key'):
                keys.setdefault((student, teacher, label), {})[seed] = rec['key']
            run = rec.get('key') or f'seed {seed}'
            if run in c['runs']:               # one teacher for every seed (mini v2): its mAP counts once
                continue
            c['runs'].append(run)
            for note in (rebuilt_note(store.rebuilt_inputs(rec)),
                         f'through {" -> ".join(chain)}' if role == 'distilled' and len(chain) > 1 else ''):
                if note and note not in c['notes']:
                    c['notes'].append(note)
            c['mAP'].append(float(rec['metrics']['mAP']))
            if role == 'distilled' and get['baseline'] is not None:
                c['gain'].append(float(rec['metrics']['mAP']) - float(get['baseline']['metrics']['mAP']))
    records = []
    for (student, teacher, label), c in cells.items():
        mAP, mAP_sd = _mean_sd(c['mAP'])
        gain, gain_sd = _mean_sd(c['gain'])
        n = len(c['seeds'])
        status = 'finished' if n == len(seeds) else ('pending' if n == 0 else f'partial {n}/{len(seeds)}')
        records.append(dict(student=student, teacher=teacher, method=label, seeds=n, mAP=mAP, mAP_sd=mAP_sd,
                            gain=gain, gain_sd=gain_sd, status=status, note='; '.join(c['notes'])))
    for (student, teacher, method), why in unavailable.items():
        records.append(dict(student=student, teacher=teacher, method=method, seeds=0, mAP=math.nan,
                            mAP_sd=math.nan, gain=math.nan, gain_sd=math.nan, status=f'n/a: {why}', note=''))
    said = _papers_say((r['student'], r['teacher']) for r in records)
    for r in records:
        r['gain paper'], r['paper'] = said[(r['student'], r['teacher'])].get(r['method'], (math.nan, ''))
    frame = _in_board_order(pd.DataFrame.from_records(records, columns=[
        'student', 'teacher', 'method', 'seeds', 'mAP', 'mAP_sd', 'gain', 'gain_sd', 'gain paper', 'status', 'note',
        'paper']))
    frame.attrs.update(seeds=list(seeds), runs=keys)
    return frame


def _in_board_order(frame):
    """Per pair: the teacher, the baseline, then the methods by mean gain, largest first (not run yet: last)."""
    order = {'teacher': 0, 'baseline': 1}
    frame = frame.assign(_o=[order.get(m, 2) for m in frame['method']], _g=frame['gain'].fillna(-math.inf))
    frame = frame.sort_values(['student', 'teacher', '_o', '_g'], ascending=[True, True, True, False])
    return frame.drop(columns=['_o', '_g']).reset_index(drop=True)


def plot_board(frame):
    """One panel per pair: each method's gain over the baseline student (mean over seeds, the seed sd as an
    error bar) beside the gain the papers report for the pair (:func:`reported_gains`), methods in the board's
    order; a method not run yet has no bar and says so."""
    import matplotlib.pyplot as plt
    import numpy as np
    pairs = list(dict.fromkeys(zip(frame['student'], frame['teacher'])))
    frame = with_reported_gains(frame)
    fig, axes = plt.subplots(1, len(pairs), figsize=(5.5 * len(pairs), 4.2), squeeze=False, constrained_layout=True)
    for ax, (student, teacher) in zip(axes[0], pairs):
        part = frame[(frame['student'] == student) & (frame['teacher'] == teacher)
                     & ~frame['method'].isin(['teacher', 'baseline'])]
        y = np.arange(len(part))
        ax.barh(y - 0.2, part['gain paper'].fillna(0), height=0.38, color='#4c72b0', label='papers (COCO)')
        ax.barh(y + 0.2, part['gain'].fillna(0), height=0.38, xerr=part['gain_sd'].fillna(0), color='#dd8452',
                label=f'kdlab ({frame.attrs.get("label", frame.attrs.get("scale", ""))})', error_kw=dict(lw=0.8))
        labels = [m + ('' if n else ' (not run)') + (' (no paper)' if math.isnan(g) else '')
                  for m, n, g in zip(part['method'], part['seeds'], part['gain paper'])]
        ax.set_yticks(y, labels, fontsize=8)
        ax.invert_yaxis()
        ax.axvline(0, color='k', lw=0.6)
        ax.set_title(f'{student} <- {teacher}', fontsize=9)
        ax.set_xlabel('mAP gain over the baseline student (points)', fontsize=8)
    axes[0][0].legend(fontsize=7)
    return fig


def plot_board_curves(frame, store: Optional[RunStore] = None) -> Dict[Tuple[str, str], object]:
    """Per pair of a :func:`board`, the figure of every distilled student's per-epoch validation mAP over its
    baseline student's, one line per seed (:func:`kdlab.viz.curves.plot_beside_baseline`), methods in the
    board's order; from the runs :func:`board` found stored (``frame.attrs['runs']``)."""
    from kdlab.viz.curves import plot_beside_baseline
    store = store or RunStore()
    runs = frame.attrs.get('runs', {})
    figures = {}
    for student, teacher in dict.fromkeys(zip(frame['student'], frame['teacher'])):
        part = frame[(frame['student'] == student) & (frame['teacher'] == teacher)]
        load = lambda label: {seed: store.load(key) for seed, key in runs.get((student, teacher, label), {}).items()}
        students = {m: load(m) for m in part['method'] if m not in ('teacher', 'baseline')
                    and runs.get((student, teacher, m))}
        if students:
            figures[(student, teacher)] = plot_beside_baseline(load('baseline'), students,
                                                               title=f'{student} <- {teacher}')
    return figures


def leaderboard(pairs=DEFAULT_PAIRS, methods=None, seeds=(0, 1, 2), scale: str = 'mini', *, store=None,
                train: bool = True, progress: bool = True, data_root=None, workers: int = 1):
    """Plan, train what is missing (``train``; ``workers`` runs at a time on the CPU:
    :func:`kdlab.engine.planner.execute_plan`), and return :func:`board`."""
    store = store or RunStore()
    plans, unavailable = plan_board(pairs, methods, seeds, scale, data_root=data_root)
    if train:
        execute_plan(merge_plans(plans.values(), scale), store, progress=progress, workers=workers)
    frame = board(plans, unavailable, store, seeds)
    from kdlab.zoo import scale_label
    frame.attrs.update(scale=scale, label=scale_label(scale))
    return frame


def merge_board(path: Path, frame):
    """``frame`` (this call's board) written over the board stored at ``path``: this call's cells (student,
    teacher, method) replace theirs, the stored board's other cells are kept (a call for one method or pair
    does not drop the rest of the board); the board's order as :func:`board` sorts it."""
    import pandas as pd
    if not path.is_file():
        return frame
    stored = pd.read_csv(path, keep_default_na=False, na_values=[''])
    cells = set(zip(frame['student'], frame['teacher'], frame['method']))
    kept = stored[[c not in cells for c in zip(stored['student'], stored['teacher'], stored['method'])]]
    merged = _in_board_order(pd.concat([kept, frame], ignore_index=True)[list(frame.columns)])
    merged.attrs.update(frame.attrs)
    return merged


def main(args) -> int:
    pairs = [parse_pair(p) for p in args.pairs] if args.pairs else DEFAULT_PAIRS
    store = RunStore(args.results) if args.results else RunStore()
    frame = leaderboard(pairs, args.methods, args.seeds, args.scale, store=store, train=not args.no_train,
                        workers=args.workers)
    print(frame.to_string(index=False, float_format=lambda v: f'{v:.1f}'))
    from kdlab.zoo import scale_label
    out = Path(args.out) if args.out else repo_root() / 'results' / 'leaderboard'
    path = out / f'leaderboard_{scale_label(args.scale)}.csv'     # mini v2 beside v1's, never over it
    frame = merge_board(path, frame)
    atomic_write_text(path, frame.to_csv(index=False))
    plot_board(frame).savefig(path.with_suffix('.png'), dpi=120)        # gains beside the papers'
    for (student, teacher), fig in plot_board_curves(frame, store).items():
        fig.savefig(out / f'curves_{scale_label(args.scale)}_{student}_{teacher}.png', dpi=100)
    check = board_check(frame)
    print('\nconclusion check (gains against the papers\' for each pair; `paper`: the sources; '
          'written into results/summary_<scale>.* with the tables\' checks):')
    print(check[['block', 'rows', 'same sign', 'median ratio', 'rho', 'gain sd', 'verdict']].to_string(index=False))
    from kdlab.engine.conclusions import summary
    summary(scale_label(args.scale), out.parent)       # the scale's summary: the tables' checks and this board's
    print(f'\nwritten: {path} (and its figure .png, the students\' curves curves_*.png), '
          f'{out.parent / f"summary_{scale_label(args.scale)}.md"}', file=sys.stderr)
    return 0


def register(sub) -> None:
    p = sub.add_parser('leaderboard', help='every method on the same teacher/student pairs, seeds as mean +- sd')
    p.add_argument('--scale', default='mini', choices=('smoke', 'mini', 'full'))
    p.add_argument('--seeds', nargs='+', type=int, default=[0, 1, 2])
    p.add_argument('--pairs', nargs='+', default=None, help='STUDENT:TEACHER zoo names (default: three pairs)')
    p.add_argument('--methods', nargs='+', default=None, help='method ids (default: every method)')
    p.add_argument('--results', default=None, help='run store (default: results/runs)')
    p.add_argument('--out', default=None, help='folder of the CSV (default: results/leaderboard)')
    p.add_argument('--no-train', action='store_true', help='only what is stored (the rest: pending)')
    p.add_argument('-w', '--workers', type=int, default=1,
                   help='runs trained at once on the CPU (each in its own process, cores / N threads)')
    p.set_defaults(func=main)
