"""The embedded default dataset: a seeded, deterministic COCO-format detection dataset.

It is built to exercise what the seed papers study:

* several categories of solid shapes whose class is given by their *shape* (colours are random), with
  instance masks (polygons) — so a detector must learn geometry, not a colour lookup;
* small, medium and large objects by COCO's area ranges (small < 32², medium < 96², large otherwise);
* two kinds of image: ``small``-dominated (many small objects, summed box area well under half the image)
  and ``large``-dominated (one to three medium/large objects covering most of it) — DFMSD's masking
  enhancement (Eq. 4) switches on exactly that box-area ratio;
* backgrounds with low-frequency content (smooth gradients, a few long-wavelength waves) and
  high-frequency content (fine stripes, checkerboards, pixel noise), so DFT analyses have both.

Every image is drawn from its own random stream, keyed by ``(seed, split, index)``: an image does not
change when the dataset grows, and two generations with the same spec give identical bytes (PNG, lossless).
Objects do not overlap, so masks and boxes are exact.
"""
from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import math
import os
import shutil
import tempfile
from pathlib import Path
from typing import Dict, Iterable, List, Optional, Sequence, Tuple

import numpy as np
from PIL import Image, ImageDraw

from kdlab.errors import DataRootError

#: The categories, in COCO id order (ids start at 1). Class = shape; colour is random per object.
CATEGORIES: Tuple[str, ...] = ('disk', 'square', 'triangle', 'star', 'cross', 'hexagon')

#: COCO's object-size ranges (in pixel area), as pycocotools' COCOeval uses them.
AREA_SMALL, AREA_MEDIUM = 32 ** 2, 96 ** 2

#: DFMSD's masking-enhancement threshold is 0.5 (summed box area / image area); the generator keeps each
#: image clearly on its side of it.
SMALL_DOMINATED_MAX_RATIO, LARGE_DOMINATED_MIN_RATIO = 0.45, 0.55

FORMAT_VERSION = 2  # bump when the drawing changes: it is part of the cache key


@dataclasses.dataclass(frozen=True)
class SyntheticSpec:
    """What to generate. Every field is part of the dataset's identity (its cache key)."""

    num_train: int = 480
    num_val: int = 120
    image_size: Tuple[int, int] = (160, 160)  # (height, width)
    seed: int = 0
    #: Fraction of images that are small-object dominated (the rest are large-object dominated).
    small_dominated_fraction: float = 0.5
    #: Fraction of images with a high-frequency background (the rest are smooth).
    high_frequency_fraction: float = 0.5

    @property
    def key(self) -> str:
        payload = json.dumps({'v': FORMAT_VERSION, **dataclasses.asdict(self)}, sort_keys=True)
        return hashlib.sha256(payload.encode()).hexdigest()[:12]

    def split_size(self, split: str) -> int:
        if split not in ('train', 'val'):
            raise ValueError(f"split must be 'train' or 'val', got {split!r}")
        return self.num_train if split == 'train' else self.num_val


#: Named sizes used by the scales (smoke: seconds; mini: CPU minutes).
PRESETS: Dict[str, SyntheticSpec] = {
    'smoke': SyntheticSpec(num_train=16, num_val=8, image_size=(96, 96)),
    'mini': SyntheticSpec(),
}


# ----------------------------------------------------------------------------------------- geometry
def _regular_polygon(cx, cy, r, n, phase) -> List[Tuple[float, float]]:
    return [(cx + r * math.cos(phase + 2 * math.pi * k / n), cy + r * math.sin(phase + 2 * math.pi * k / n))
            for k in range(n)]


#: Every shape the generators can draw, in a fixed order: v1's six categories first, then the shapes the mini
#: v2 scenes (:mod:`kdlab.data.scenes`) and the backbones' pretraining task (:mod:`kdlab.zoo.pretrain`) add.
SHAPES: Tuple[str, ...] = CATEGORIES + ('ellipse', 'rectangle', 'pentagon', 'octagon', 'star4', 'star6',
                                        'diamond', 'crescent', 'arrow', 'heart', 'lshape', 'tshape', 'chevron',
                                        'trapezoid', 'semicircle', 'parallelogram')


def _star(cx, cy, r, points, inner, phase):
    pts = []
    for k in range(2 * points):
        rr = r if k % 2 == 0 else inner * r
        a = phase + math.pi * k / points
        pts.append((cx + rr * math.cos(a), cy + rr * math.sin(a)))
    return pts


def _placed(base, cx, cy, r, phase):
    """``base``: an outline in units of the circumradius around (0, 0), rotated by ``phase`` and moved."""
    c, s = math.cos(phase), math.sin(phase)
    return [(cx + r * (x * c - y * s), cy + r * (x * s + y * c)) for x, y in base]


