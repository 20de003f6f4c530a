"""Models to look at and what they compute: FPN features per level, per-channel teacher-student statistics.

Two ways to get models:

* :func:`default_detectors` — "the embedded defaults": the demo's teacher, baseline student and PKD-distilled
  student (``kdlab demo``, :mod:`kdlab.demo`) at a scale, found in the run store by their content keys. At
  ``smoke`` scale a missing trio is trained on the spot (seconds); at ``mini`` / ``full`` kdlab says how to
  train it (``kdlab demo --scale mini``) unless ``train=True``.
* :func:`load_detector` — a user's ``(config, checkpoint)``: ``config`` is a zoo name (``'retinanet_r50'``, built
  at ``scale``), an mmengine config file, or a ``Config``; the checkpoint may be a plain detector checkpoint or
  an mmrazor distillation checkpoint (the student is read from its ``architecture.`` keys).

:func:`extract_fpn` runs each image through the model's own test pipeline (resize as in testing, the data
preprocessor's normalisation and padding) and ``model.extract_feat``, and crops every level to the area the
image covers (no padding). Level names come from the measured stride (``P3`` = stride 8), so heterogeneous
necks (a P2-P6 Mask R-CNN teacher, a P3-P7 RetinaNet student) are named truthfully.

:func:`channel_stats` gives, per paired level and channel, the Pearson r of teacher and student over all
positions of all images (:func:`kdlab.core.normalize.pearson_per_channel`, PKD's quantity: PKD's loss is
``(1/C) sum_c (1 - r_c)``) and the magnitude statistics that motivate PKD (mean ``|F|``, mean, std per
channel).
"""
from __future__ import annotations

import dataclasses
import math
from pathlib import Path
from typing import Dict, List, Mapping, Optional, Sequence, Tuple, Union

import numpy as np
import torch

from kdlab.analysis.images import SampleImage
from kdlab.errors import CheckpointError, KdlabError

#: The demo's roles, in the order the notebooks show them.
DEFAULT_ROLES = ('teacher', 'baseline', 'distilled')


@dataclasses.dataclass
class Detector:
    """A built detector in eval mode, with where it came from."""

    name: str                        # label for plots, e.g. 'teacher (retinanet_x101)'
    role: str                        # 'teacher' | 'baseline' | 'distilled' | any user-given role
    model: torch.nn.Module
    cfg: object                      # the mmengine Config the model was built from
    checkpoint: Optional[str] = None
    detector: Optional[str] = None   # zoo name when known
    mAP: Optional[float] = None      # its stored run's COCO mAP (%) when it comes from the run store


#: Below this COCO mAP (%) a model has learned (next to) nothing: its attention and features are not a trained
#: detector's (the smoke scale's one-epoch models score about 0).
LEARNED_MAP = 1.0


def learned_note(dets: Mapping[str, Detector]) -> str:
    """One line per model: its stored mAP, and a warning for one that learned nothing (what a figure of it shows
    is an untrained network's), naming the fix."""
    lines = []
    for d in dets.values():
        if d.mAP is None:
            lines.append(f'{d.name}: given checkpoint {d.checkpoint} (mAP not stored)')
        elif d.mAP < LEARNED_MAP:
            lines.append(f'{d.name}: {d.mAP:.1f} mAP - it learned nothing (an untrained fallback); the figures show '
                         "an untrained network. For a trained one: scale='mini' after `kdlab demo --scale mini`, "
                         'or your own checkpoints (models=...)')
        else:
            lines.append(f'{d.name}: {d.mAP:.1f} mAP')
    return '\n'.join(lines)


@dataclasses.dataclass
class FeatureMaps:
    """The FPN outputs of one image, each cropped to the image area (padding removed)."""

    image: SampleImage
    levels: List[str]                # 'P3', ...
    maps: List[torch.Tensor]         # per level (C, h, w)
    strides: List[int]
    input_shape: Tuple[int, int]     # (h, w) of the resized image the model saw
    scale_factor: Tuple[float, float]  # (w_scale, h_scale): input pixels per original pixel

    def level(self, name: str) -> torch.Tensor:
        if name not in self.levels:
            raise KdlabError(f'no level {name!r} in these features (levels {self.levels})',
                             f'use one of {self.levels}')
        return self.maps[self.levels.index(name)]


