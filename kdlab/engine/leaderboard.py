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
    order = {'teacher': 0, 'baseline': 1}
    frame = pd.DataFrame.from_records(records, columns=['student', 'teacher', 'method', 'seeds', 'mAP', 'mAP_sd',
                                                        'gain', 'gain_sd', 'status', 'note'])
    frame['_o'] = [order.get(m, 2) for m in frame['method']]
    frame['_g'] = frame['gain'].fillna(-math.inf)
    frame = frame.sort_values(['student', 'teacher', '_o', '_g'], ascending=[True, True, True, False])
    frame = frame.drop(columns=['_o', '_g']).reset_index(drop=True)
    frame.attrs.update(seeds=list(seeds))
    return frame


def leaderboard(pairs=DEFAULT_PAIRS, methods=None, seeds=(0, 1, 2), scale: str = 'mini', *, store=None,
                train: bool = True, progress: bool = True, data_root=None, workers: int = 1):
    """Plan, train what is missing (``train``; ``workers`` runs at a time on the CPU:
    :func:`kdlab.engine.planner.execute_plan`), and return :func:`board`."""
    store = store or RunStore()
    plans, unavailable = plan_board(pairs, methods, seeds, scale, data_root=data_root)
    if train:
        execute_plan(merge_plans(plans.values(), scale), store, progress=progress, workers=workers)
    frame = board(plans, unavailable, store, seeds)
    frame.attrs['scale'] = scale
    return frame


def main(args) -> int:
    pairs = [parse_pair(p) for p in args.pairs] if args.pairs else DEFAULT_PAIRS
    frame = leaderboard(pairs, args.methods, args.seeds, args.scale, store=RunStore(args.results) if args.results
                        else None, train=not args.no_train, workers=args.workers)
    print(frame.to_string(index=False, float_format=lambda v: f'{v:.1f}'))
    from kdlab.zoo import scale_label
    out = Path(args.out) if args.out else repo_root() / 'results' / 'leaderboard'
    path = out / f'leaderboard_{scale_label(args.scale)}.csv'     # mini v2 beside v1's, never over it
    atomic_write_text(path, frame.to_csv(index=False))
    print(f'\nwritten: {path}', file=sys.stderr)
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
