"""Pretrained mini backbones: the mini scale's stand-in for ImageNet weights (issue "Mini scale v2", item 1).

The papers' students and teachers start from ImageNet-pretrained backbones, which is why a COCO 1x schedule is
near convergence. kdlab's mini v2 backbones (``kdlab.zoo.MINI_V2_BACKBONES``) are pretrained the same way, once,
on an image-classification task that is not the detection data:

* the images (:func:`render_example`, 64 x 64, generated on the fly and seeded, never stored) show one object of
  one of the 22 shapes of :data:`kdlab.data.synthetic.SHAPES` (a superset of the detection categories, as
  ImageNet's classes include COCO's), at a random scale, angle, fill and texture, on a crop of one of
  scikit-image's photographs or a synthetic background, with unannotated clutter under and over it;
* a pool of 32,000 training images (generated once, cached in ``~/.cache/kdlab/pretrain/``, seconds to
  rebuild: 7 ms an image), seen with random flips; a separate set of 2,000 images measures top-1 accuracy;
* the backbone is followed by global average pooling and one linear layer (dropped after training), trained with
  AdamW, a cosine schedule and label smoothing 0.1, input normalised as the mini detectors normalise theirs.

``kdlab pretrain`` trains every backbone (or those named), resumes an interrupted one from its last epoch
(``~/.cache/kdlab/pretrain/<backbone>/``, or on another machine from its park in the run store: ``kdlab park``,
``kdlab pretrain ... --park``, :func:`kdlab.engine.park.park_pretraining`), and writes the backbone's weights in
fp16, a few MB each, to ``kdlab/zoo/pretrained/<backbone>-<sha256[:8]>.pth`` with ``index.json`` (file, sha256,
accuracy, epochs, seconds): committed, so that a new machine does not pretrain again. The mini v2 detectors load
them through ``init_cfg=dict(type='Pretrained', checkpoint='kdlab://pretrained/<file>')`` (:func:`pretrained_init`;
a Swin through ``kdlab://classifier/<file>``, the layout mmdet's Swin loader reads), a machine-independent name that
mmengine resolves through the ``kdlab://`` scheme (registered in :mod:`kdlab.compat`).
"""
from __future__ import annotations

import hashlib
import json
import math
import time
from pathlib import Path
from typing import Dict, Optional, Sequence

import numpy as np

from kdlab.errors import KdlabError

#: The classes of the pretraining task.
from kdlab.data.synthetic import SHAPES as CLASSES  # noqa: E402

IMAGE_SIZE = 64
VAL_IMAGES = 2000
#: Training images, epochs over them, batch size and peak learning rate: the same for every backbone.
TRAIN_IMAGES, EPOCHS, BATCH, LR = 32000, 16, 64, 2e-3
#: Weights are written only above this multiple of chance top-1: a stand-in that learnt nothing (the Swin ones with
#: the committed recipe, docs/mini_v2.md) is not called pretrained.
MIN_TOP1_OVER_CHANCE = 3.0
#: Per-architecture part of the recipe, ``backbone -> (steps, ramp)``: the first ``steps`` steps of the schedule draw
#: silhouettes (:func:`render_silhouette`) instead of pool images, then the share of pool images in each batch rises
#: linearly to all of it over ``ramp`` steps; the schedule's length and optimizer stay the recipe's.
#: Why the Swin stand-ins (docs/mini_v2.md, "The Swin stand-ins"): on the ResNets' recipe they stay at chance
#: (ten epochs, four learning rates, a convolutional stem tried), while learning silhouettes at once; the papers'
#: Swin backbones were not pretrained with ResNet's ImageNet recipe either (Swin's own: 300 epochs, heavy
#: augmentation). 300 / 1,200 steps are the first values tried (2026-12-06), not tuned. ``--silhouette-warmup``.
SILHOUETTE_WARMUP = {'swin_t': (300, 1200), 'swin_s': (300, 1200)}
#: Per-architecture peak learning rate, where it is not :data:`LR`. The Swin stand-ins (with their warm-up) at half
#: the ResNets' rate: Swin-T's top-1 after 16 epochs 1e-3: 31.7 %, 2e-3: 22.4 % (2026-12-06, docs/mini_v2.md),
#: as Swin's own ImageNet recipe trains at a lower rate than ResNet's. Two values measured, the better kept.
LEARNING_RATE = {'swin_t': 1e-3, 'swin_s': 1e-3}
#: The silhouettes the warm-up draws from.
SILHOUETTE_IMAGES = 10000
#: The mini detectors' input normalisation (kdlab.zoo.mini_model), here in RGB.
MEAN, STD = (123.675, 116.28, 103.53), (58.395, 57.12, 57.375)