# ------------------------------------------------------------------------------------------ building
def _zoo_name(cfg) -> Optional[str]:
    meta = cfg.get('kdlab_method') if hasattr(cfg, 'get') else None
    return meta.get('student') if meta else None


def build_detector(cfg) -> torch.nn.Module:
    """The mmdet detector of ``cfg`` (a distillation config gives its student, ``model.architecture``)."""
    import mmdet.models  # noqa: F401  (registers mmdet's models)
    from mmdet.registry import MODELS
    from mmengine.registry import DefaultScope
    model_cfg = cfg.model.to_dict() if hasattr(cfg.model, 'to_dict') else dict(cfg.model)
    if 'architecture' in model_cfg:
        model_cfg = model_cfg['architecture']
        model_cfg = model_cfg.to_dict() if hasattr(model_cfg, 'to_dict') else dict(model_cfg)
    model_cfg = {k: v for k, v in model_cfg.items() if k != '_scope_'}
    from mmengine.config import ConfigDict
    with DefaultScope.overwrite_default_scope('mmdet'):
        return MODELS.build(ConfigDict(model_cfg))   # ConfigDict: heads read test_cfg by attribute


def load_weights(model: torch.nn.Module, checkpoint: str, *, what: str = 'checkpoint') -> None:
    """Load ``checkpoint`` into ``model`` strictly; an mmrazor distillation checkpoint gives its student
    (keys ``architecture.*``; the teacher's ``teacher.*`` keys are ignored)."""
    from mmengine.runner.checkpoint import _load_checkpoint
    if not checkpoint or not Path(checkpoint).is_file():
        raise CheckpointError(f'{what} {checkpoint!r} does not exist',
                              'pass the path of a .pth file (the run store records it as `checkpoint`)')
    ckpt = _load_checkpoint(str(checkpoint), map_location='cpu')
    state = ckpt.get('state_dict', ckpt)
    if any(k.startswith('architecture.') for k in state):
        state = {k[len('architecture.'):]: v for k, v in state.items() if k.startswith('architecture.')}
    expected = model.state_dict()
    missing = [k for k in expected if k not in state]
    wrong = [f'{k}: checkpoint {tuple(state[k].shape)} vs model {tuple(v.shape)}' for k, v in expected.items()
             if k in state and hasattr(state[k], 'shape') and tuple(state[k].shape) != tuple(v.shape)]
    if missing or wrong:
        found = ([f'{len(missing)} missing key(s), e.g. {missing[:3]}'] if missing else []) + \
                ([f'{len(wrong)} shape mismatch(es), e.g. {wrong[:2]}'] if wrong else [])
        raise CheckpointError(f'{what} {checkpoint!r} does not match the model: ' + '; '.join(found),
                              'pass the config the checkpoint was trained with (same detector, backbone, widths '
                              'and scale)')
    model.load_state_dict(state, strict=False)   # extra keys (e.g. a distiller's) are allowed, as mmengine allows


def load_detector(config, checkpoint: Optional[str] = None, *, scale: str = 'mini', role: str = 'model',
                  name: Optional[str] = None) -> Detector:
    """A detector from a user's ``(config, checkpoint)``.

    Args:
        config: a zoo name (built at ``scale``), a config file path, or an mmengine ``Config``.
        checkpoint: a ``.pth`` file (detector or mmrazor distillation checkpoint); None: random weights
            (say so in the figure: ``name`` defaults to '<role> (<config>, untrained)').
        scale: the zoo scale for a zoo name (``'full'`` = the official config, e.g. for a COCO checkpoint).
        role: a label kept with the model ('teacher', 'student', ...).
        name: the label on plots.
    """
    from mmengine.config import Config
    detector = None
    if isinstance(config, Config):
        cfg = config
    elif isinstance(config, (str, Path)) and (str(config).endswith('.py') or '::' in str(config)):
        from kdlab.zoo import load_config
        cfg = load_config(str(config))
    else:
        from kdlab.zoo import detector_config
        detector = str(config)
        cfg = detector_config(detector, scale)
    detector = detector or _zoo_name(cfg)
    model = build_detector(cfg)
    if checkpoint is not None:
        load_weights(model, str(checkpoint), what=f'checkpoint of {role}')
    model.eval()
    label = name or f'{role} ({detector or Path(str(config)).stem}{"" if checkpoint else ", untrained"})'
    return Detector(label, role, model, cfg, str(checkpoint) if checkpoint else None, detector)


