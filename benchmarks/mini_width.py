"""What a narrower mini detector would save: the student's training step at several neck / head widths, each as
a ratio to the protocol's width (:data:`kdlab.zoo.MINI_WIDTH`, 64) measured in the same process.

The question it answers (issue "Mini scale v2", the cost): a uniform knob that makes every run of the mini
scale cheaper, for every method alike. The width of the FPN and the heads (``detector_config(width=)``, the
calibration's ``--width`` trial knob) is the one that needs no new pretraining: the backbones keep their
committed weights. Fewer pixels would move the objects under the smallest anchor again (the scenes' sizes are
fractions of the image, calibrated at 160 px), and fewer images per epoch do not buy convergence (a mini
detector learns per image seen, docs/mini_v2.md).

Every width's model is built as mmengine builds it (``benchmarks.train_step._build``: ``Runner.from_cfg``,
weights initialised, the backbone loading its pretrained weights at mini v2) and steps on the same fixed batch
(the first of the protocol's train dataloader, a fresh copy each step); after ``--warmup`` untimed steps of
each, the widths alternate ``--repeats`` times and the medians are compared. The ratio says what the step
costs, not what the narrower detector would reach: that is a calibration trial's question
(``kdlab calibrate --trial DETECTOR --width W``).
"""
from __future__ import annotations

import argparse
import copy
import json
import statistics
import tempfile
from typing import List, Sequence

from benchmarks._measure import alternate

WIDTHS = (64, 32)   # GroupNorm heads (FCOS, GFL, RepPoints: 32 groups) need a multiple of 32


def measure(detector: str = 'retinanet_r50', widths: Sequence[int] = WIDTHS, *, scale: str = 'mini',
            protocol: str = 'v2', warmup: int = 2, repeats: int = 6, threads: int = 1) -> List[dict]:
    """One row per width: the median step (s) and its ratio to the first width's (the reference)."""
    import torch
    import kdlab  # noqa: F401  (compat fixes)
    import kdlab.models  # noqa: F401
    from benchmarks.train_step import _build, _stepper
    from kdlab.zoo import detector_config
    if threads:
        torch.set_num_threads(threads)
    steps, batch, channels = {}, None, {}
    with tempfile.TemporaryDirectory(prefix='kdlab-bench-') as tmp:
        for w in widths:
            runner, model, optim = _build(detector_config(detector, scale, protocol=protocol, width=w), tmp,
                                           f'width{w}')
            if batch is None:
                batch = next(iter(runner.build_dataloader(runner.cfg.train_dataloader)))
            channels[w] = model.neck.fpn_convs[0].conv.out_channels
            steps[w] = _stepper(model, optim, batch)
            for _ in range(max(1, warmup)):
                steps[w]()
        times = alternate(steps, 0, repeats)       # each width warmed up where it was built
    median = {w: statistics.median(times[w]) for w in widths}
    return [dict(detector=detector, scale=scale, protocol=protocol, width=w, neck_channels=channels[w],
                 batch_size=len(batch['inputs']), median_s=median[w], ratio=median[w] / median[widths[0]],
                 times_s=times[w], threads=torch.get_num_threads()) for w in widths]


def format_table(rows: List[dict]) -> str:
    head = f'{"width":>5} {"step (s)":>9} {"x width " + str(rows[0]["width"]):>11}'
    return '\n'.join([head, '-' * len(head)] + [f'{r["width"]:>5} {r["median_s"]:9.3f} {r["ratio"]:11.2f}'
                                                for r in rows])


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog='python -m benchmarks mini_width', description=__doc__.split('\n')[0])
    ap.add_argument('--detector', default='retinanet_r50', help='zoo detector (default retinanet_r50)')
    ap.add_argument('--widths', type=int, nargs='+', default=list(WIDTHS),
                    help=f'neck / head widths, the first the reference (default {" ".join(map(str, WIDTHS))})')
    ap.add_argument('--scale', default='mini', choices=('smoke', 'mini'))
    ap.add_argument('--protocol', default='v2', choices=('v1', 'v2'), help='the mini protocol (default v2)')
    ap.add_argument('--warmup', type=int, default=2)
    ap.add_argument('--repeats', type=int, default=6)
    ap.add_argument('--threads', type=int, default=1, help='torch threads (default 1, as a mini run here)')
    ap.add_argument('--json', help='also write the rows to this JSON file')
    args = ap.parse_args(argv)
    if args.repeats < 1:
        ap.error('--repeats must be at least 1')
    rows = measure(args.detector, args.widths, scale=args.scale, protocol=args.protocol, warmup=args.warmup,
                   repeats=args.repeats, threads=args.threads)
    print(f'training step of {args.detector} ({args.scale} {args.protocol}, batch {rows[0]["batch_size"]}, '
          f'{rows[0]["threads"]} thread(s)) by neck / head width, medians of {args.repeats}')
    print(format_table(rows))
    if args.json:
        with open(args.json, 'w') as fh:
            json.dump(rows, fh, indent=1)
    return 0


if __name__ == '__main__':
    raise SystemExit(main())
