"""Calibrating the mini v2 protocol by measurement (issue "Mini scale v2", items 3 and 4).

``kdlab calibrate`` trains the baselines (and teachers) of the seed tables at mini scale under a protocol, each
with its per-epoch validation mAP (``record['curve']``, :class:`kdlab.engine.hooks.LearningCurveHook`), and writes

* ``results/mini_<protocol>/curves.csv`` — detector, schedule, seed, epoch, mAP (one row per validation);
* ``results/mini_<protocol>/calibration.csv`` — per detector: mAP at the 1x and 2x epochs of the curve and the
  gain between them (the schedule rule: at most 2.0 mAP from 1x to 2x), the final mAP;
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


def summarise(curves, epochs_1x: int, epochs_2x: int):
    """Per (detector, seed): mAP at the 1x and 2x epochs, the gain between them, and the last mAP."""
    import pandas as pd
    rows = []
    for (det, seed), part in curves.groupby(['detector', 'seed'], sort=False):
        at = dict(zip(part['epoch'], part['mAP']))
        one, two = at.get(epochs_1x), at.get(epochs_2x)
        rows.append(dict(detector=det, seed=seed, mAP_1x=one, mAP_2x=two,
                         gain_1x_to_2x=None if one is None or two is None else round(two - one, 1),
                         last_epoch=int(part['epoch'].max()), mAP_last=part.sort_values('epoch')['mAP'].iloc[-1]))
    return pd.DataFrame(rows)


def calibrate(detectors: Sequence[str] = DEFAULT_DETECTORS, *, schedule: str = '2x', seeds: Iterable[int] = (0,),
              protocol: str = 'v2', out: Optional[Path] = None, progress: bool = True):
    """Train each detector for ``schedule`` under ``protocol`` (stored runs are reused) and write the curves."""
    import pandas as pd
    from kdlab.engine.report import results_dir
    from kdlab.engine.runner import execute
    from kdlab.engine.store import RunStore
    from kdlab.viz.curves import curve_frame, plot_learning_curves
    from kdlab.zoo import MINI_EPOCHS, detector_config
    out = Path(out) if out is not None else results_dir(f'mini_{protocol}')
    out.mkdir(parents=True, exist_ok=True)
    store = RunStore()
    rows, records = [], {}
    for seed in seeds:
        for name in detectors:
            cfg = detector_config(name, 'mini', schedule=schedule, seed=seed, protocol=protocol)
            rec = execute(cfg, name=f'{name} {schedule} (mini {protocol}, seed {seed})', store=store,
                          progress=progress)
            rows += curve_rows(name, schedule, seed, rec)
            records[f'{name} s{seed}'] = rec
            curves = pd.DataFrame(rows)
            curves.to_csv(out / 'curves.csv', index=False)       # after every run: nothing lost
    summary = summarise(curves, MINI_EPOCHS['1x'], MINI_EPOCHS['2x'])
    summary.to_csv(out / 'calibration.csv', index=False)
    fig = plot_learning_curves(curve_frame(records), title=f'mini {protocol} baselines, {schedule}')
    fig.savefig(out / 'curves.png', dpi=120)
    return curves, summary


def main(args) -> int:
    _, summary = calibrate(args.detectors or DEFAULT_DETECTORS, schedule=args.schedule, seeds=args.seeds,
                           protocol=args.protocol, progress=not args.quiet)
    print(summary.to_string(index=False))
    return 0


def register(sub) -> None:
    p: argparse.ArgumentParser = sub.add_parser(
        'calibrate', help="train the mini baselines with their learning curves (the mini protocol's calibration)")
    p.add_argument('detectors', nargs='*', help=f'zoo detectors (default: {" ".join(DEFAULT_DETECTORS)})')
    p.add_argument('--schedule', default='2x')
    p.add_argument('--seeds', nargs='+', type=int, default=[0])
    p.add_argument('--protocol', default='v2', choices=('v1', 'v2'))
    p.add_argument('--quiet', action='store_true')
    p.set_defaults(func=main)