def _record_detector(record: dict, store, role: str, label: str, zoo: Optional[str]) -> Detector:
    from mmengine.config import Config
    cfg = Config.fromfile(str(store.run_dir(record['key']) / 'config.py'))
    model = build_detector(cfg)
    load_weights(model, record['checkpoint'], what=f'checkpoint of run {record["key"]} ({record["name"]})')
    model.eval()
    return Detector(label, role, model, cfg, record['checkpoint'], zoo, (record.get('metrics') or {}).get('mAP'))


def default_detectors(scale: str = 'smoke', *, store=None, train: Optional[bool] = None, progress: bool = False,
                      roles: Sequence[str] = DEFAULT_ROLES, **demo_kwargs) -> Dict[str, Detector]:
    """The embedded defaults: the demo's teacher / baseline / distilled student at ``scale`` from the run store.

    The runs are the ones ``kdlab demo --scale <scale>`` trains (:data:`kdlab.demo.DEFAULTS`, planned by
    :func:`kdlab.engine.planner.plan_pair`, so the keys are known before anything is trained). ``train``: train
    the missing runs (:func:`kdlab.demo.run`); None = only at ``smoke`` scale (seconds). ``demo_kwargs``
    (teacher, student, method, schedule, ...) pick another trio. Returns ``{role: Detector}`` with roles
    ``'teacher'``, ``'baseline'``, ``'distilled'``.
    """
    from kdlab.demo import DEFAULTS
    from kdlab.engine.planner import plan_pair
    from kdlab.engine.store import RunStore
    store = store or RunStore()
    opts = {**DEFAULTS, **demo_kwargs}
    teacher, student, method = opts.pop('teacher'), opts.pop('student'), opts.pop('method')
    seed, data_root = opts.pop('seed', 0), opts.pop('data_root', None)
    plan = plan_pair(student, [teacher], method, scale, seed=seed, data_root=data_root, **opts)
    keys = {'teacher': plan.rows[f'teacher:{teacher}'], 'baseline': plan.rows['baseline'],
            'distilled': plan.rows['distilled']}
    records = {role: store.load(key) for role, key in keys.items()}
    missing = [role for role, rec in records.items() if rec is None]
    if missing:
        if train is None:
            train = scale == 'smoke'
        if not train:
            raise KdlabError(f'the default {", ".join(missing)} run(s) at scale {scale!r} are not in the run store '
                             f'{store.root}',
                             f'train them with `kdlab demo --scale {scale}` (or pass train=True), or give your own '
                             'checkpoints (models={"teacher": (config, checkpoint), ...})')
        from kdlab.demo import run
        run(scale, store=store, progress=progress, seed=seed, data_root=data_root, teacher=teacher, student=student,
            method=method, **opts)
        records = {role: store.load(key) for role, key in keys.items()}
    labels = {'teacher': 'teacher', 'baseline': 'baseline student', 'distilled': f'{method.upper()} student'}
    zoo = {'teacher': teacher, 'baseline': student, 'distilled': student}
    return {role: _record_detector(records[role], store, role, f'{labels[role]} ({zoo[role]})', zoo[role])
            for role in roles if role in records}


