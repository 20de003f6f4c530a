"""What the CPU's number formats would save: the student's mini training step in float32 (the protocol's),
with the model in channels-last memory, and under CPU bfloat16 autocast, each as a ratio to float32 measured
in the same process.

The question it answers (issue "Mini scale v2", the cost): a uniform knob that makes every mini run cheaper, for
every method alike, without touching the protocol's data, widths or schedules. Channels-last changes only the
memory layout oneDNN's convolutions see (float32 throughout; the same numbers up to summation order);
bfloat16 autocast computes convolutions and matrix products in bfloat16 on CPUs that have it (AVX512-BF16,
AMX), which changes every result, so adopting it would mean training every stored mini-v2 run again.

The model is built as mmengine builds it (``benchmarks.train_step._build``), steps on one fixed batch (the first
of the protocol's train dataloader, a fresh copy each step); after ``--warmup`` untimed float32 steps the three
formats alternate ``--repeats`` times and the medians are compared. The ratio says what the step costs, not what
a run in that format would reach.
"""
from __future__ import annotations

import argparse
import copy
import functools
import json
import statistics
import tempfile
from typing import List

from benchmarks._measure import alternate

FORMATS = ('float32', 'channels_last', 'bfloat16')


def measure(detector: str = 'retinanet_r50', *, scale: str = 'mini', protocol: str = 'v2', warmup: int = 2,
            repeats: int = 6, threads: int = 1) -> List[dict]:
    """One row per format: the median step (s) and its ratio to float32's."""
    import torch
    import kdlab  # noqa: F401  (compat fixes)
    import kdlab.models  # noqa: F401
    from benchmarks.train_step import _build
    from kdlab.zoo import detector_config
    if threads:
        torch.set_num_threads(threads)
    with tempfile.TemporaryDirectory(prefix='kdlab-bench-') as tmp:
        runner, model, optim = _build(detector_config(detector, scale, protocol=protocol), tmp, 'format')
        batch = next(iter(runner.build_dataloader(runner.cfg.train_dataloader)))

        def step(fmt: str):
            model.to(memory_format=torch.channels_last if fmt == 'channels_last' else torch.contiguous_format)
            with torch.autocast('cpu', dtype=torch.bfloat16, enabled=fmt == 'bfloat16'):
                model.train_step(copy.deepcopy(batch), optim)

        for _ in range(max(1, warmup)):
            step('float32')
        times = alternate({f: functools.partial(step, f) for f in FORMATS}, 0, repeats)
    median = {f: statistics.median(times[f]) for f in FORMATS}
    return [dict(detector=detector, scale=scale, protocol=protocol, format=f, batch_size=len(batch['inputs']),
                 median_s=median[f], ratio=median[f] / median['float32'], times_s=times[f],
                 bf16_supported=torch.cpu._is_avx512_bf16_supported() if hasattr(torch.cpu, '_is_avx512_bf16_supported')
                 else None, threads=torch.get_num_threads()) for f in FORMATS]


def format_table(rows: List[dict]) -> str:
    head = f'{"format":>13} {"step (s)":>9} {"x float32":>10}'
    return '\n'.join([head, '-' * len(head)] + [f'{r["format"]:>13} {r["median_s"]:9.3f} {r["ratio"]:10.2f}'
                                                for r in rows])


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog='python -m benchmarks step_format', description=__doc__.split('\n')[0])
    ap.add_argument('--detector', default='retinanet_r50', help='zoo detector (default retinanet_r50)')
    ap.add_argument('--scale', default='mini', choices=('smoke', 'mini'))
    ap.add_argument('--protocol', default='v2', choices=('v1', 'v2'), help='the mini protocol (default v2)')
    ap.add_argument('--warmup', type=int, default=2)
    ap.add_argument('--repeats', type=int, default=6)
    ap.add_argument('--threads', type=int, default=1, help='torch threads (default 1, as a mini run here)')
    ap.add_argument('--json', help='also write the rows to this JSON file')
    args = ap.parse_args(argv)
    if args.repeats < 1:
        ap.error('--repeats must be at least 1')
    rows = measure(args.detector, scale=args.scale, protocol=args.protocol, warmup=args.warmup,
                   repeats=args.repeats, threads=args.threads)
    print(f'training step of {args.detector} ({args.scale} {args.protocol}, batch {rows[0]["batch_size"]}, '
          f'{rows[0]["threads"]} thread(s)) by number format, medians of {args.repeats}; CPU bfloat16: '
          f'{rows[0]["bf16_supported"]}')
    print(format_table(rows))
    if args.json:
        with open(args.json, 'w') as fh:
            json.dump(rows, fh, indent=1)
    return 0


if __name__ == '__main__':
    raise SystemExit(main())