PRETRAINED_DIR = Path(__file__).resolve().parent / 'pretrained'
from kdlab.compat import KDLAB_SCHEME as SCHEME  # noqa: E402  (registered with mmengine there, compat fix 9)


# --------------------------------------------------------------------------------------------- images
def render_example(split: str, index: int, *, size: int = IMAGE_SIZE, seed: int = 0):
    """``(uint8 size x size x 3 RGB image, class index)`` of example ``index`` of ``split`` ('train', 'val')."""
    from kdlab.data.scenes import SceneSpec, clutter_mask, draw_object, scene_background
    rng = np.random.default_rng([seed, {'train': 0, 'val': 1}[split], index, 7])
    label = int(rng.integers(len(CLASSES)))
    canvas, _ = scene_background(rng, SceneSpec(), size, size)     # the scenes' mix of backgrounds
    for _ in range(int(rng.integers(0, 4))):
        draw_object(rng, canvas, clutter_mask(rng, size, size, thin=False))
    mask = _placed_shape(rng, label, size)
    draw_object(rng, canvas, mask)
    for _ in range(int(rng.integers(0, 3))):
        draw_object(rng, canvas, clutter_mask(rng, size, size, thin=True))
    return np.clip(canvas, 0, 255).astype(np.uint8), label


def _placed_shape(rng, label: int, size: int):
    """The mask of shape ``CLASSES[label]`` at a random scale (0.45-0.95 of the image), position and angle."""
    from kdlab.data.scenes import polygon_mask
    from kdlab.data.synthetic import shape_polygon
    extent = rng.uniform(0.45, 0.95) * size
    cx, cy = (rng.uniform(extent * 0.4, size - extent * 0.4) for _ in range(2))
    return polygon_mask(shape_polygon(CLASSES[label], cx, cy, extent, rng.uniform(0, 2 * math.pi)), size, size)


def render_silhouette(index: int, *, size: int = IMAGE_SIZE, seed: int = 0):
    """``(uint8 image, class index)``: example ``index`` of the silhouette warm-up (:data:`SILHOUETTE_WARMUP`), the
    shape alone, white on black, placed as :func:`render_example` places it; no background, texture or clutter."""
    rng = np.random.default_rng([seed, 2, index, 7])
    label = int(rng.integers(len(CLASSES)))
    image = np.zeros((size, size, 3), np.uint8)
    image[_placed_shape(rng, label, size) > 0] = 255
    return image, label


def silhouette_pool(count: int, seed: int = 0):
    """``(uint8 N x 64 x 64 x 3, int64 N)``: silhouettes ``0..count-1`` (0.15 s a thousand; not cached)."""
    data = [render_silhouette(i, seed=seed) for i in range(count)]
    return np.stack([d[0] for d in data]), np.array([d[1] for d in data], np.int64)


def silhouettes_in_batch(step: int, batch: int, warmup) -> int:
    """How many of step ``step``'s ``batch`` images are silhouettes under ``warmup = (steps, ramp)``: all of them
    for the first ``steps`` steps, then linearly fewer, none from step ``steps + ramp`` on."""
    start, ramp = warmup
    return batch - int(round(batch * min(1.0, max(0.0, (step - start) / max(1, ramp)))))


