"""Forward+backward time and peak memory of each feature-distillation loss on full-scale FPN shapes.

Shapes: batch 2, 256 channels, the five FPN levels of a 1333x800 input padded to 1344x800 (strides 8-128:
100x168, 50x84, 25x42, 13x21, 7x11) — RetinaNet-R50's neck at full scale. Every loss runs as its method
configures it: one loss instance (and, for MGD, one connector) per level, summed, then ``backward()``.
DFMSD runs with masking enhancement on (its Eq. 8 term takes a second set of maps, as in the last SAL stage);
DSAMKD with its logits term on RetinaNet's classification maps (9 anchors x 80 classes = 720 channels).
Each loss runs in a fresh subprocess (so that one loss's peak memory does not hide another's), which also times
mmrazor's ``PKDLoss`` on the same shapes, alternating with the loss: the ratio is the loss's median over
``--repeats`` (after ``--warmup`` runs) divided by PKD's median from the same process. Both wall time and the
process's CPU time (all threads) are reported: on a machine shared with other jobs the CPU-time ratio is the
stable measure of cost; the wall-time ratio is what a user waits. Peak memory is the rise of the process's
maximum resident set size over the loss's warm-up (inputs already allocated, before PKD runs).

Only the loss is timed: DFMSD's and DSAMKD's extra passes through the detectors (ME's augmented batch, the
teacher's head) are not part of it.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from typing import Callable, Dict, List, Optional

from benchmarks._measure import maxrss_mib, timed

#: (H, W) of P3-P7 for a 1333x800 image padded to a multiple of 32 (1344x800).
FPN_SHAPES = [(100, 168), (50, 84), (25, 42), (13, 21), (7, 11)]
BATCH, CHANNELS, CLASSES, ANCHORS = 2, 256, 80, 9

CASES = ('pkd', 'dcsf_kd', 'mgd', 'fgd', 'amd', 'dmkd', 'dfmsd', 'dsamkd')


def _maps(torch, grad: bool, channels: Optional[int] = None, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    c = CHANNELS if channels is None else channels
    return [torch.randn(BATCH, c, h, w, generator=g).requires_grad_(grad) for h, w in FPN_SHAPES]


def _samples():
    import torch
    from mmdet.structures import DetDataSample
    from mmengine.structures import InstanceData
    g = torch.Generator().manual_seed(1)
    out = []
    for _ in range(BATCH):
        xy = torch.rand(8, 2, generator=g) * torch.tensor([1100., 600.])
        wh = torch.rand(8, 2, generator=g) * 200 + 16
        ds = DetDataSample(metainfo=dict(img_shape=(800, 1333), batch_input_shape=(800, 1344)))
        inst = InstanceData()
        inst.bboxes = torch.cat([xy, xy + wh], dim=1)
        inst.labels = torch.zeros(8, dtype=torch.long)
        ds.gt_instances = inst
        out.append(ds)
    return out


def make_case(name: str) -> Callable[[], None]:
    """A closure running one forward+backward of ``name`` on fresh-gradient inputs built once."""
    import torch
    import kdlab.models  # noqa: F401  (compat + registration)
    from mmrazor.models.architectures.connectors import MGDConnector
    from mmrazor.models.losses import MGDLoss, PKDLoss
    from kdlab.models.losses import AMDLoss, DCSFKDLoss, DFMSDLoss, DMKDLoss, DSAMKDLoss, FGDLoss

    S, T = _maps(torch, True, seed=0), _maps(torch, False, seed=1)
    C = CHANNELS
    extra: List[Dict[str, object]] = [{} for _ in FPN_SHAPES]
    if name == 'pkd':
        losses = [PKDLoss(loss_weight=1.0)] * 5
    elif name == 'dcsf_kd':
        losses = [DCSFKDLoss()] * 5
    elif name == 'mgd':
        conns = [MGDConnector(C, C, lambda_mgd=0.65) for _ in FPN_SHAPES]
        mgd = MGDLoss(alpha_mgd=2e-5)
        losses = [(lambda c: (lambda s, t: mgd(c(s), t)))(c) for c in conns]
    elif name == 'fgd':
        samples = _samples()
        losses = [FGDLoss(C, C) for _ in FPN_SHAPES]
        extra = [dict(data_samples=samples) for _ in FPN_SHAPES]
    elif name == 'amd':
        losses = [AMDLoss(C, C) for _ in FPN_SHAPES]
    elif name == 'dmkd':
        losses = [DMKDLoss(C, C) for _ in FPN_SHAPES]
    elif name == 'dfmsd':
        S2, T2 = _maps(torch, True, seed=2), _maps(torch, False, seed=3)
        losses = [DFMSDLoss(C, C, sfa=i < 3) for i in range(5)]
        extra = [dict(preds_S_enh=s, preds_T_enh=t) for s, t in zip(S2, T2)]
    elif name == 'dsamkd':
        ZS = _maps(torch, True, channels=ANCHORS * CLASSES, seed=4)
        ZT = _maps(torch, False, channels=ANCHORS * CLASSES, seed=5)
        losses = [DSAMKDLoss(C, C) for _ in FPN_SHAPES]
        extra = [dict(logits_S=zs, logits_T=zt) for zs, zt in zip(ZS, ZT)]
    else:
        raise SystemExit(f'unknown case {name!r}; known: {", ".join(CASES)}')

    def step():
        for t in S + [v for e in extra for v in e.values() if isinstance(v, torch.Tensor)]:
            t.grad = None
        total = sum(loss(s, t, **e) for loss, s, t, e in zip(losses, S, T, extra))
        total.backward()
    return step


def worker(name: str, warmup: int, repeats: int, threads: int = 0) -> dict:
    """Run one case in this process: setup, warm-up (peak memory measured over it), then timed repeats of the
    case alternating with mmrazor's ``PKDLoss`` (the reference of the ratio). ``threads``: torch's intra-op
    threads (0: torch's default, one per core)."""
    import torch
    if threads:
        torch.set_num_threads(threads)
    step = make_case(name)
    base = maxrss_mib()
    for _ in range(max(1, warmup)):
        step()
    peak = maxrss_mib() - base
    ref = step if name == 'pkd' else make_case('pkd')
    for _ in range(max(1, warmup) if ref is not step else 0):
        ref()
    times, ref_times = [], []
    for _ in range(repeats):
        times.append(timed(step))
        ref_times.append(times[-1] if ref is step else timed(ref))
    med = statistics.median(t[0] for t in times)
    cpu = statistics.median(t[1] for t in times)
    ref_med = statistics.median(t[0] for t in ref_times)
    ref_cpu = statistics.median(t[1] for t in ref_times)
    return dict(case=name, median_s=med, cpu_s=cpu, times_s=[t[0] for t in times], pkd_median_s=ref_med,
                pkd_cpu_s=ref_cpu, ratio=med / ref_med, cpu_ratio=cpu / ref_cpu, peak_mib=peak,
                threads=torch.get_num_threads(), torch=torch.__version__)


def run_case(name: str, warmup: int, repeats: int, threads: int = 0) -> dict:
    cmd = [sys.executable, '-m', 'benchmarks.feature_losses', '--worker', name, '--warmup', str(warmup),
           '--repeats', str(repeats), '--threads', str(threads)]
    env = dict(os.environ, PYTHONWARNINGS='ignore')
    out = subprocess.run(cmd, capture_output=True, text=True, env=env,
                         cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    if out.returncode != 0:
        raise RuntimeError(f'benchmark case {name} failed:\n{out.stderr[-3000:]}')
    return json.loads(out.stdout.strip().splitlines()[-1])


def format_table(rows: List[dict]) -> str:
    """Columns: wall and CPU seconds of the loss; ``x PKD``: over PKD timed in the same process; ``x PKD (run)``:
    over the median of PKD's times across the run's processes (less sensitive to one disturbed process)."""
    pkd_run = statistics.median(r['pkd_median_s'] for r in rows)
    cpu_run = statistics.median(r['pkd_cpu_s'] for r in rows)
    head = (f'{"loss":<10} {"wall (s)":>9} {"x PKD":>7} {"x PKD (run)":>12} {"CPU (s)":>8} {"CPU x PKD (run)":>16} '
            f'{"peak MiB":>9}')
    lines = [head, '-' * len(head)]
    for r in rows:
        lines.append(f'{r["case"]:<10} {r["median_s"]:9.3f} {r["ratio"]:7.2f} {r["median_s"] / pkd_run:12.2f} '
                     f'{r["cpu_s"]:8.3f} {r["cpu_s"] / cpu_run:16.2f} {r["peak_mib"]:9.0f}')
    lines.append(f'PKD over the run: wall {pkd_run:.3f} s, CPU {cpu_run:.3f} s (median of {len(rows)} processes)')
    return '\n'.join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog='python -m benchmarks feature_losses', description=__doc__.split('\n')[0])
    ap.add_argument('--only', default=','.join(CASES), help=f'comma-separated cases (default: all: {CASES})')
    ap.add_argument('--warmup', type=int, default=1, help='untimed runs before timing (peak memory is taken '
                    'over them; default 1)')
    ap.add_argument('--repeats', type=int, default=1, help='timed runs, the median is reported (default 1)')
    ap.add_argument('--threads', type=int, default=0, help="torch threads per process (default 0: torch's default, "
                    'one per core); --threads 1 gives CPU times free of thread spinning on a busy machine')
    ap.add_argument('--json', help='also write the rows to this JSON file')
    ap.add_argument('--worker', help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.worker:
        print(json.dumps(worker(args.worker, args.warmup, args.repeats, args.threads)))
        return 0
    cases = [c.strip() for c in args.only.split(',') if c.strip()]
    unknown = [c for c in cases if c not in CASES]
    if unknown:
        ap.error(f'unknown case(s) {unknown}; known: {", ".join(CASES)}')
    print(f'feature losses, forward+backward: batch {BATCH}, {CHANNELS} channels, FPN levels '
          f'{", ".join(f"{h}x{w}" for h, w in FPN_SHAPES)}; warmup {args.warmup}, repeats {args.repeats}',
          flush=True)
    rows = []
    for c in cases:
        t0 = time.time()
        rows.append(run_case(c, args.warmup, args.repeats, args.threads))
        print(f'  {c}: {rows[-1]["median_s"]:.3f} s, PKD {rows[-1]["pkd_median_s"]:.3f} s '
              f'({time.time() - t0:.0f} s with setup)', flush=True)
    print(format_table(rows))
    print(f'(torch {rows[0]["torch"]}, {rows[0]["threads"]} threads)')
    if args.json:
        with open(args.json, 'w') as f:
            json.dump(rows, f, indent=1)
    return 0


if __name__ == '__main__':
    sys.exit(main())
