"""Speed of mmcv's ops with each implementation, as ratios measured in the same process.

1. Each op (the cases of :mod:`kdlab.ops.equivalence`: NMS, RoIAlign, deformable convolutions, sigmoid focal
   loss; ``--shapes full``: 1333x800 with 2 images, ``test``: small), forward and backward, with every
   implementation present: ``kdlab`` (kdlab's ``mmcv._ext``: torchvision's kernels where they load, plain
   torch elsewhere; the run says which) and ``compiled`` (mmcv's own extension, where installed). The row gives
   the median wall time of ``--repeats`` calls of each, alternating, and ``kdlab x compiled``.
2. One training step of the detectors whose step calls these ops most (``--detectors``, default Faster R-CNN-R50
   and RepPoints-R50) at ``--scale`` (default mini), built as mmengine builds them, on one fixed batch: the same
   model, weights and batch, the implementation swapped (:func:`kdlab.ops.use`) between alternating steps.

With only one implementation installed the ratios are not computable and the table says so; the times are still
printed.
"""
from __future__ import annotations

import argparse
import copy
import json
import statistics
import sys
import tempfile
from typing import Dict, List, Optional

from benchmarks._measure import alternate

DETECTORS = ('faster_rcnn_r50', 'reppoints_r50')


def backends() -> List[str]:
    from kdlab import ops
    return ['kdlab'] + (['compiled'] if ops.compiled_extension_path() else [])


def _alternate(steps: Dict[str, callable], warmup: int, repeats: int) -> Dict[str, float]:
    return {k: statistics.median(v) for k, v in alternate(steps, warmup, repeats).items()}


def op_rows(shapes: str, warmup: int, repeats: int, only: Optional[List[str]] = None) -> List[dict]:
    import torch
    from kdlab import ops
    from kdlab.ops import equivalence
    rows = []
    for case in equivalence.cases(shapes):
        if only and case.op not in only:
            continue
        inputs = case.build(torch.Generator().manual_seed(0), 'cpu')
        steps = {}
        for which in backends():
            def step(which=which):
                with ops.use(which):
                    equivalence._evaluate(case, inputs, case.call)
            try:
                step()
            except (RuntimeError, NotImplementedError):   # e.g. no CPU kernel in mmcv's compiled build
                continue
            steps[which] = step
        med = _alternate(steps, warmup, repeats)
        rows.append(dict(kind='op', name=case.name, op=case.op, shapes=case.shapes, seconds=med,
                         ratio=med['kdlab'] / med['compiled'] if 'compiled' in med else None))
    return rows


def train_rows(detectors, scale: str, warmup: int, repeats: int) -> List[dict]:
    from mmengine.runner import Runner
    from kdlab import ops
    from kdlab.zoo import detector_config
    rows = []
    for det in detectors:
        with tempfile.TemporaryDirectory(prefix='kdlab-bench-ops-') as tmp:
            cfg = copy.deepcopy(detector_config(det, scale))
            cfg.work_dir, cfg.experiment_name = tmp, f'bench_ops_{det}'
            cfg.load_from, cfg.resume, cfg.log_level = None, False, 'WARNING'
            runner = Runner.from_cfg(cfg)
            model = runner.model
            model.init_weights()
            model.train()
            optim = runner.build_optim_wrapper(runner.optim_wrapper)
            batch = next(iter(runner.build_dataloader(runner.cfg.train_dataloader)))
            steps = {}
            for which in backends():
                def step(which=which):
                    with ops.use(which):
                        model.train_step(copy.deepcopy(batch), optim)
                steps[which] = step
            med = _alternate(steps, warmup, repeats)
            rows.append(dict(kind='train step', name=f'{det} ({scale}, batch {len(batch["inputs"])})',
                             seconds=med, ratio=med['kdlab'] / med['compiled'] if 'compiled' in med else None))
            del runner
    return rows


def format_table(rows: List[dict]) -> str:
    head = f'{"what":<68} {"kdlab (s)":>10} {"compiled (s)":>12} {"kdlab x compiled":>16}'
    lines = [head, '-' * len(head)]
    for r in rows:
        s = r['seconds']
        comp = f'{s["compiled"]:12.4f}' if 'compiled' in s else f'{"-":>12}'
        ratio = f'{r["ratio"]:16.2f}' if r['ratio'] is not None else f'{"-":>16}'
        lines.append(f'{(r["kind"] + ": " + r["name"])[:68]:<68} {s["kdlab"]:10.4f} {comp} {ratio}')
    return '\n'.join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog='python -m benchmarks mmcv_ops', description=__doc__.split('\n')[0])
    ap.add_argument('--shapes', default='full', choices=('full', 'test'), help='op input shapes (default full)')
    ap.add_argument('--scale', default='mini', choices=('smoke', 'mini'), help='training-step scale (default mini)')
    ap.add_argument('--detectors', nargs='*', default=list(DETECTORS))
    ap.add_argument('--only', nargs='*', help='ops to time (mmcv.ops names); --detectors with no name: no training')
    ap.add_argument('--warmup', type=int, default=1)
    ap.add_argument('--repeats', type=int, default=3)
    ap.add_argument('--json', help='also write the rows to this JSON file')
    args = ap.parse_args(argv)
    import torch
    import kdlab  # noqa: F401
    from kdlab import ops
    print(f'mmcv ops: {", ".join(backends())} (kdlab = {ops.describe(ops.kdlab_module())}); '
          f'torch {torch.__version__}, {torch.get_num_threads()} threads; medians of {args.repeats}, alternating')
    rows = op_rows(args.shapes, args.warmup, args.repeats, args.only)
    rows += train_rows(args.detectors, args.scale, args.warmup, args.repeats)
    print(format_table(rows))
    if args.json:
        with open(args.json, 'w') as f:
            json.dump(dict(backends=backends(), kdlab=ops.describe(ops.kdlab_module()), torch=torch.__version__,
                           threads=torch.get_num_threads(), rows=rows), f, indent=1)
    return 0


if __name__ == '__main__':
    sys.exit(main())
