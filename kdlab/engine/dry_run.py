"""A full-scale run, dry: the official config at full resolution, two training iterations and one evaluation on
the CPU, with no download.

A full-scale config that parses may still fail when it runs (a pipeline step, a head's loss, a distillation
hook on real shapes). Before a GPU-week is spent, :func:`dry_run` builds one planned run of a table row at full
scale exactly as ``kdlab reproduce --scale full`` would (the official mmdet / mmrazor config, its pipelines,
1333 x 800 inputs), with three substitutions, each said here:

* data: :func:`full_resolution_coco` writes a COCO-2017-layout dataset of a few 1333 x 800 images with boxes
  and polygon masks of COCO's categories (generated, seeded), in place of COCO;
* weights: every ``Pretrained`` initialisation (ImageNet backbones) is dropped (random init), and every
  checkpoint the run needs (the released teacher, an earlier SAL stage) is replaced by a checkpoint of the
  right architecture at its initialisation, built from that run's own config (:func:`stand_in_checkpoint`);
* schedule: one epoch over the generated training images at one image per batch (two iterations by
  default), the config's validation once at its end; checkpoints are not written.

The returned losses come from mmengine's log of those iterations and the metrics from the evaluation (near 0 for
untrained weights: the point is that every step runs). ``tests/test_full_dry_run.py`` runs it for one row of
each method and each detector family of the seed tables.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Dict, Optional, Sequence

from kdlab.errors import KdlabError

#: The generated images' size (w, h): COCO images as the official pipelines resize them.
SIZE = (1333, 800)


def full_resolution_coco(root: Path, *, train: int = 2, val: int = 1, size=SIZE, objects: int = 4,
                         seed: int = 0) -> Path:
    """A COCO-2017-layout dataset at ``root`` (``annotations/instances_{train,val}2017.json``, ``train2017/``,
    ``val2017/``): ``train`` and ``val`` images of ``size`` (w, h), each with ``objects`` rectangles of COCO
    categories on a noisy gradient, their boxes and polygon masks; written once (kept if present)."""
    import numpy as np
    from PIL import Image
    from mmdet.datasets import CocoDataset
    root = Path(root)
    classes = CocoDataset.METAINFO['classes']
    categories = [dict(id=i + 1, name=name, supercategory='') for i, name in enumerate(classes)]
    rng = np.random.default_rng(seed)
    w, h = size
    for split, count in (('train2017', train), ('val2017', val)):
        ann_path = root / 'annotations' / f'instances_{split}.json'
        if ann_path.is_file():
            continue
        (root / split).mkdir(parents=True, exist_ok=True)
        images, annotations = [], []
        for i in range(count):
            ramp = np.linspace(0, 1, w)[None, :, None] * rng.uniform(40, 160, 3)[None, None, :]
            img = np.clip(ramp + rng.normal(90, 25, (h, w, 3)), 0, 255)
            for _ in range(objects):
                bw, bh = int(rng.uniform(0.08, 0.35) * w), int(rng.uniform(0.08, 0.35) * h)
                x, y = int(rng.uniform(0, w - bw)), int(rng.uniform(0, h - bh))
                img[y:y + bh, x:x + bw] = rng.uniform(0, 255, 3)
                annotations.append(dict(
                    id=len(annotations) + 1, image_id=i + 1, category_id=int(rng.integers(1, len(classes) + 1)),
                    bbox=[x, y, bw, bh], area=float(bw * bh), iscrowd=0,
                    segmentation=[[x, y, x + bw, y, x + bw, y + bh, x, y + bh]]))
            name = f'{i:012d}.jpg'
            Image.fromarray(img.astype('uint8')).save(root / split / name, quality=90)
            images.append(dict(id=i + 1, file_name=name, width=w, height=h))
        ann_path.parent.mkdir(parents=True, exist_ok=True)
        ann_path.write_text(json.dumps(dict(images=images, annotations=annotations, categories=categories)))
    return root


def stand_in_checkpoint(cfg, path: Path) -> Path:
    """A checkpoint of ``cfg``'s model at its initialisation, in mmengine's format (``state_dict``, ``meta``):
    what a trained run of ``cfg`` would have written, with other values."""
    import torch
    from kdlab.methods.loss_scale import _without_pretrained
    from kdlab.models import build_model
    model = build_model(_without_pretrained(cfg.model.to_dict() if hasattr(cfg.model, 'to_dict') else cfg.model))
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(dict(state_dict=model.state_dict(), meta=dict(kdlab='dry run stand-in, initial weights')), path)
    return path


def _every_detection_kept(node):
    """``node`` with every ``score_thr`` at 0: untrained heads score every box near their prior (0.01), below the
    official 0.05, and an evaluation of no detection would skip COCO's evaluation altogether."""
    if isinstance(node, dict):
        return {k: (0.0 if k == 'score_thr' else _every_detection_kept(v)) for k, v in node.items()}
    if isinstance(node, list):
        return [_every_detection_kept(v) for v in node]
    return node


