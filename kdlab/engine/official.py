"""Run an official mmdet / mmrazor config through kdlab.

At ``full`` scale the config is used as published (only ``data_root`` changes). At ``mini`` / ``smoke``
scale only two things change, so the rest — the algorithm, distiller, recorders, losses and their weights,
optimizer — is exactly the published one:

* the data section: the embedded synthetic dataset instead of COCO;
* the widths: each ``cfg_path`` detector (``mmdet::retinanet/retinanet_r50_fpn_2x_coco.py``) is replaced
  by the zoo's mini model of the same family and backbone (:func:`kdlab.zoo.mini_model`).

Teacher checkpoints published as URLs cannot be fetched offline: pass a local one.
"""
from __future__ import annotations

from typing import Optional, Tuple

from kdlab.errors import CheckpointError, KdlabError


def detector_of_cfg_path(cfg_path: str) -> Tuple[str, str]:
    """``mmdet::retinanet/retinanet_x101-64x4d_fpn_1x_coco.py`` -> (``retinanet``, ``x101``)."""
    from kdlab.zoo import FAMILIES
    for fam in FAMILIES.values():
        for (backbone, _), path in fam.full.items():
            if path == cfg_path:
                return fam.name, backbone
    # a schedule kdlab does not list: match family/backbone by the file name
    name = cfg_path.split('::')[-1].split('/')[-1]
    for fam in FAMILIES.values():
        prefix = fam.full[next(iter(fam.full))].split('/')[-1].split('_')[0]
        if name.startswith(prefix):
            for backbone in ('x101', 'r101', 'r50', 'swin-s', 'swin-t'):
                if f'_{backbone}' in name:
                    return fam.name, backbone.replace('-', '_')
    raise KdlabError(f'kdlab has no mini equivalent of {cfg_path!r}',
                     'run it at --scale full, or add its family/backbone to kdlab.zoo.FAMILIES')


def adapt_official(cfg, scale: str, *, data_root: Optional[str] = None, teacher_ckpt: Optional[str] = None,
                   max_epochs: Optional[int] = None):
    """Return ``cfg`` (an mmengine Config of an official config) ready to run at ``scale``."""
    import copy
    import os
    from kdlab.data import coco_data_config
    from kdlab.zoo import FAMILIES, SMOKE_EPOCHS, _check_scale, mini_model
    from kdlab.data.synthetic import CATEGORIES

    _check_scale(scale)
    cfg = copy.deepcopy(cfg)
    model = cfg.model
    is_distill = 'architecture' in model and 'teacher' in model
    with_mask = False
    if scale != 'full':
        parts = ('architecture', 'teacher') if is_distill else ()
        for part in parts:
            sub = model[part]
            if 'cfg_path' in sub:
                family, backbone = detector_of_cfg_path(sub['cfg_path'])
                with_mask = with_mask or FAMILIES[family].with_mask
                model[part] = dict(_scope_='mmdet', **mini_model(FAMILIES[family], backbone, len(CATEGORIES)))
        if not is_distill:
            raise KdlabError('only distillation configs (model.architecture + model.teacher) are adapted here',
                             'for a single detector use kdlab.zoo.detector_config(name, scale)')
        cfg.merge_from_dict(coco_data_config(data_root, scale=scale, with_mask=with_mask))
        epochs = max_epochs or (SMOKE_EPOCHS if scale == 'smoke' else None)
        if epochs:
            cfg.train_cfg.max_epochs = epochs
            cfg.train_cfg.val_interval = epochs
            schedulers = cfg.get('param_scheduler') or []
            groups = schedulers.values() if isinstance(schedulers, dict) else [schedulers]  # per optimizer
            for group in groups:
                for s in (group if isinstance(group, (list, tuple)) else [group]):
                    if s.get('by_epoch', True) and s.get('end', 0) and s['end'] > epochs:
                        s['end'] = epochs
                        if 'T_max' in s:
                            s['T_max'] = epochs - s.get('begin', 0)
        cfg.env_cfg['dist_cfg'] = dict(backend='gloo')
        cfg.default_hooks.setdefault('logger', {})['interval'] = 10
        cfg.default_hooks.setdefault('checkpoint', {}).update(interval=1, max_keep_ckpts=1)
    else:
        cfg.merge_from_dict(coco_data_config(data_root, scale='full', base=cfg))
    if is_distill:
        ckpt = teacher_ckpt if teacher_ckpt is not None else model.get('teacher_ckpt')
        if ckpt and '://' in str(ckpt) and scale != 'full':
            raise CheckpointError(f'teacher checkpoint {ckpt!r} is the released full-size teacher; at {scale} '
                                  'scale the teacher is shrunk and needs its own checkpoint',
                                  'train the mini teacher (kdlab train NAME --scale mini) and pass --teacher-ckpt PATH')
        # at full scale a URL (the papers' released teachers) is fetched by mmengine when the run starts
        if ckpt and '://' not in str(ckpt) and not os.path.isfile(ckpt):
            raise CheckpointError(f'teacher checkpoint {ckpt!r} does not exist',
                                  'pass --teacher-ckpt with the path of a trained teacher')
        model['teacher_ckpt'] = ckpt
    return cfg