def image_pool(split: str, count: int, seed: int = 0, progress: bool = True):
    """``(uint8 N x 64 x 64 x 3 images, int64 N labels)``: examples ``0..count-1`` of ``split``, generated once
    and cached as ``.npz`` beside the pretraining checkpoints."""
    import numpy as np
    path = _cache_root() / f'pool-{split}-{count}-{seed}-{IMAGE_SIZE}.npz'
    if path.is_file():
        with np.load(path) as data:
            return data['images'], data['labels']
    indices = range(count)
    if progress:
        from kdlab.progress import progress_bar
        indices = progress_bar(indices, desc=f'pretraining images ({split})', unit='img', leave=False)
    images = np.empty((count, IMAGE_SIZE, IMAGE_SIZE, 3), np.uint8)
    labels = np.empty(count, np.int64)
    for i in indices:
        images[i], labels[i] = render_example(split, i, seed=seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.stem + '.tmp.npz')
    np.savez(tmp, images=images, labels=labels)
    tmp.replace(path)
    return images, labels


def to_tensor(images):
    """uint8 ``N x H x W x 3`` RGB -> float ``N x 3 x H x W``, normalised as the mini detectors' inputs."""
    import torch
    x = torch.as_tensor(images).float()
    return ((x - torch.tensor(MEAN)) / torch.tensor(STD)).permute(0, 3, 1, 2).contiguous()


# --------------------------------------------------------------------------------------------- models
class _quiet_mmengine:
    """mmengine logs every parameter's initialisation at INFO: keep it to warnings while building."""

    def __enter__(self):
        import logging
        from mmengine.logging import MMLogger
        self.logger = MMLogger.get_current_instance()
        self.level = self.logger.level
        self.logger.setLevel(logging.WARNING)

    def __exit__(self, *exc):
        self.logger.setLevel(self.level)


def classifier(backbone: str):
    """A mini v2 backbone (``kdlab.zoo.MINI_V2_BACKBONES``) + global average pooling + a linear layer."""
    import copy
    import torch
    from torch import nn
    from mmdet.registry import MODELS
    from mmengine.registry import init_default_scope
    from kdlab.zoo import MINI_V2_BACKBONES
    if backbone not in MINI_V2_BACKBONES:
        from kdlab.errors import UnknownNameError
        raise UnknownNameError('mini backbone', backbone, MINI_V2_BACKBONES)
    init_default_scope('mmdet')
    cfg, channels = MINI_V2_BACKBONES[backbone]

    class Classifier(nn.Module):
        def __init__(self):
            super().__init__()
            self.backbone = MODELS.build(copy.deepcopy(cfg))
            with _quiet_mmengine():
                self.backbone.init_weights()
            self.head = nn.Linear(channels[-1], len(CLASSES))

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.head(self.backbone(x)[-1].mean(dim=(2, 3)))

    return Classifier()


def _accuracy(model, x, y, batch: int = 250) -> float:
    import torch
    model.eval()
    with torch.no_grad():
        right = sum(int((model(x[i:i + batch]).argmax(1) == y[i:i + batch]).sum()) for i in range(0, len(y), batch))
    model.train()
    return 100.0 * right / max(len(y), 1)


def _cache_root() -> Path:
    from kdlab.data.synthetic import cache_root
    return cache_root().parent / 'pretrain'


def _cache_dir(backbone: str) -> Path:
    return _cache_root() / backbone


def architecture(backbone: str) -> str:
    """The stand-in's definition (``kdlab.zoo.MINI_V2_BACKBONES``) as text: kept with its weights, so that weights
    of another stand-in of the same name are never loaded into it, nor a pretraining state resumed."""
    from kdlab.zoo import MINI_V2_BACKBONES
    return repr(MINI_V2_BACKBONES[backbone][0]) if backbone in MINI_V2_BACKBONES else ''


