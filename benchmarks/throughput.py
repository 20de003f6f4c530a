"""Training throughput: images per second and peak memory of a student alone and distilled by each method.

At ``--scale full`` (the default; a GPU): the official mmdet configs at 1333x800, ``--batch`` images (2, as one
GPU of the papers' 8x2), random initialisation (throughput does not depend on the weights), synthetic inputs of
that size with a few boxes each; ``--warmup`` untimed iterations, then ``--iters`` timed ones
(``torch.cuda.synchronize`` around each). Pair: RetinaNet-R50 <- RetinaNet-X101 (``--pair``). mmdet publishes
RetinaNet-R50 1x at 0.205 s/iter with 2 images on a V100 (9.8 images/s, ``retinanet_r50_fpn_1x_coco`` log),
printed beside the student row as the reference. ``--scale smoke`` runs the same on the CPU in seconds (tests).
Peak memory: ``torch.cuda.max_memory_allocated`` on a GPU, the process's peak RSS on the CPU.
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from typing import List, Optional

MMDET_RETINANET_R50_V100_S_PER_ITER = 0.205   # mmdet model zoo, retinanet_r50_fpn_1x_coco, 2 images / V100
METHODS = ('pkd', 'dcsf_kd', 'mgd', 'fgd', 'amd', 'dmkd', 'dsamkd', 'dfmsd', 'crosskd', 'icd')


def _model_and_optim(cfg, device):
    from mmengine.registry import DefaultScope
    from mmengine.optim import build_optim_wrapper
    from mmengine.logging import MMLogger
    from mmrazor.registry import MODELS
    import kdlab.models  # noqa: F401
    MMLogger.get_current_instance().setLevel('WARNING')    # no per-parameter init report
    with DefaultScope.overwrite_default_scope('mmdet'):
        model = MODELS.build(cfg.model)
    model.init_weights()
    model.to(device).train()
    optim = build_optim_wrapper(model, cfg.optim_wrapper)
    return model, optim


def _batch(images: int, size, seed: int = 0) -> dict:
    """A raw batch (as a dataloader gives it) of ``images`` random images of ``size`` (h, w), three boxes each."""
    import torch
    from mmdet.structures import DetDataSample
    from mmengine.structures import InstanceData
    g = torch.Generator().manual_seed(seed)
    h, w = size
    inputs, samples = [], []
    for _ in range(images):
        inputs.append((torch.rand(3, h, w, generator=g) * 255).to(torch.uint8))
        xy = torch.rand(3, 2, generator=g) * torch.tensor([w * 0.6, h * 0.6])
        wh = torch.rand(3, 2, generator=g) * torch.tensor([w * 0.3, h * 0.3]) + 8
        s = DetDataSample(metainfo=dict(img_shape=(h, w), ori_shape=(h, w), pad_shape=(h, w), scale_factor=(1.0, 1.0)))
        s.gt_instances = InstanceData(bboxes=torch.cat([xy, xy + wh], 1), labels=torch.randint(0, 6, (3,), generator=g))
        samples.append(s)
    return dict(inputs=inputs, data_samples=samples)


def measure(cfg, device: str, images: int, size, warmup: int, iters: int) -> dict:
    import copy
    import torch
    from benchmarks._measure import maxrss_mib
    from mmengine.logging import MessageHub
    model, optim = _model_and_optim(cfg, device)
    hub = MessageHub.get_current_instance()
    hub.update_info('iter', int(getattr(getattr(model, 'distiller', None), 'warmup_iters', 0) or 0))
    batch = _batch(images, size)
    cuda = device == 'cuda'
    if cuda:
        torch.cuda.reset_peak_memory_stats()

    def step():   # as mmengine's loop does: preprocessing (to the device), forward, backward, optimizer step
        model.train_step(copy.deepcopy(batch), optim)

    for _ in range(warmup):
        step()
    times = []
    for _ in range(iters):
        if cuda:
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        step()
        if cuda:
            torch.cuda.synchronize()
        times.append(time.perf_counter() - t0)
    s = statistics.median(times)
    peak = torch.cuda.max_memory_allocated() / 2 ** 20 if cuda else maxrss_mib()
    return dict(s_per_iter=s, images_per_s=images / s, peak_mib=peak, iters=iters, times=times)


def run(scale: str = 'full', pair=('retinanet_r50', 'retinanet_x101'), methods=METHODS, images: int = 2,
        warmup: int = 5, iters: int = 20, device: Optional[str] = None) -> List[dict]:
    import torch
    import kdlab  # noqa: F401
    from kdlab.methods import distill_config
    from kdlab.zoo import detector_config
    device = device or ('cuda' if torch.cuda.is_available() else 'cpu')
    size = (800, 1333) if scale == 'full' else (96, 96)
    student, teacher = pair
    s_cfg, t_cfg = detector_config(student, scale), detector_config(teacher, scale)
    rows = [dict(what=student, device=device, scale=scale, images=images, size=list(size),
                 **measure(s_cfg, device, images, size, warmup, iters))]
    if scale == 'full':
        rows[0]['mmdet_v100_images_per_s'] = 2 / MMDET_RETINANET_R50_V100_S_PER_ITER
    for method in methods:
        row = dict(what=f'{student} <- {teacher} [{method}]', device=device, scale=scale, images=images,
                   size=list(size))
        try:
            cfg = distill_config(s_cfg, t_cfg, student=student, teacher=teacher, teacher_ckpt=None, method=method,
                                 inherit=())
            row.update(measure(cfg, device, images, size, warmup, iters))
            row['x student'] = row['s_per_iter'] / rows[0]['s_per_iter']
        except Exception as err:  # noqa: BLE001  (the table says why)
            row['error'] = f'{type(err).__name__}: {" ".join(str(err).split())[:200]}'
        if device == 'cuda':
            torch.cuda.empty_cache()
        rows.append(row)
    return rows


def format_table(rows: List[dict]) -> str:
    head = f'{"what":<44} {"images/s":>9} {"s/iter":>8} {"x student":>9} {"peak MiB":>9}'
    lines = [head, '-' * len(head)]
    for r in rows:
        if 'error' in r:
            lines.append(f'{r["what"]:<44} not run: {r["error"]}')
            continue
        lines.append(f'{r["what"]:<44} {r["images_per_s"]:9.2f} {r["s_per_iter"]:8.3f} '
                     f'{r.get("x student", 1.0):9.2f} {r["peak_mib"]:9.0f}')
    if rows and 'mmdet_v100_images_per_s' in rows[0]:
        lines.append(f'mmdet RetinaNet-R50 1x, 2 images per V100: {rows[0]["mmdet_v100_images_per_s"]:.1f} images/s')
    return '\n'.join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog='python -m benchmarks throughput', description=__doc__.split('\n')[0])
    ap.add_argument('--scale', default='full', choices=('smoke', 'full'))
    ap.add_argument('--pair', default='retinanet_r50:retinanet_x101')
    ap.add_argument('--methods', nargs='*', default=list(METHODS))
    ap.add_argument('--batch', type=int, default=2)
    ap.add_argument('--warmup', type=int, default=5)
    ap.add_argument('--iters', type=int, default=20)
    ap.add_argument('--json', help='also write the rows to this JSON file')
    args = ap.parse_args(argv)
    rows = run(args.scale, tuple(args.pair.split(':')), args.methods, args.batch, args.warmup, args.iters)
    print(format_table(rows))
    if args.json:
        with open(args.json, 'w') as f:
            json.dump(rows, f, indent=1)
    return 1 if any('error' in r for r in rows) else 0


if __name__ == '__main__':
    sys.exit(main())
