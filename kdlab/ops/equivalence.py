"""Two implementations of mmcv's ops, measured against each other: op by op, and by training detectors.

``python -m kdlab.ops.equivalence [--device cuda] [--shapes full|test] [--train] [--out FILE]`` writes
the JSON that README's equivalence table comes from; ``tests/test_mmcv_ops.py`` runs the same cases.

Op by op (:func:`compare`): every case goes through mmcv's public op (``mmcv.ops.nms``, ``roi_align``,
``deform_conv2d``, ...) on the same random inputs, once with each implementation swapped in
(:func:`kdlab.ops.use`); forward outputs and the gradients of a random upstream gradient are compared (kept
indices for NMS, the largest absolute difference and the largest value for the rest, float32). Shapes are
those of a full-scale detector at 1333x800 with 2 images (``full``) or small ones (``test``). An op the
compiled build lacks for a device (mmcv's CPU build has no ``sigmoid_focal_loss`` kernel) is compared with
the PyTorch version mmdet/mmcv use on that device instead, and the row says so.

End to end (:func:`train_each_backend`): smoke-scale detectors trained from the same seed, once per
implementation, each in its own process (``KDLAB_MMCV_OPS``), into a temporary store: COCO metrics side by side.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from typing import Callable, Dict, List, Optional, Sequence

import torch


@dataclass
class Case:
    name: str           # what is computed, with the detector part it stands for
    op: str             # mmcv.ops function
    shapes: Dict[str, str]
    build: Callable     # (generator, device) -> dict of input tensors
    call: Callable      # (inputs) -> output tensor (differentiable where backward is compared)
    grads: Sequence[str] = ()   # inputs whose gradients are compared
    indices: bool = False       # output are kept indices (compared for equality)
    reference: Optional[Callable] = None   # (inputs) -> output: stands in where the compiled build lacks the op
    reference_name: str = ''


def _boxes(g, n, device, width=1333, height=800):
    cx, cy = torch.rand(n, generator=g) * width, torch.rand(n, generator=g) * height
    w, h = (torch.rand(n, generator=g) * 5.5 + 3).exp2(), (torch.rand(n, generator=g) * 5.5 + 3).exp2()
    return torch.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], 1).to(device)


def _rois(g, n_per_image, images, stride, fh, fw, device):
    boxes = _boxes(g, n_per_image * images, 'cpu', fw * stride, fh * stride)
    index = torch.arange(images).repeat_interleave(n_per_image).float()[:, None]
    return torch.cat([index, boxes], 1).to(device)


def cases(shapes: str = 'full') -> List[Case]:
    """The compared cases. ``full``: 1333x800 inputs, 2 images; ``test``: small versions of the same."""
    import mmcv.ops as ops
    full = shapes == 'full'
    B = 2
    n_rpn, n_det = (5000, 1000) if full else (400, 200)
    C = 256 if full else 16
    p2 = (200, 336) if full else (24, 40)          # FPN P2 (stride 4)
    p3 = (100, 168) if full else (12, 20)          # P3 (stride 8)
    c4 = (50, 84) if full else (6, 10)             # ResNeXt stage 3 (stride 16)
    c4_ch, c4_groups = (1024, 64) if full else (32, 4)
    n_roi, n_anchor = (512 if full else 24), (100000 if full else 500)

    def rnd(g, *shape, device, scale=1.0):
        return (torch.randn(*shape, generator=g) * scale).to(device)

    def roi_case(name, level, stride, rois_per_image, size, ratio, aligned):
        return Case(name, 'roi_align', {'input': f'{B}x{C}x{level[0]}x{level[1]}', 'rois': f'{rois_per_image * B}x5'},
                    lambda g, d: dict(input=rnd(g, B, C, *level, device=d),
                                      rois=_rois(g, rois_per_image, B, stride, *level, d),
                                      grad=rnd(g, rois_per_image * B, C, size, size, device=d)),
                    lambda x: ops.roi_align(x['input'], x['rois'], (size, size), 1 / stride, ratio, 'avg', aligned),
                    grads=('input',))

    out = [
        Case('NMS, RPN proposals (IoU 0.7)', 'nms', {'boxes': f'{n_rpn}x4'},
             lambda g, d: dict(boxes=_boxes(g, n_rpn, d), scores=torch.rand(n_rpn, generator=g).to(d)),
             lambda x: ops.nms(x['boxes'], x['scores'], 0.7)[1], indices=True),
        Case('batched NMS, 80 classes (IoU 0.5)', 'batched_nms', {'boxes': f'{n_det}x4'},
             lambda g, d: dict(boxes=_boxes(g, n_det, d), scores=torch.rand(n_det, generator=g).to(d),
                               labels=torch.randint(0, 80, (n_det,), generator=g).to(d)),
             lambda x: ops.batched_nms(x['boxes'], x['scores'], x['labels'], dict(type='nms', iou_threshold=0.5))[1],
             indices=True),
        roi_case('RoIAlign 7x7, Faster R-CNN box head (P2, aligned, adaptive grid)', p2, 4, n_roi, 7, 0, True),
        roi_case('RoIAlign 14x14, Mask R-CNN mask head (P2, aligned, sampling 0)', p2, 4, n_roi // 4, 14, 0, True),
        roi_case('RoIAlign 7x7, legacy (aligned=False, sampling 2)', p3, 8, n_roi, 7, 2, False),
        Case('DeformConv2d 3x3, RepPoints head (P3)', 'deform_conv2d',
             {'input': f'{B}x{C}x{p3[0]}x{p3[1]}', 'weight': f'{C}x{C}x3x3', 'offset': f'{B}x18x{p3[0]}x{p3[1]}'},
             lambda g, d: dict(input=rnd(g, B, C, *p3, device=d), offset=rnd(g, B, 18, *p3, device=d, scale=2.0),
                               weight=rnd(g, C, C, 3, 3, device=d, scale=0.02), grad=rnd(g, B, C, *p3, device=d)),
             lambda x: ops.deform_conv2d(x['input'], x['offset'], x['weight'], 1, 1, 1, 1, 1),
             grads=('input', 'offset', 'weight')),
        Case('ModulatedDeformConv2d 3x3, ResNeXt-101-DCN stage 3 (groups 64)', 'modulated_deform_conv2d',
             {'input': f'{B}x{c4_ch}x{c4[0]}x{c4[1]}', 'weight': f'{c4_ch}x{c4_ch // c4_groups}x3x3',
              'offset': f'{B}x18x{c4[0]}x{c4[1]}', 'mask': f'{B}x9x{c4[0]}x{c4[1]}'},
             lambda g, d: dict(input=rnd(g, B, c4_ch, *c4, device=d), offset=rnd(g, B, 18, *c4, device=d, scale=2.0),
                               mask=torch.rand(B, 9, *c4, generator=g).to(d),
                               weight=rnd(g, c4_ch, c4_ch // c4_groups, 3, 3, device=d, scale=0.05),
                               bias=rnd(g, c4_ch, device=d), grad=rnd(g, B, c4_ch, *c4, device=d)),
             lambda x: ops.modulated_deform_conv2d(x['input'], x['offset'], x['mask'], x['weight'], x['bias'],
                                                   1, 1, 1, c4_groups, 1),
             grads=('input', 'offset', 'mask', 'weight', 'bias')),
        Case('sigmoid focal loss, RetinaNet classification (80 classes)', 'sigmoid_focal_loss',
             {'input': f'{n_anchor}x80'},
             lambda g, d: dict(input=rnd(g, n_anchor, 80, device=d, scale=3.0),
                               target=torch.randint(0, 81, (n_anchor,), generator=g).to(d),
                               grad=rnd(g, n_anchor, 80, device=d)),
             lambda x: ops.sigmoid_focal_loss(x['input'], x['target'], 2.0, 0.25, None, 'none'), grads=('input',),
             reference=_mmdet_focal_loss, reference_name="mmdet's py_sigmoid_focal_loss (its CPU path)"),
    ]
    return out


def _mmdet_focal_loss(x):
    import torch.nn.functional as F
    from mmdet.models.losses.focal_loss import py_sigmoid_focal_loss
    target = F.one_hot(x['target'], num_classes=x['input'].shape[1] + 1)[:, :-1].type_as(x['input'])
    return py_sigmoid_focal_loss(x['input'], target, None, 2.0, 0.25, 'none')


def _evaluate(case: Case, inputs: Dict[str, torch.Tensor], fn: Callable) -> Dict[str, torch.Tensor]:
    leaves = {k: (v.detach().clone().requires_grad_(k in case.grads)) for k, v in inputs.items() if k != 'grad'}
    out = fn(leaves)
    result = {'output': out.detach()}
    if case.grads:
        out.backward(inputs['grad'])
        for k in case.grads:
            result[f'grad {k}'] = leaves[k].grad.detach()
    return result


def _run(case, inputs, which):
    from kdlab import ops
    with ops.use(which):
        return _evaluate(case, inputs, case.call)


def compare(a: str = 'kdlab', b: str = 'compiled', device: str = 'cpu', shapes: str = 'full',
            seed: int = 0, only: Optional[Sequence[str]] = None) -> List[dict]:
    """One row per case: the largest absolute difference between ``a`` and ``b`` (or equal indices)."""
    rows = []
    for case in cases(shapes):
        if only and case.op not in only:
            continue
        g = torch.Generator().manual_seed(seed)
        inputs = case.build(g, device)
        row = dict(case=case.name, op=case.op, shapes=case.shapes, device=device, a=a, b=b)
        t0 = time.perf_counter()
        got_a = _run(case, inputs, a)
        row['seconds_a'] = round(time.perf_counter() - t0, 3)
        t0 = time.perf_counter()
        try:
            got_b = _run(case, inputs, b)
        except (RuntimeError, NotImplementedError) as err:   # the compiled build lacks the op on this device
            if case.reference is None:
                row['unavailable'] = f'{b}: {" ".join(str(err).split())[:200]}'
                rows.append(row)
                continue
            # Compared in float64: in float32 mmcv's kernel (and so kdlab's) computes log(1 - sigmoid(x)) with
            # cancellation for large logits, which mmdet's BCE-with-logits form avoids; the row keeps both.
            row['b'] = case.reference_name
            row['note'] = (f'{b} has no kernel for this op on {device} ({" ".join(str(err).split())[:100]}); '
                           f'compared in float64 with {case.reference_name}')
            ref32 = _evaluate(case, inputs, case.reference)
            row['float32 output max_abs_diff'] = float((got_a['output'].double() - ref32['output'].double())
                                                       .abs().max())
            inputs = {k: v.double() if v.is_floating_point() else v for k, v in inputs.items()}
            got_a = _run(case, inputs, a)
            got_b = _evaluate(case, inputs, case.reference)
        row['seconds_b'] = round(time.perf_counter() - t0, 3)
        for k, va in got_a.items():
            vb = got_b[k]
            if case.indices and k == 'output':
                row['same_indices'] = bool(va.shape == vb.shape and torch.equal(va.cpu(), vb.cpu()))
                row['kept'] = [int(va.numel()), int(vb.numel())]
            else:
                row[f'{k} max_abs_diff'] = float((va.double() - vb.double()).abs().max()) if va.numel() else 0.0
                row[f'{k} max_abs'] = float(vb.double().abs().max()) if vb.numel() else 0.0
        rows.append(row)
    return rows


#: the detectors trained end to end with each implementation
E2E_DETECTORS = ('retinanet_r50', 'faster_rcnn_r50', 'mask_rcnn_r50', 'reppoints_r50')


def train_each_backend(detectors: Sequence[str] = E2E_DETECTORS, backends: Sequence[str] = ('kdlab', 'compiled'),
                       scale: str = 'smoke', seed: int = 0, root: Optional[str] = None) -> List[dict]:
    """Train and evaluate each detector with each implementation, the implementations side by side (one
    process each, ``OMP_NUM_THREADS`` as set, own temporary store): a row per detector."""
    rows = []
    with tempfile.TemporaryDirectory(prefix='kdlab-ops-e2e-') as tmp:
        root = root or tmp
        for det in detectors:
            row = dict(detector=det, scale=scale, seed=seed)
            procs = {}
            for which in backends:
                env = dict(os.environ, KDLAB_MMCV_OPS=which, KDLAB_WORK=os.path.join(root, which, 'work'))
                store = os.path.join(root, which, 'runs')
                procs[which] = (store, time.perf_counter(), subprocess.Popen(
                    [sys.executable, '-m', 'kdlab.cli', 'train', det, '--scale', scale, '--seed', str(seed),
                     '--store', store], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
            for which, (store, t0, proc) in procs.items():
                out, err = proc.communicate()
                if proc.returncode != 0:
                    row[which] = {'error': (err or out)[-600:]}
                    continue
                key = out.strip().splitlines()[-1].split()[1]
                with open(os.path.join(store, key, 'run.json')) as f:
                    rec = json.load(f)
                row[which] = {'metrics': rec['metrics'], 'mmcv_ops': rec['provenance'].get('mmcv_ops'),
                              'seconds': round(time.perf_counter() - t0, 1), 'train_s': rec.get('wall_time_s'),
                              'checkpoint': rec.get('checkpoint')}
            done = [b for b in backends if 'checkpoint' in row.get(b, {})]
            if len(done) == 2:
                row['weights'] = weight_difference(*(row[b].pop('checkpoint') for b in done))
            rows.append(row)
    return rows


def evaluate_each_backend(detector: str, epochs: int = 3, train_with: str = 'kdlab', scale: str = 'mini',
                          backends: Sequence[str] = ('kdlab', 'compiled')) -> dict:
    """Train ``detector`` for ``epochs`` with one implementation, then evaluate that one checkpoint with each:
    separates what the ops do at test time from how training trajectories diverge."""
    import copy
    from mmengine.runner import Runner
    from kdlab import ops
    from kdlab.zoo import detector_config
    with tempfile.TemporaryDirectory(prefix='kdlab-ops-eval-') as work:
        cfg = detector_config(detector, scale)
        cfg.train_cfg.max_epochs, cfg.train_cfg.val_interval = epochs, epochs + 1
        cfg.param_scheduler = [p for p in cfg.param_scheduler if p['type'] == 'LinearLR']   # warm-up only
        cfg.work_dir, cfg.log_level = os.path.join(work, 'train'), 'WARNING'
        with ops.use(train_with):
            Runner.from_cfg(copy.deepcopy(cfg)).train()
        out = dict(detector=detector, scale=scale, epochs=epochs, trained_with=train_with)
        for which in backends:
            c = copy.deepcopy(cfg)
            c.load_from, c.work_dir, c.experiment_name = (os.path.join(work, 'train', f'epoch_{epochs}.pth'),
                                                          os.path.join(work, which), f'eval_{which}_{os.getpid()}')
            with ops.use(which):
                metrics = Runner.from_cfg(c).test()
            out[which] = {k.split('/')[-1]: round(float(v) * 100, 2) for k, v in metrics.items()
                          if k.startswith('coco/bbox_mAP')}
    return out


def weight_difference(a: str, b: str) -> dict:
    """The largest absolute difference between two checkpoints' weights, and the largest weight: training is
    deterministic on one machine (``kdlab resume-check``), so what differs comes from the ops."""
    sd_a = torch.load(a, map_location='cpu', weights_only=False)['state_dict']
    sd_b = torch.load(b, map_location='cpu', weights_only=False)['state_dict']
    diffs = {k: float((sd_a[k].double() - sd_b[k].double()).abs().max()) for k in sd_a
             if sd_a[k].is_floating_point() and sd_a[k].numel()}
    worst = max(diffs, key=diffs.get)
    return dict(max_abs_diff=diffs[worst], tensor=worst,
                max_abs=max(float(v.double().abs().max()) for v in sd_b.values() if v.is_floating_point() and v.numel()),
                tensors=len(diffs))


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog='python -m kdlab.ops.equivalence', description=__doc__.split('\n\n')[0])
    p.add_argument('--a', default='kdlab')
    p.add_argument('--b', default='compiled')
    p.add_argument('--device', default='cpu')
    p.add_argument('--shapes', default='full', choices=('full', 'test'))
    p.add_argument('--only', nargs='*', help='ops to compare (mmcv.ops names)')
    p.add_argument('--train', action='store_true', help='also train detectors with each implementation')
    p.add_argument('--train-scale', default='smoke', choices=('smoke', 'mini'))
    p.add_argument('--detectors', nargs='*', default=list(E2E_DETECTORS), help='zoo names trained with --train')
    p.add_argument('--no-ops', action='store_true', help='skip the op-by-op comparison')
    p.add_argument('--seed', type=int, default=0, help='seed of the trainings (--train)')
    p.add_argument('--same-checkpoint', action='store_true',
                   help='train each of --detectors 3 epochs with --a, evaluate that checkpoint with --a and --b')
    p.add_argument('--out', default=None, help='JSON file to write')
    args = p.parse_args(argv)
    import kdlab  # noqa: F401  (kdlab's mmcv._ext, compat fixes)
    from kdlab import ops
    report = {'a': args.a, 'b': args.b, 'device': args.device, 'shapes': args.shapes, 'torch': torch.__version__,
              'served_by_default': ops.backend(), 'threads': torch.get_num_threads()}
    report['ops'] = [] if args.no_ops else compare(args.a, args.b, args.device, args.shapes, only=args.only)
    for row in report['ops']:
        print(json.dumps(row))
    if args.train:
        report['training'] = train_each_backend(args.detectors, (args.a, args.b), scale=args.train_scale,
                                                seed=args.seed)
        for row in report['training']:
            print(json.dumps(row))
    if args.same_checkpoint:
        report['same_checkpoint'] = [evaluate_each_backend(d, train_with=args.a, backends=(args.a, args.b))
                                     for d in args.detectors]
        for row in report['same_checkpoint']:
            print(json.dumps(row))
    if args.out:
        os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
        with open(args.out, 'w') as f:
            json.dump(report, f, indent=1)
    return 0


if __name__ == '__main__':
    sys.exit(main())