def detectors(models: Union[None, Mapping[str, object]] = None, *, scale: str = 'smoke', store=None,
              train: Optional[bool] = None, roles: Sequence[str] = DEFAULT_ROLES,
              demo_options: Optional[Mapping[str, object]] = None) -> Dict[str, Detector]:
    """The notebooks' ``models`` parameter -> ``{role: Detector}``.

    ``None``: :func:`default_detectors`. A mapping ``{role: spec}`` with ``spec`` a :class:`Detector`, a
    ``(config, checkpoint)`` pair, a ``{'config':..., 'checkpoint':..., 'scale':..., 'name':...}`` dict or a
    bare config (random weights). The first role is the reference (the "teacher") in comparisons.
    ``roles``: which of the defaults to load; ``demo_options``: another demo trio (``kdlab demo``'s options:
    teacher, student, method, schedule, teacher_schedule, seed); both ignored for user-given models.
    """
    if models is None:
        return default_detectors(scale, store=store, train=train, roles=roles, **dict(demo_options or {}))
    out = {}
    for role, spec in models.items():
        if isinstance(spec, Detector):
            out[role] = spec
        elif isinstance(spec, Mapping):
            out[role] = load_detector(spec['config'], spec.get('checkpoint'), scale=spec.get('scale', scale),
                                      role=role, name=spec.get('name'))
        elif isinstance(spec, (list, tuple)):
            config, checkpoint = (list(spec) + [None])[:2]
            out[role] = load_detector(config, checkpoint, scale=scale, role=role)
        else:
            out[role] = load_detector(spec, None, scale=scale, role=role)
    if not out:
        raise KdlabError('models is empty', 'pass None (the embedded defaults) or {role: (config, checkpoint)}')
    return out


# ----------------------------------------------------------------------------------------- features
def _test_pipeline(cfg, input_size: Optional[Tuple[int, int]]):
    from mmcv.transforms import Compose
    import mmdet.datasets  # noqa: F401  (registers mmdet's transforms)
    from mmengine.registry import DefaultScope
    steps = []
    try:
        source = cfg.test_dataloader.dataset.pipeline
    except AttributeError:
        source = []
    for step in source:
        step = dict(step)
        kind = str(step.get('type', '')).split('.')[-1]
        if kind in ('LoadImageFromFile', 'LoadAnnotations', 'LoadPanopticAnnotations', 'PackDetInputs'):
            continue
        if kind == 'Resize' and input_size is not None:
            step['scale'] = (int(input_size[1]), int(input_size[0]))
        steps.append(step)
    if input_size is not None and not any(str(s.get('type', '')).endswith('Resize') for s in steps):
        steps.append(dict(type='Resize', scale=(int(input_size[1]), int(input_size[0])), keep_ratio=True))
    steps = ([dict(type='mmdet.LoadImageFromNDArray')] + steps
             + [dict(type='mmdet.PackDetInputs', meta_keys=('img_id', 'ori_shape', 'img_shape', 'scale_factor'))])
    with DefaultScope.overwrite_default_scope('mmdet'):
        return Compose(steps)


def preprocess(detector: Detector, image: SampleImage, *, input_size: Optional[Tuple[int, int]] = None):
    """One image -> ``(inputs (1, 3, H, W), [data_sample])`` as the model sees it in testing.

    ``input_size = (h, w)`` overrides the test pipeline's resize scale (keep-ratio).
    """
    pipeline = _test_pipeline(detector.cfg, input_size)
    packed = pipeline(dict(img=np.ascontiguousarray(image.image[..., ::-1]), img_id=0))  # mmdet loads BGR
    with torch.no_grad():
        data = detector.model.data_preprocessor(dict(inputs=[packed['inputs']],
                                                     data_samples=[packed['data_samples']]), False)
    return data['inputs'], data['data_samples']


