"""Datasets: the embedded synthetic COCO-format data (mini/smoke) and COCO itself (full)."""
from __future__ import annotations

from typing import Optional

from kdlab.data.synthetic import (CATEGORIES, PRESETS, SyntheticSpec, check_data_root, ensure_dataset)

__all__ = ['CATEGORIES', 'PRESETS', 'SyntheticSpec', 'check_data_root', 'ensure_dataset', 'coco_data_config',
           'IMAGES_PER_GPU']

#: Images per GPU (per process) at each scale. Full scale: 2, as in every seed paper (x8 GPUs = 16).
IMAGES_PER_GPU = {'smoke': 4, 'mini': 8, 'full': 2}
#: Mini v2 (kdlab.data.scenes): 4 images per iteration. Measured on RetinaNet-R50 (docs/mini_v2.md): the same
#: CPU time per image as 8 (0.028 s), twice the updates, and a curve ahead of batch 8 at every epoch
#: (epoch 18: 28.2 against 23.8 mAP).
MINI_V2_IMAGES_PER_GPU = 4

#: COCO metrics kdlab records (pycocotools' 12 numbers); ``mAR`` is AR@100 as in DFMSD's tables.
METRIC_ITEMS = ['mAP', 'mAP_50', 'mAP_75', 'mAP_s', 'mAP_m', 'mAP_l', 'AR@100', 'AR_s@1000', 'AR_m@1000',
                'AR_l@1000']


def _pipelines(size, with_mask: bool):
    load_ann = dict(type='LoadAnnotations', with_bbox=True, with_mask=with_mask)
    train = [dict(type='LoadImageFromFile'), load_ann, dict(type='Resize', scale=size, keep_ratio=True),
             dict(type='RandomFlip', prob=0.5), dict(type='PackDetInputs')]
    test = [dict(type='LoadImageFromFile'), dict(type='Resize', scale=size, keep_ratio=True), load_ann,
            dict(type='PackDetInputs', meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape',
                                                  'scale_factor'))]
    return train, test


def coco_data_config(data_root: Optional[str], scale: str, with_mask: bool = False, base=None,
                     num_workers: int = 0, protocol: str = 'v1') -> dict:
    """The data section (dataloaders, evaluators) of a config, as a dict to merge into it.

    ``mini`` / ``smoke``: the synthetic dataset (generated into the cache when ``data_root`` is None).
    ``full``: COCO 2017 at ``data_root``, keeping the official pipelines of ``base`` (the official config).
    ``protocol='v2'`` (mini): the cluttered scenes of :mod:`kdlab.data.scenes`.
    """
    if scale == 'full':
        root = str(check_data_root(data_root, splits=('val2017',))) + '/'
        out = {}
        for name, split in (('train_dataloader', 'train2017'), ('val_dataloader', 'val2017'),
                            ('test_dataloader', 'val2017')):
            out[name] = dict(dataset=dict(data_root=root))
        for name in ('val_evaluator', 'test_evaluator'):
            out[name] = dict(ann_file=root + 'annotations/instances_val2017.json', metric_items=METRIC_ITEMS)
        return out

    if protocol == 'v2' and scale == 'mini':
        from kdlab.data.scenes import CATEGORIES as classes, SceneSpec
        spec = SceneSpec()
        images_per_gpu = MINI_V2_IMAGES_PER_GPU
    else:
        spec, classes = PRESETS[scale], CATEGORIES
        images_per_gpu = IMAGES_PER_GPU[scale]
    root = str(check_data_root(data_root) if data_root else ensure_dataset(spec)) + '/'
    size = tuple(reversed(spec.image_size))  # mmcv scales are (w, h)
    train_pipe, test_pipe = _pipelines(size, with_mask)
    metainfo = dict(classes=classes)

    def dataset(split, pipeline, test_mode):
        return dict(type='CocoDataset', data_root=root, ann_file=f'annotations/instances_{split}.json',
                    data_prefix=dict(img=f'{split}/'), metainfo=metainfo, pipeline=pipeline,
                    test_mode=test_mode, filter_cfg=None if test_mode else dict(filter_empty_gt=True,
                                                                                 min_size=4),
                    backend_args=None)

    def loader(split, pipeline, train):
        return dict(batch_size=images_per_gpu if train else 8, num_workers=num_workers,
                    persistent_workers=False, drop_last=False,
                    sampler=dict(type='DefaultSampler', shuffle=train),
                    batch_sampler=dict(type='AspectRatioBatchSampler') if train else None,
                    dataset=dataset(split, pipeline, not train))

    evaluator = dict(type='CocoMetric', ann_file=root + 'annotations/instances_val.json', metric='bbox',
                     format_only=False, metric_items=METRIC_ITEMS, backend_args=None)
    return dict(data_root=root, dataset_type='CocoDataset',
                train_dataloader=loader('train', train_pipe, True),
                val_dataloader=loader('val', test_pipe, False),
                test_dataloader=loader('val', test_pipe, False),
                val_evaluator=evaluator, test_evaluator=evaluator)