class _StandIns:
    """What :func:`kdlab.engine.planner.resolve_refs` reads as a store: key -> the stand-in checkpoint."""

    def __init__(self, paths: Dict[str, Path]):
        self.paths = paths

    def load(self, key):
        return {'checkpoint': str(self.paths[key])} if key in self.paths else None


def dry_config(plan, key: str, work: Path):
    """The config of run ``key`` of a full-scale ``plan`` as :func:`dry_run` trains it (module docstring)."""
    from kdlab.engine.planner import resolve_refs
    from kdlab.methods.loss_scale import _without_pretrained
    from mmengine.config import Config
    order = [r.key for r in plan.ordered()]
    needed, todo = [], list(plan.runs[key].needs)
    while todo:                                   # everything the run needs, recursively
        k = todo.pop()
        if k not in needed:
            needed.append(k)
            todo.extend(plan.runs[k].needs)
    stand_ins: Dict[str, Path] = {}
    for k in sorted(needed, key=order.index):     # dependencies first: a stage's teacher before the stage
        cfg = resolve_refs(plan.runs[k].cfg, _StandIns(stand_ins))
        stand_ins[k] = stand_in_checkpoint(cfg, work / 'stand_ins' / f'{k}.pth')
    cfg = resolve_refs(plan.runs[key].cfg, _StandIns(stand_ins)).to_dict()
    cfg['model'] = _every_detection_kept(_without_pretrained(cfg['model']))
    cfg['load_from'], cfg['resume'] = None, False
    cfg['work_dir'] = str(work / key)
    cfg['train_cfg'] = dict(type='EpochBasedTrainLoop', max_epochs=1, val_interval=1)
    for name in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        loader = cfg[name]
        loader.update(batch_size=1, num_workers=0, persistent_workers=False)
        loader.pop('batch_sampler', None) if name == 'train_dataloader' else None
    hooks = cfg.setdefault('default_hooks', {})
    hooks['checkpoint'] = dict(type='CheckpointHook', interval=10 ** 6, save_last=False)
    hooks['logger'] = dict(type='LoggerHook', interval=1)
    hooks.pop('visualization', None)
    cfg['custom_hooks'] = [h for h in cfg.get('custom_hooks') or [] if h.get('type') != 'EMAHook']
    cfg['log_level'] = 'WARNING'
    return Config(cfg)


def dry_run(plan, key: str, work: Path) -> dict:
    """Train run ``key`` of a full-scale ``plan`` for one epoch of the generated images and validate it once
    (:func:`dry_config`); returns ``losses`` (per iteration, ``{term: value}``), ``metrics`` (the evaluation's:
    the student's ``bbox_mAP``, ...; mmrazor's distillation loop adds the teacher's under its own names) and
    ``input_shape`` (h, w of the first training batch)."""
    from mmengine.hooks import Hook
    from mmengine.runner import Runner
    from kdlab.engine.runner import _console_gate, _quiet_console, without_coco_api_noise
    cfg = dry_config(plan, key, Path(work))
    seen: dict = {'losses': [], 'input_shape': None, 'metrics': {}}

    class Record(Hook):
        priority = 'LOWEST'

        def before_train_iter(self, runner, batch_idx, data_batch=None):
            if seen['input_shape'] is None and data_batch:
                seen['input_shape'] = tuple(data_batch['inputs'][0].shape[-2:])

        def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None):
            seen['losses'].append({k: float(v.detach() if hasattr(v, 'detach') else v)
                                   for k, v in (outputs or {}).items()})

        def after_val_epoch(self, runner, metrics=None):
            seen['metrics'].update(metrics or {})

    with without_coco_api_noise():
        with _console_gate():                     # mmengine's environment and config dump: its log file only
            runner = Runner.from_cfg(cfg)
            _quiet_console(runner)
        runner.register_hook(Record())
        runner.train()
    out = {k.split('coco/', 1)[-1] if k.startswith('coco/') else k: v for k, v in seen['metrics'].items()}
    if not seen['losses']:
        raise KdlabError(f'the dry run of {plan.runs[key].name} trained no iteration', 'see its log under '
                         f'{Path(work) / key}')
    return dict(losses=seen['losses'], metrics=out, input_shape=seen['input_shape'])


def plan_row(paper: str, table: str, row: str, data_root: Path, *, teacher_ckpts: Optional[dict] = None,
             seeds: Sequence[int] = (0,)):
    """The full-scale plan of one row on ``data_root`` (a :func:`full_resolution_coco` dataset) and the key of
    the row's own run."""
    from kdlab.engine.reproduce import reproduction
    job = reproduction(paper, [table], 'full', rows=[row], seeds=seeds, data_root=str(data_root),
                       teacher_ckpts=teacher_ckpts)
    plan, ref = job.plans[job.seeds[0]], f'{paper}/{table}/{row}'
    if ref not in plan.rows:
        raise KdlabError(f'{ref} is not run at full scale: {plan.skipped.get(ref, "not planned")}',
                         f'pick a runnable row (`kdlab papers {paper} --table {table}`)')
    return plan, plan.rows[ref]