def level_stride(feat_hw: Tuple[int, int], input_hw: Tuple[int, int], *, previous: Optional[int] = None) -> int:
    """The stride of a neck output of size ``feat_hw`` on a padded input of size ``input_hw``: the smallest power
    of two ``s`` with ``ceil(H / s), ceil(W / s) == feat_hw`` (convolutions with padding round up), and more than
    ``previous`` (the level before: FPN strides double), e.g. 3x3 and 2x2 maps of a 160-px input are P6 and P7."""
    s = 1
    while s < 4096 and not (math.ceil(input_hw[0] / s) == feat_hw[0] and math.ceil(input_hw[1] / s) == feat_hw[1]):
        s *= 2
    if s >= 4096:            # no power of two fits exactly (an unusual neck): the nearest one
        s = 2 ** int(round(math.log2(max(input_hw[0] / feat_hw[0], input_hw[1] / feat_hw[1]))))
    if previous is not None and s <= previous:
        s = 2 * previous
    return s


def extract_fpn(detector: Detector, images: Sequence[SampleImage], *,
                input_size: Optional[Tuple[int, int]] = None) -> List[FeatureMaps]:
    """``model.extract_feat`` of each image (the neck's outputs), per level cropped to the image area."""
    out = []
    for image in images:
        inputs, samples = preprocess(detector, image, input_size=input_size)
        with torch.no_grad():
            feats = detector.model.extract_feat(inputs)
        if isinstance(feats, torch.Tensor):
            feats = (feats,)
        h, w = samples[0].metainfo['img_shape'][:2]
        pad_h, pad_w = inputs.shape[-2:]
        levels, maps, strides = [], [], []
        for f in feats:
            stride = level_stride(f.shape[-2:], (pad_h, pad_w), previous=strides[-1] if strides else None)
            level = int(math.log2(stride))
            levels.append(f'P{level}')
            strides.append(stride)
            maps.append(f[0, :, :int(math.ceil(h / stride)), :int(math.ceil(w / stride))].float())
        sf = samples[0].metainfo.get('scale_factor', (1.0, 1.0))
        out.append(FeatureMaps(image, levels, maps, strides, (int(h), int(w)), (float(sf[0]), float(sf[1]))))
    return out


def extract_all(dets: Mapping[str, Detector], images: Sequence[SampleImage], **kwargs) -> Dict[str, List[FeatureMaps]]:
    """:func:`extract_fpn` for every detector: ``{role: [FeatureMaps per image]}``."""
    return {role: extract_fpn(d, images, **kwargs) for role, d in dets.items()}


def labelled(dets: Mapping[str, Detector], values: Mapping[str, object]) -> Dict[str, object]:
    """``{role: x}`` -> ``{detector label: x}`` (the names plots show), in the same order."""
    return {dets[role].name: v for role, v in values.items()}


def predict_boxes(detector: Detector, images: Sequence[SampleImage], *, score_thr: float = 0.3,
                  max_boxes: int = 100) -> List[np.ndarray]:
    """The detector's candidate boxes per image, ``(K, 4)`` xyxy in the original image's pixels.

    DFMSD's masking enhancement takes "the candidate boxes of the previous-stage teacher": this is that input.
    """
    out = []
    for image in images:
        inputs, samples = preprocess(detector, image)
        with torch.no_grad():
            pred = detector.model.predict(inputs, samples, rescale=True)[0].pred_instances
        keep = pred.scores >= score_thr
        boxes = pred.bboxes[keep][:max_boxes]
        out.append(boxes.detach().cpu().numpy().astype(np.float32).reshape(-1, 4))
    return out


# ------------------------------------------------------------------------------------------- statistics
def _level_pairs(ref: FeatureMaps, other: FeatureMaps, pairing: str):
    from kdlab.core.levels import pair_levels
    return pair_levels(other.levels, ref.levels, pairing=pairing, num_levels=len(other.levels))


def _flat(maps: Sequence[torch.Tensor]) -> torch.Tensor:
    """``[(C, h_i, w_i)] -> (1, C, 1, sum h_i w_i)``: all positions of all images, per channel."""
    return torch.cat([m.reshape(m.shape[0], -1) for m in maps], dim=1)[None, :, None, :]