def _arc(r, a0, a1, n, dx=0.0):
    return [(dx + r * math.cos(a0 + (a1 - a0) * k / (n - 1)), r * math.sin(a0 + (a1 - a0) * k / (n - 1)))
            for k in range(n)]


#: Outlines of the shapes that are not regular polygons or stars, in units of the circumradius.
_OUTLINES = {
    'cross': [(-0.38, -1), (0.38, -1), (0.38, -0.38), (1, -0.38), (1, 0.38), (0.38, 0.38), (0.38, 1),
              (-0.38, 1), (-0.38, 0.38), (-1, 0.38), (-1, -0.38), (-0.38, -0.38)],
    'ellipse': [(math.cos(2 * math.pi * k / 32), 0.5 * math.sin(2 * math.pi * k / 32)) for k in range(32)],
    'rectangle': [(-0.89, -0.45), (0.89, -0.45), (0.89, 0.45), (-0.89, 0.45)],
    'diamond': [(-1, 0), (0, -0.58), (1, 0), (0, 0.58)],
    # the unit disk minus a disk of radius 0.85 centred at (-0.45, 0): they cross at (-0.533, +-0.846)
    'crescent': _arc(1.0, -2.13, 2.13, 20) + _arc(0.85, 1.669, -1.669, 16, dx=-0.45)[1:-1],
    'arrow': [(-1, -0.25), (0.2, -0.25), (0.2, -0.65), (1, 0), (0.2, 0.65), (0.2, 0.25), (-1, 0.25)],
    'heart': [(0.9 * (16 * math.sin(t) ** 3) / 16, -0.9 * (13 * math.cos(t) - 5 * math.cos(2 * t)
              - 2 * math.cos(3 * t) - math.cos(4 * t)) / 16) for t in (2 * math.pi * k / 40 for k in range(40))],
    'lshape': [(-0.7, -1), (-0.2, -1), (-0.2, 0.5), (0.7, 0.5), (0.7, 1), (-0.7, 1)],
    'tshape': [(-1, -0.7), (1, -0.7), (1, -0.2), (0.25, -0.2), (0.25, 1), (-0.25, 1), (-0.25, -0.2),
               (-1, -0.2)],
    'chevron': [(-1, -0.7), (-0.45, -0.7), (0.3, 0), (-0.45, 0.7), (-1, 0.7), (-0.25, 0)],
    'trapezoid': [(-1, 0.5), (1, 0.5), (0.5, -0.5), (-0.5, -0.5)],
    'semicircle': [(0, 0)] + _arc(1.0, 0.0, math.pi, 24),
    'parallelogram': [(-1, 0.4), (0.5, 0.4), (1, -0.4), (-0.5, -0.4)],
}


def shape_polygon(shape: str, cx: float, cy: float, size: float, phase: float) -> List[Tuple[float, float]]:
    """The outline of one object of ``shape`` with centre ``(cx, cy)`` and circumradius ``size / 2``."""
    r = size / 2
    if shape == 'disk':
        return _regular_polygon(cx, cy, r, 32, 0.0)
    regular = {'square': 4, 'triangle': 3, 'hexagon': 6, 'pentagon': 5, 'octagon': 8}
    if shape in regular:
        return _regular_polygon(cx, cy, r, regular[shape], phase)
    stars = {'star': (5, 0.45), 'star4': (4, 0.4), 'star6': (6, 0.55)}
    if shape in stars:
        return _star(cx, cy, r, *stars[shape], phase)
    if shape in _OUTLINES:
        return _placed(_OUTLINES[shape], cx, cy, r, phase)
    raise ValueError(f'unknown shape {shape!r}; known: {SHAPES}')


def _clip_polygon_box(poly, width, height) -> Tuple[float, float, float, float]:
    xs = np.clip([p[0] for p in poly], 0, width)
    ys = np.clip([p[1] for p in poly], 0, height)
    return float(xs.min()), float(ys.min()), float(xs.max() - xs.min()), float(ys.max() - ys.min())