def pretrain(backbone: str, *, epochs: int = EPOCHS, train_images: int = TRAIN_IMAGES, batch: int = BATCH,
             lr: Optional[float] = None, val_images: int = VAL_IMAGES, seed: int = 0, out_dir: Optional[Path] = None,
             progress: bool = True, cache: Optional[Path] = None,
             min_over_chance: float = MIN_TOP1_OVER_CHANCE, silhouette_warmup='recipe') -> dict:
    """Pretrain ``backbone``; returns its index entry (and writes its weights to ``out_dir``).

    An interrupted call resumes from the last finished epoch in ``cache`` (default
    ``~/.cache/kdlab/pretrain/<backbone>/``). A final top-1 below ``min_over_chance`` times chance raises
    instead of writing weights. ``silhouette_warmup``: ``(steps, ramp)``, ``None`` for none, or ``'recipe'``:
    the backbone's entry in :data:`SILHOUETTE_WARMUP` (none for the ResNets). ``lr``: the backbone's rate
    (:data:`LEARNING_RATE`, else :data:`LR`) when None."""
    import torch
    if lr is None:
        lr = LEARNING_RATE.get(backbone, LR)
    if silhouette_warmup == 'recipe':
        silhouette_warmup = SILHOUETTE_WARMUP.get(backbone)
    settings = dict(epochs=epochs, train_images=train_images, batch=batch, lr=lr, seed=seed,
                    image_size=IMAGE_SIZE, val_images=val_images)
    if silhouette_warmup:                    # only then: the ResNets' settings (and resume keys) stay as they were
        settings['silhouette_warmup'] = [int(v) for v in silhouette_warmup]
        shapes_x, shapes_y = silhouette_pool(SILHOUETTE_IMAGES, seed)
    # a state is resumed only by the same recipe on the same stand-in (v2's X101 is not v1's)
    resume_key = dict(settings, architecture=architecture(backbone))
    train_x, train_y = image_pool('train', train_images, seed, progress)
    val_x, val_y = image_pool('val', val_images, seed, progress)
    val_t, val_l = to_tensor(val_x), torch.as_tensor(val_y)
    torch.manual_seed(seed)
    model = classifier(backbone)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.05)
    per_epoch = math.ceil(train_images / batch)
    steps = epochs * per_epoch
    warm = max(1, min(200, steps // 10))
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda i: (i + 1) / warm if i < warm else
                                              0.5 * (1 + math.cos(math.pi * (i - warm) / max(1, steps - warm))))
    cache = Path(cache) if cache is not None else _cache_dir(backbone)
    cache.mkdir(parents=True, exist_ok=True)
    state_file = cache / 'last.pth'
    from kdlab.engine import park
    from kdlab.engine.store import RunStore
    store = RunStore()
    if park.unpark_pretraining(store, backbone, resume_key, state_file) and progress:   # another machine's state
        print(f'{backbone}: resumed from its parked state in {park.pretraining_dir(store, backbone, resume_key)}')
    first, history, seconds, parks = 0, [], 0.0, []
    if state_file.is_file():
        state = torch.load(state_file, map_location='cpu', weights_only=False)
        if state.get('resume_key') == resume_key:
            model.load_state_dict(state['model'])
            opt.load_state_dict(state['opt'])
            sched.load_state_dict(state['sched'])
            first, history, seconds = state['epoch'], state['history'], state['seconds']
            parks = state.get('parks', [])        # where the parts before each park ran
    loss_fn = torch.nn.CrossEntropyLoss(label_smoothing=0.1)
    bar = None
    if progress:
        from kdlab.progress import progress_bar
        bar = progress_bar(total=steps, initial=first * per_epoch, desc=f'pretrain {backbone}', unit='it')
    for epoch in range(first, epochs):
        t0 = time.time()
        g = torch.Generator().manual_seed(seed * 1000 + epoch)
        order = torch.randperm(train_images, generator=g)
        for i in range(per_epoch):
            idx = order[i * batch:(i + 1) * batch].numpy()
            images, labels = train_x[idx], train_y[idx]
            if silhouette_warmup:
                shapes = silhouettes_in_batch(epoch * per_epoch + i, len(idx), silhouette_warmup)
                if shapes:
                    pick = torch.randint(len(shapes_y), (shapes,), generator=g).numpy()
                    images = np.concatenate([images[shapes:], shapes_x[pick]])
                    labels = np.concatenate([labels[shapes:], shapes_y[pick]])
            x = to_tensor(images)
            flip = torch.rand(len(idx), generator=g) < 0.5
            x[flip] = x[flip].flip(3)
            loss = loss_fn(model(x), torch.as_tensor(labels))
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            if bar is not None:
                bar.update(1)
                bar.set_postfix(loss=f'{loss.item():.3f}', refresh=False)
        acc = _accuracy(model, val_t, val_l)
        seconds += time.time() - t0
        history.append(dict(epoch=epoch + 1, top1=round(acc, 2), loss=round(loss.item(), 4)))
        tmp = state_file.with_suffix('.tmp')
        torch.save(dict(model=model.state_dict(), opt=opt.state_dict(), sched=sched.state_dict(), epoch=epoch + 1,
                        history=history, seconds=seconds, settings=settings, resume_key=resume_key,
                        parks=parks), tmp)
        tmp.replace(state_file)      # atomic: an interruption leaves the previous epoch's state
    if bar is not None:
        bar.close()
    top1 = history[-1]['top1'] if history else 0.0
    if top1 < min_over_chance * 100.0 / len(CLASSES):
        raise KdlabError(f'{backbone}: top-1 {top1:.1f} % after {len(history)} epochs, within '
                         f'{min_over_chance:g}x chance ({100.0 / len(CLASSES):.1f} %): the stand-in learnt nothing '
                         'that carries to new images, so no weights are written (a detector would start from noise '
                         f'that calls itself pretrained); its state stays in {state_file}',
                         'see docs/mini_v2.md (the Swin stand-ins) for what has been tried')
    entry = export(backbone, model, history, seconds, out_dir=out_dir,
                   settings=dict(settings, parks=parks) if parks else settings)
    park.discard_pretraining(store, backbone, resume_key)      # its weights are written: the park has served
    return entry


def park_state(backbone: str, *, cache: Optional[Path] = None) -> dict:
    """Park the unfinished pretraining state in ``cache`` (default ``~/.cache/kdlab/pretrain/<backbone>/``) in the
    run store, for another machine to resume (``kdlab pretrain ... --park``;
    :func:`kdlab.engine.park.park_pretraining`)."""
    from kdlab.engine import park
    from kdlab.engine.store import RunStore
    state_file = (Path(cache) if cache is not None else _cache_dir(backbone)) / 'last.pth'
    if not state_file.is_file():
        raise KdlabError(f'no pretraining state of {backbone} in {state_file.parent}',
                         'park it on the machine that trains it, with the arguments it was started with')
    return park.park_pretraining(RunStore(), backbone, state_file)


def export(backbone: str, model, history, seconds: float, *, out_dir: Optional[Path] = None,
           settings: Optional[dict] = None) -> dict:
    """Write the backbone's weights (fp16) as ``<backbone>-<sha8>.pth`` and its entry in ``index.json``."""
    import io
    import torch
    out_dir = Path(out_dir) if out_dir is not None else PRETRAINED_DIR
    out_dir.mkdir(parents=True, exist_ok=True)
    weights = {k: (v.half() if v.is_floating_point() else v) for k, v in model.backbone.state_dict().items()}
    buf = io.BytesIO()
    torch.save({'state_dict': weights}, buf)
    data = buf.getvalue()
    sha = hashlib.sha256(data).hexdigest()
    name = f'{backbone}-{sha[:8]}.pth'
    (out_dir / name).write_bytes(data)
    entry = dict(file=name, sha256=sha, bytes=len(data), top1=history[-1]['top1'] if history else None,
                 history=history, seconds=round(seconds, 1), classes=len(CLASSES), **(settings or {}),
                 architecture=architecture(backbone))
    import fcntl
    from kdlab.engine.store import atomic_write_text
    index_path = out_dir / 'index.json'
    with open(out_dir / '.index.lock', 'w') as lock:     # several backbones may finish at once
        fcntl.flock(lock, fcntl.LOCK_EX)
        index = json.loads(index_path.read_text()) if index_path.is_file() else {}
        replaced = index.get(backbone, {}).get('file')
        if replaced and replaced != name and all(e.get('file') != replaced for k, e in index.items() if k != backbone):
            (out_dir / replaced).unlink(missing_ok=True)     # the weights this entry named before, kept nowhere else
        index[backbone] = entry
        atomic_write_text(index_path, json.dumps(dict(sorted(index.items())), indent=1) + '\n')
    return entry


# ------------------------------------------------------------------------------------------ loading them
def pretrained_index(directory: Optional[Path] = None) -> Dict[str, dict]:
    path = Path(directory or PRETRAINED_DIR) / 'index.json'
    return json.loads(path.read_text()) if path.is_file() else {}


#: ``kdlab://pretrained/<file>``: a committed file as written, its keys bare (what mmengine's ``PretrainedInit``
#: loads into a ResNet)
PRETRAINED = 'pretrained/'
#: ``kdlab://classifier/<file>``: the same committed weights, served in an image classifier's layout (every key under
#: ``backbone.``, as in mmpretrain's ImageNet checkpoints). mmdet's ``SwinTransformer.init_weights`` loads its
#: ``Pretrained`` checkpoint itself and keeps only the ``backbone.`` keys (with ``convert_weights=False``), so the
#: bare layout would leave it empty ("list index out of range").
CLASSIFIER = 'classifier/'
#: the mini v2 backbone types whose mmdet class reads the classifier layout
READS_CLASSIFIER_LAYOUT = ('SwinTransformer',)


def pretrained_init(backbone: str) -> dict:
    """The ``init_cfg`` that loads ``backbone``'s committed pretrained weights; raises naming the fix if none."""
    entry = pretrained_index().get(backbone)
    if entry is None or not (PRETRAINED_DIR / entry['file']).is_file():
        raise KdlabError(f'no pretrained weights for the mini backbone {backbone!r} in {PRETRAINED_DIR}',
                         f'run `kdlab pretrain {backbone}` (CPU minutes; the weights are then committed)')
    if entry.get('architecture') != architecture(backbone):
        raise KdlabError(f'the pretrained weights of {backbone!r} in {PRETRAINED_DIR} are of another stand-in '
                         f'({entry.get("architecture") or "unrecorded"}; now {architecture(backbone)})',
                         f'run `kdlab pretrain {backbone}` to pretrain the current one (its weights are then '
                         'committed)')
    from kdlab.zoo import MINI_V2_BACKBONES
    layout = CLASSIFIER if MINI_V2_BACKBONES[backbone][0]['type'] in READS_CLASSIFIER_LAYOUT else PRETRAINED
    return dict(type='Pretrained', checkpoint=f'{SCHEME}{layout}{entry["file"]}')


def layout_of(uri: str) -> str:
    """:data:`PRETRAINED` or :data:`CLASSIFIER`, as ``uri`` (``kdlab://<layout><file>``) names it; raises if neither."""
    rel = uri[len(SCHEME):]
    layout = next((d for d in (PRETRAINED, CLASSIFIER) if rel.startswith(d)), None)
    if layout is None:
        raise KdlabError(f'unknown kdlab checkpoint {uri!r}', f"kdlab:// names files under '{PRETRAINED}' or "
                         f"'{CLASSIFIER}'")
    return layout


def resolve(uri: str) -> Path:
    """``kdlab://pretrained/<file>`` (or ``kdlab://classifier/<file>``) -> the file in this checkout, checked against
    its sha256."""
    path = PRETRAINED_DIR / uri[len(SCHEME) + len(layout_of(uri)):]
    entry = next((e for e in pretrained_index().values() if e['file'] == path.name), None)
    if not path.is_file() or entry is None:
        raise KdlabError(f'{uri} is not in {PRETRAINED_DIR}', 'run `kdlab pretrain` or check out the committed '
                         'weights (git lfs is not used: they are plain files)')
    if hashlib.sha256(path.read_bytes()).hexdigest() != entry['sha256']:
        raise KdlabError(f'{path} does not match its sha256 in index.json', 'check it out again, or run '
                         '`kdlab pretrain` to rebuild it')
    return path


def classifier_layout(weights: dict) -> dict:
    """A backbone's state dict as an image classifier's checkpoint holds it (:data:`CLASSIFIER`): every key under
    ``backbone.``."""
    return {'state_dict': {f'backbone.{k}': v for k, v in weights.items()}}


def file_init(path, backbone_type: str) -> dict:
    """The ``init_cfg`` that loads the weights ``kdlab pretrain --out-dir`` wrote at ``path`` (a calibration trial's,
    not committed) into a backbone of mmdet type ``backbone_type``: the file itself, or for a type that reads the
    classifier layout (:data:`READS_CLASSIFIER_LAYOUT`) a copy in that layout beside the trials' cache, as
    ``kdlab://classifier/`` serves the committed ones."""
    import torch
    path = Path(path).resolve()
    if not path.is_file():
        raise KdlabError(f'no pretrained weights at {path}', 'write them with `kdlab pretrain BACKBONE --out-dir DIR`')
    if backbone_type not in READS_CLASSIFIER_LAYOUT:
        return dict(type='Pretrained', checkpoint=str(path))
    data = path.read_bytes()
    copy = _cache_root() / 'classifier' / f'{hashlib.sha256(data).hexdigest()[:16]}.pth'
    if not copy.is_file():
        state = torch.load(path, map_location='cpu', weights_only=False)['state_dict']
        copy.parent.mkdir(parents=True, exist_ok=True)
        tmp = copy.with_suffix('.tmp')
        torch.save(classifier_layout(state), tmp)
        tmp.replace(copy)
    return dict(type='Pretrained', checkpoint=str(copy))


def load_from_kdlab(filename, map_location=None):
    """mmengine's loader of ``kdlab://`` names (registered by ``import kdlab``, :mod:`kdlab.compat` fix 9, so that
    every process resolves them, a torchrun worker included)."""
    import torch
    checkpoint = torch.load(resolve(filename), map_location=map_location, weights_only=False)
    if layout_of(filename) == CLASSIFIER:
        checkpoint = classifier_layout(checkpoint['state_dict'])
    return checkpoint


# ------------------------------------------------------------------------------------------------- CLI
NAME = 'pretrain'


def main(args) -> int:
    from kdlab.zoo import MINI_V2_BACKBONES
    names: Sequence[str] = args.backbones or list(MINI_V2_BACKBONES)
    for name in names:
        out_dir = Path(args.out_dir) if args.out_dir else None
        # a trial's state: outside the repo (out_dir may be in it), apart from the committed recipe's, which it never
        # resumes; `kdlab park` finds it there
        cache = _cache_root() / 'trials' / hashlib.sha256(str(out_dir.resolve()).encode()).hexdigest()[:8] / name \
            if out_dir else None
        warmup = 'recipe' if args.silhouette_warmup is None else (tuple(args.silhouette_warmup)
                                                                  if any(args.silhouette_warmup) else None)
        if args.park:
            entry = park_state(name, cache=cache)
            print(f"{name}: epoch {entry['epoch']} of {entry['epochs']} (top-1 {entry['top1']} %) parked in the run "
                  f"store ({entry['bytes'] / 1e6:.1f} MB, recipe {entry['recipe']}); commit it: the same command "
                  'without --park resumes it on any machine')
            continue
        entry = pretrain(name, epochs=args.epochs, train_images=args.train_images, lr=args.lr,
                         progress=not args.quiet, out_dir=out_dir, cache=cache, silhouette_warmup=warmup)
        print(f"{name}: top-1 {entry['top1']:.1f}% after {len(entry['history'])} epochs, "
              f"{entry['seconds'] / 60:.1f} min -> {(out_dir or PRETRAINED_DIR) / entry['file']}")
    return 0


def register(sub) -> None:
    p = sub.add_parser('pretrain', help='pretrain the mini backbones (the mini scale\'s ImageNet weights)')
    p.add_argument('backbones', nargs='*', help='mini backbones (default: all)')
    p.add_argument('--epochs', type=int, default=EPOCHS)
    p.add_argument('--train-images', type=int, default=TRAIN_IMAGES)
    p.add_argument('--lr', type=float, help=f'peak learning rate of AdamW at batch {BATCH} (default: the '
                   f'backbone\'s, LEARNING_RATE, else {LR})')
    p.add_argument('--out-dir', help='write the weights and their index here instead of kdlab/zoo/pretrained '
                   '(a calibration trial: `kdlab calibrate --trial DETECTOR --pretrained FILE`)')
    p.add_argument('--silhouette-warmup', type=int, nargs=2, metavar=('STEPS', 'RAMP'),
                   help='silhouettes only for STEPS steps, then pool images rising to all over RAMP steps (default: '
                   'the backbone\'s recipe, SILHOUETTE_WARMUP: Swin 300 1200, ResNets none; 0 0: none)')
    p.add_argument('--park', action='store_true', help='park the unfinished state these arguments would resume in '
                   'the run store (float16 weights, bfloat16 AdamW state), instead of training; commit it '
                   '(`kdlab park` parks those in ~/.cache/kdlab/pretrain too)')
    p.add_argument('--quiet', action='store_true')
    p.set_defaults(func=main)