def channel_stats(reference: Sequence[FeatureMaps], other: Sequence[FeatureMaps], *, pairing: str = 'stride',
                  name: str = 'student') -> 'pandas.DataFrame':
    """Per paired level and channel: Pearson r of ``other`` with ``reference`` (the teacher) over all positions
    of all images, and each model's mean ``|F|``, mean and std of the channel.

    Student maps are resized to the teacher's size where they differ
    (:func:`kdlab.core.normalize.resize_like`, as PKD does). Columns: ``model, level, channel, pearson_r,
    teacher_abs, student_abs, teacher_mean, student_mean, teacher_std, student_std``.
    """
    import pandas as pd
    from kdlab.core.normalize import pearson_per_channel, resize_like
    rows = []
    for pair in _level_pairs(reference[0], other[0], pairing):
        t_maps = [f.maps[pair.teacher_index] for f in reference]
        s_maps = [resize_like(o.maps[pair.student_index], t) for o, t in zip(other, t_maps)]
        if s_maps[0].shape[0] != t_maps[0].shape[0]:
            raise KdlabError(f'{name} has {s_maps[0].shape[0]} channels at {pair.name}, the teacher '
                             f'{t_maps[0].shape[0]}: channels cannot be paired', 'compare models of equal widths')
        t, s = _flat(t_maps), _flat(s_maps)
        r = pearson_per_channel(s, t)
        tv, sv = t[0, :, 0], s[0, :, 0]
        for c in range(tv.shape[0]):
            rows.append(dict(model=name, level=pair.name, channel=c, pearson_r=float(r[c]),
                             teacher_abs=float(tv[c].abs().mean()), student_abs=float(sv[c].abs().mean()),
                             teacher_mean=float(tv[c].mean()), student_mean=float(sv[c].mean()),
                             teacher_std=float(tv[c].std()), student_std=float(sv[c].std())))
    return pd.DataFrame(rows)


def compare_to_teacher(feats: Mapping[str, Sequence[FeatureMaps]], *, teacher: Optional[str] = None,
                       pairing: str = 'stride', labels: Optional[Mapping[str, str]] = None) -> 'pandas.DataFrame':
    """:func:`channel_stats` of every model against ``teacher`` (default: the first role), stacked."""
    import pandas as pd
    roles = list(feats)
    teacher = teacher or roles[0]
    frames = [channel_stats(feats[teacher], feats[r], pairing=pairing, name=(labels or {}).get(r, r))
              for r in roles if r != teacher]
    if not frames:
        raise KdlabError('compare_to_teacher needs a teacher and at least one other model',
                         f'got only {roles}')
    return pd.concat(frames, ignore_index=True)


def level_summary(stats: 'pandas.DataFrame') -> 'pandas.DataFrame':
    """Per model and level: median and mean Pearson r, share of channels with r < 0.5, and the magnitudes
    (mean over channels of mean ``|F|``; the student / teacher ratio; the spread of channel magnitudes as the
    coefficient of variation of ``teacher_abs`` and ``student_abs``)."""
    g = stats.groupby(['model', 'level'], sort=False)
    out = g.agg(channels=('channel', 'size'), r_median=('pearson_r', 'median'), r_mean=('pearson_r', 'mean'),
                r_below_05=('pearson_r', lambda r: float((r < 0.5).mean())),
                teacher_abs=('teacher_abs', 'mean'), student_abs=('student_abs', 'mean'),
                teacher_abs_cv=('teacher_abs', lambda v: float(v.std() / v.mean()) if v.mean() else float('nan')),
                student_abs_cv=('student_abs', lambda v: float(v.std() / v.mean()) if v.mean() else float('nan')))
    out['abs_ratio'] = out['student_abs'] / out['teacher_abs']
    return out.reset_index()


def value_sample(feats: Sequence[FeatureMaps], level: str, *, max_values: int = 20000, seed: int = 0) -> np.ndarray:
    """Up to ``max_values`` feature values of ``level`` over all images and channels (a seeded subsample)."""
    values = torch.cat([f.level(level).reshape(-1) for f in feats]).numpy()
    if values.size > max_values:
        values = np.random.default_rng(seed).choice(values, max_values, replace=False)
    return values