# -------------------------------------------------------------------------------------- background
def _background(rng: np.random.Generator, h: int, w: int, high_frequency: bool) -> np.ndarray:
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    base = rng.uniform(60, 190, size=3).astype(np.float32)
    img = np.broadcast_to(base, (h, w, 3)).copy()
    # low frequency: a linear gradient and two long-wavelength waves (periods > half the image)
    gx, gy = rng.uniform(-40, 40, size=2)
    img += (gx * (xx / w - 0.5) + gy * (yy / h - 0.5))[..., None]
    for _ in range(2):
        period = rng.uniform(0.6, 2.0) * max(h, w)
        angle = rng.uniform(0, math.pi)
        phase = rng.uniform(0, 2 * math.pi)
        wave = np.cos(2 * math.pi * (xx * math.cos(angle) + yy * math.sin(angle)) / period + phase)
        img += (wave[..., None] * rng.uniform(5, 20, size=3)).astype(np.float32)
    if high_frequency:
        kind = rng.integers(3)
        if kind == 0:  # fine stripes, period 2-4 px
            period = rng.uniform(2.0, 4.0)
            angle = rng.uniform(0, math.pi)
            tex = np.sign(np.cos(2 * math.pi * (xx * math.cos(angle) + yy * math.sin(angle)) / period))
        elif kind == 1:  # checkerboard of 2-3 px cells
            cell = int(rng.integers(2, 4))
            tex = ((xx // cell + yy // cell) % 2) * 2 - 1
        else:  # pixel noise
            tex = rng.standard_normal((h, w)).astype(np.float32)
        img += (tex[..., None] * rng.uniform(12, 28)).astype(np.float32)
    return img


# ------------------------------------------------------------------------------------------- images
@dataclasses.dataclass(frozen=True)
class ObjectSizes:
    """How big the objects of one image are: circumscribed diameters as fractions of the image's short side.

    A small-dominated image holds ``small_count`` (half-open range) small objects and, with probability
    ``medium_prob``, one medium; a large-dominated one holds one large object, with probability 0.4 a second
    (``second``) and with probability 0.5 a medium one (``third``). The defaults are v1's."""

    small: Tuple[float, float] = (0.09, 0.22)
    small_count: Tuple[int, int] = (4, 9)
    medium: Tuple[float, float] = (0.28, 0.40)
    medium_prob: float = 0.5
    large: Tuple[float, float] = (0.72, 0.98)
    second: Tuple[float, float] = (0.45, 0.6)
    third: Tuple[float, float] = (0.2, 0.3)


V1_SIZES = ObjectSizes()


def _object_sizes(rng: np.random.Generator, small_dominated: bool, h: int, w: int,
                  sizes: ObjectSizes = V1_SIZES) -> List[float]:
    """Object sizes (circumscribed diameter, px) for one image."""
    short = min(h, w)
    if small_dominated:
        n = int(rng.integers(*sizes.small_count))
        out = list(rng.uniform(*sizes.small, size=n) * short)                  # mostly small
        if rng.random() < sizes.medium_prob:
            out.append(float(rng.uniform(*sizes.medium) * short))              # sometimes one medium
    else:
        out = [float(rng.uniform(*sizes.large) * short)]                       # one large
        if rng.random() < 0.4:
            out.append(float(rng.uniform(*sizes.second) * short))              # sometimes a second, medium-large
        if rng.random() < 0.5:
            out.append(float(rng.uniform(*sizes.third) * short))               # sometimes a medium
    return sorted(out, reverse=True)  # place the big ones first: packing succeeds more often


def render_image(spec: SyntheticSpec, split: str, index: int):
    """Draw image ``index`` of ``split``: returns ``(uint8 HxWx3 array, objects, meta)``.

    ``objects`` is a list of dicts with ``category_id``, ``bbox`` (COCO xywh), ``area`` (mask area),
    ``segmentation`` (one polygon). ``meta`` says whether the image is small-dominated and
    whether its background is high-frequency.
    """
    h, w = spec.image_size
    split_id = {'train': 0, 'val': 1}[split]
    rng = np.random.default_rng([spec.seed, split_id, index])
    small_dominated = bool(rng.random() < spec.small_dominated_fraction)
    high_frequency = bool(rng.random() < spec.high_frequency_fraction)
    img = _background(rng, h, w, high_frequency)
    for _layout in range(50):  # re-draw the layout until the image is clearly on its side of DFMSD's 0.5
        layout = _layout_objects(rng, img, small_dominated, h, w)
        ratio = sum(o['bbox'][2] * o['bbox'][3] for o in layout) / (h * w)
        if (ratio < SMALL_DOMINATED_MAX_RATIO) if small_dominated else (ratio > LARGE_DOMINATED_MIN_RATIO):
            break
    canvas = Image.fromarray(np.clip(img, 0, 255).astype(np.uint8))
    draw = ImageDraw.Draw(canvas)
    objects = []
    for obj in layout:
        draw.polygon(obj.pop('polygon'), fill=obj.pop('colour'))
        objects.append(obj)
    meta = {'small_dominated': small_dominated, 'high_frequency_background': high_frequency,
            'box_area_ratio': round(ratio, 4)}
    return np.asarray(canvas), objects, meta


def _layout_objects(rng: np.random.Generator, img: np.ndarray, small_dominated: bool, h: int, w: int):
    from pycocotools import mask as mask_utils
    boxes: List[Tuple[float, float, float, float]] = []
    objects = []
    for size in _object_sizes(rng, small_dominated, h, w):
        for _attempt in range(30):
            shape_idx = int(rng.integers(len(CATEGORIES)))
            cx = rng.uniform(size * 0.4, w - size * 0.4)
            cy = rng.uniform(size * 0.4, h - size * 0.4)
            phase = rng.uniform(0, 2 * math.pi)
            poly = shape_polygon(CATEGORIES[shape_idx], cx, cy, size, phase)
            box = _clip_polygon_box(poly, w, h)
            x0, y0, bw, bh = box
            if bw < 4 or bh < 4:
                continue
            if any(x0 < bx + bbw + 1 and bx < x0 + bw + 1 and y0 < by + bbh + 1 and by < y0 + bh + 1
                   for bx, by, bbw, bbh in boxes):
                continue  # objects never overlap: masks stay exact
            colour = tuple(int(c) for c in rng.integers(0, 256, size=3))
            # keep the object visible against its background
            if np.abs(np.array(colour, np.float32) - img[int(cy) % h, int(cx) % w]).sum() < 120:
                colour = tuple(255 - c for c in colour)
            flat = [round(float(v), 2) for p in poly
                    for v in (min(max(p[0], 0.0), float(w)), min(max(p[1], 0.0), float(h)))]
            # area as COCO defines it: the rasterised polygon, by pycocotools' own rasteriser
            area = float(mask_utils.area(mask_utils.merge(mask_utils.frPyObjects([flat], h, w))))
            boxes.append(box)
            objects.append({'category_id': shape_idx + 1, 'bbox': [round(v, 2) for v in box],
                            'area': area, 'segmentation': [flat], 'iscrowd': 0,
                            'polygon': poly, 'colour': colour})
            break
    return objects


def build_split(spec: SyntheticSpec, split: str, image_dir: Path, progress: bool = False, *, render=None,
                categories: Sequence[str] = CATEGORIES, description: str = 'kdlab synthetic shapes',
                version: int = FORMAT_VERSION) -> dict:
    """Render every image of ``split`` into ``image_dir``; return the COCO annotation dict.

    ``render(spec, split, index) -> (pixels, objects, meta)`` draws one image (default :func:`render_image`; the
    mini v2 scenes pass theirs, with their categories, description and format version)."""
    render = render or render_image
    images, annotations = [], []
    indices: Iterable[int] = range(spec.split_size(split))
    if progress:
        from kdlab.progress import progress_bar
        indices = progress_bar(indices, desc=f'{description} ({split})', unit='img', leave=False)
    for i in indices:
        pixels, objects, meta = render(spec, split, i)
        name = f'{split}_{i:06d}.png'
        Image.fromarray(pixels).save(image_dir / name, optimize=False)
        images.append({'id': i + 1, 'file_name': name, 'height': spec.image_size[0],
                       'width': spec.image_size[1], **meta})
        for obj in objects:
            annotations.append({'id': len(annotations) + 1, 'image_id': i + 1, **obj})
    return {
        'info': {'description': description, 'version': version, 'spec': dataclasses.asdict(spec)},
        'licenses': [],
        'images': images,
        'annotations': annotations,
        'categories': [{'id': i + 1, 'name': n, 'supercategory': 'shape'} for i, n in enumerate(categories)],
    }


# ---------------------------------------------------------------------------------------- the cache
def cache_root() -> Path:
    """Where generated datasets live: ``$KDLAB_DATA`` or ``~/.cache/kdlab/data`` (never in the repo)."""
    env = os.environ.get('KDLAB_DATA')
    if env:
        return Path(env).expanduser()
    base = os.environ.get('XDG_CACHE_HOME') or os.path.join(os.path.expanduser('~'), '.cache')
    return Path(base) / 'kdlab' / 'data'


def dataset_dir(spec, root: Optional[os.PathLike] = None) -> Path:
    """``<root>/<prefix>-<key>``: ``synthetic-`` for v1's spec, the spec's ``dir_prefix`` otherwise."""
    return Path(root or cache_root()) / f'{getattr(spec, "dir_prefix", "synthetic")}-{spec.key}'


def ensure_dataset(spec: SyntheticSpec | str = 'mini', root: Optional[os.PathLike] = None,
                   progress: bool = False) -> Path:
    """Generate the dataset for ``spec`` (a :class:`SyntheticSpec` or a preset name) unless cached.

    Returns the data root, laid out as mmdet's COCO configs expect::

        <root>/annotations/instances_train.json, instances_val.json
        <root>/train/*.png, <root>/val/*.png

    Generation writes into a temporary sibling directory and renames it into place, so an interrupted
    generation never leaves a half-written dataset behind.
    """
    if isinstance(spec, str):
        if spec not in PRESETS:
            from kdlab.errors import UnknownNameError
            raise UnknownNameError('synthetic dataset preset', spec, PRESETS)
        spec = PRESETS[spec]
    target = dataset_dir(spec, root)
    if (target / 'DONE').is_file():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f'.{target.name}-', dir=target.parent))
    try:
        (tmp / 'annotations').mkdir()
        for split in ('train', 'val'):
            (tmp / split).mkdir()
            build = getattr(spec, 'build', None)      # a spec that draws its own images (kdlab.data.scenes)
            coco = (build(split, tmp / split, progress=progress) if build is not None
                    else build_split(spec, split, tmp / split, progress=progress))
            with open(tmp / 'annotations' / f'instances_{split}.json', 'w') as f:
                json.dump(coco, f)
        (tmp / 'DONE').write_text(json.dumps(dataclasses.asdict(spec)))
        try:
            tmp.rename(target)
        except OSError:  # another process finished first: theirs is identical
            if not (target / 'DONE').is_file():
                raise
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return target


def check_data_root(data_root: os.PathLike, splits: Sequence[str] = ('train', 'val')) -> Path:
    """Raise :class:`DataRootError` naming the fix if ``data_root`` lacks the COCO layout."""
    root = Path(data_root).expanduser()
    if not root.is_dir():
        raise DataRootError(f'data root {str(root)!r} does not exist',
                            'generate the embedded dataset with `kdlab data generate`, or pass the '
                            'directory that holds annotations/ and the image folders (e.g. COCO 2017)')
    for split in splits:
        candidates = [root / 'annotations' / f'instances_{split}.json',
                      root / 'annotations' / f'instances_{split}2017.json']
        if not any(c.is_file() for c in candidates):
            raise DataRootError(f'no annotation file for split {split!r} under {str(root)!r} '
                                f'(looked for {", ".join(str(c.relative_to(root)) for c in candidates)})',
                                'point data_root at a COCO-format dataset root')
        ann = next(c for c in candidates if c.is_file())
        stat = ann.stat()
        _check_coco_split(str(ann), str(root / split), stat.st_mtime_ns, stat.st_size)
    return root


@functools.lru_cache(maxsize=16)
def _check_coco_split(ann_file: str, image_dir: str, mtime_ns: int, size: int) -> None:
    """Raise :class:`DataRootError` if ``ann_file`` is not a COCO detection file or lists an image that is not
    in ``image_dir`` (one directory listing; checked once per file version in a process)."""
    try:
        with open(ann_file) as f:
            data = json.load(f)
    except (ValueError, UnicodeDecodeError) as err:
        raise DataRootError(f'{ann_file} is not JSON ({err})',
                            'regenerate the annotation file, or point data_root at a COCO-format dataset root') from err
    missing_keys = [k for k in ('images', 'annotations', 'categories')
                    if not isinstance(data, dict) or not isinstance(data.get(k), list)]
    if missing_keys:
        raise DataRootError(f'{ann_file} is not a COCO detection annotation file: no list '
                            f'{", ".join(repr(k) for k in missing_keys)}',
                            "a COCO file has 'images', 'annotations' and 'categories' lists "
                            '(https://cocodataset.org/#format-data); convert the dataset or pass another data_root')
    bad = [i for i, im in enumerate(data['images'])
           if not isinstance(im, dict) or not {'id', 'file_name', 'width', 'height'} <= set(im)]
    if bad:
        raise DataRootError(f'{ann_file}: image entry {bad[0]} lacks id / file_name / width / height '
                            f'({len(bad)} such entries)', 'fix or regenerate the annotation file')
    if not os.path.isdir(image_dir):
        raise DataRootError(f'the image folder {image_dir} of {ann_file} does not exist',
                            'put the split\'s images there (COCO: train2017/, val2017/ beside annotations/)')
    present = set(os.listdir(image_dir))
    absent = [im['file_name'] for im in data['images'] if im['file_name'].split('/')[0] not in present]
    if absent:
        raise DataRootError(f'{len(absent)} image(s) listed in {ann_file} are not in {image_dir}, e.g. '
                            f'{absent[:3]}', 'copy the missing images there, or regenerate the dataset '
                            '(`kdlab data generate`) if it is kdlab\'s')
