"""Sample images for the analysis notebooks, each with its ground-truth boxes when the source has them.

``load_images(source, num)`` understands:

* ``'synthetic'`` (the embedded data at the notebook's ``scale``), ``'synthetic:mini'`` / ``'synthetic:smoke'``:
  rendered directly (:func:`kdlab.data.synthetic.render_image`, no files needed), ``val`` split, with boxes;
* ``'skimage'`` or ``'skimage:astronaut,coffee'``: photographs that ship inside the scikit-image wheel (no
  download), without boxes;
* ``'coco:<root>'`` or ``'coco:<root>:<split>'``: a COCO-format dataset, ``<root>/annotations/instances_<split>.json``
  with images in ``<root>/<split>/`` (default split ``val2017``; the embedded data uses ``val``);
* any other string or path: a folder of images (``.jpg .jpeg .png .bmp .tif .tiff .webp``, sorted by name);
  a folder that holds ``annotations/`` is read as COCO.

Images come back as RGB ``uint8`` ``H x W x 3`` (grey images are repeated, alpha dropped); boxes as ``(K, 4)``
``x1, y1, x2, y2`` in the image's pixels.
"""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import List, Optional, Sequence, Union

import numpy as np

from kdlab.errors import DataRootError, KdlabError

#: Photographs shipped in scikit-image's wheel (loaded offline), in the order ``'skimage'`` takes them.
SKIMAGE_PHOTOS = ('astronaut', 'coffee', 'chelsea', 'rocket', 'camera', 'coins', 'moon', 'immunohistochemistry',
                  'hubble_deep_field', 'brick', 'grass', 'gravel', 'page', 'text', 'clock')
IMAGE_SUFFIXES = ('.jpg', '.jpeg', '.png', '.bmp', '.tif', '.tiff', '.webp')


@dataclasses.dataclass
class SampleImage:
    """One image of a sample: pixels, optional ground truth, and where it came from."""

    name: str
    image: np.ndarray                     # H x W x 3 uint8, RGB
    boxes: Optional[np.ndarray] = None    # (K, 4) float32 xyxy pixels; None: the source has no boxes
    labels: Optional[np.ndarray] = None   # (K,) int64 category ids (1-based, as COCO)
    source: str = ''

    @property
    def shape(self):
        return self.image.shape[:2]

    def box_area_ratio(self) -> Optional[float]:
        """DFMSD Eq. (4)'s ratio of the ground-truth boxes (None without boxes)."""
        if self.boxes is None:
            return None
        from kdlab.core.masks import box_area_ratio
        return box_area_ratio(self.boxes, self.shape)


def as_rgb_uint8(img: np.ndarray) -> np.ndarray:
    """Any image array (grey, RGB, RGBA; bool, uint8, float in [0, 1] or [0, 255]) -> ``H x W x 3`` uint8."""
    arr = np.asarray(img)
    if arr.dtype == bool:
        arr = arr.astype(np.uint8) * 255
    elif arr.dtype != np.uint8:
        arr = arr.astype(np.float64)
        if arr.size and arr.max() <= 1.0:
            arr = arr * 255.0
        arr = np.clip(np.rint(arr), 0, 255).astype(np.uint8)
    if arr.ndim == 2:
        arr = np.repeat(arr[..., None], 3, axis=-1)
    elif arr.ndim == 3 and arr.shape[-1] == 1:
        arr = np.repeat(arr, 3, axis=-1)
    elif arr.ndim == 3 and arr.shape[-1] == 4:
        arr = arr[..., :3]
    if arr.ndim != 3 or arr.shape[-1] != 3:
        raise KdlabError(f'cannot read an image of shape {np.asarray(img).shape}',
                         'give grey (H x W), RGB or RGBA (H x W x 3/4) images')
    return np.ascontiguousarray(arr)


def _read(path: Path) -> np.ndarray:
    from PIL import Image
    with Image.open(path) as im:
        return as_rgb_uint8(np.asarray(im.convert('RGB')))


# ------------------------------------------------------------------------------------------- sources
def synthetic_images(scale: str = 'smoke', num: int = 8, *, split: str = 'val', start: int = 0) -> List[SampleImage]:
    """Images ``start .. start+num-1`` of the embedded dataset at ``scale`` (rendered, not read from disk)."""
    from kdlab.data.synthetic import PRESETS, render_image
    if scale not in PRESETS:
        raise KdlabError(f'no embedded dataset at scale {scale!r}', f'use one of {sorted(PRESETS)}')
    spec = PRESETS[scale]
    out = []
    for i in range(start, start + num):
        img, objects, meta = render_image(spec, split, i)
        xywh = np.array([o['bbox'] for o in objects], dtype=np.float32).reshape(-1, 4)
        boxes = np.concatenate([xywh[:, :2], xywh[:, :2] + xywh[:, 2:]], axis=1)
        labels = np.array([o['category_id'] for o in objects], dtype=np.int64)
        kind = 'small' if meta['small_dominated'] else 'large'
        out.append(SampleImage(f'{split}_{i:03d} ({kind})', img, boxes, labels, f'synthetic:{scale}'))
    return out


def skimage_images(names: Optional[Sequence[str]] = None, num: Optional[int] = None) -> List[SampleImage]:
    """scikit-image's shipped photographs (``SKIMAGE_PHOTOS`` by default), without boxes."""
    import skimage.data
    names = list(names or SKIMAGE_PHOTOS)[:num]
    out = []
    for n in names:
        loader = getattr(skimage.data, n, None)
        if loader is None:
            raise KdlabError(f'scikit-image has no sample image {n!r}', f'use names from {SKIMAGE_PHOTOS}')
        out.append(SampleImage(n, as_rgb_uint8(loader()), source='skimage'))
    return out


def folder_images(folder: Union[str, Path], num: Optional[int] = None, *, start: int = 0) -> List[SampleImage]:
    """The images of a folder, sorted by name (not recursive), without boxes."""
    folder = Path(folder).expanduser()
    if not folder.is_dir():
        raise DataRootError(f'image folder {str(folder)!r} does not exist',
                            "pass a folder of images, 'synthetic', 'skimage' or 'coco:<root>'")
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise DataRootError(f'no images ({", ".join(IMAGE_SUFFIXES)}) in {folder}', 'point at a folder of images')
    files = files[start:start + num if num else None]
    return [SampleImage(p.name, _read(p), source=str(folder)) for p in files]


def coco_images(root: Union[str, Path], split: str = 'val2017', num: Optional[int] = 8, *,
                start: int = 0) -> List[SampleImage]:
    """Images of a COCO-format dataset with their boxes (crowd boxes left out), in annotation-file order."""
    root = Path(root).expanduser()
    ann = root / 'annotations' / f'instances_{split}.json'
    if not ann.is_file():
        raise DataRootError(f'COCO annotation file {ann} does not exist',
                            f'give the dataset root that holds annotations/instances_{split}.json and {split}/ '
                            "('coco:<root>:<split>')")
    data = json.loads(ann.read_text())
    by_image = {}
    for a in data.get('annotations', []):
        if not a.get('iscrowd', 0):
            by_image.setdefault(a['image_id'], []).append(a)
    out = []
    for info in data['images'][start:start + num if num else None]:
        path = root / split / info['file_name']
        if not path.is_file():
            raise DataRootError(f'image {path} listed in {ann.name} does not exist', 'check the dataset root')
        anns = by_image.get(info['id'], [])
        xywh = np.array([a['bbox'] for a in anns], dtype=np.float32).reshape(-1, 4)
        boxes = np.concatenate([xywh[:, :2], xywh[:, :2] + xywh[:, 2:]], axis=1)
        labels = np.array([a['category_id'] for a in anns], dtype=np.int64)
        out.append(SampleImage(info['file_name'], _read(path), boxes, labels, f'coco:{root}'))
    return out


def source_slug(source) -> str:
    """A stable file-name part for an image source: ``'synthetic'``, ``'synthetic-mini'``, ``'skimage'``,
    ``'coco-val2017'``, the folder's name, ..."""
    import re
    if isinstance(source, (list, tuple)):
        return 'images'
    src = str(source)
    if src.startswith('coco:'):
        rest = src[len('coco:'):].rstrip('/')
        src = 'coco-' + (rest.rsplit(':', 1)[1] if rest.count(':') and not Path(rest).exists() else Path(rest).name)
    elif ':' in src and src.split(':', 1)[0] in ('synthetic', 'skimage'):
        head, tail = src.split(':', 1)
        src = head + '-' + tail.replace(',', '-')
    elif src not in ('synthetic', 'skimage'):
        src = Path(src).expanduser().name or 'images'
    slug = re.sub(r'[^A-Za-z0-9_.-]+', '-', src).strip('-.')
    return slug[:60] or 'images'


def load_images(source: Union[str, Path, Sequence] = 'synthetic', num: Optional[int] = 8, *, scale: str = 'smoke',
                start: int = 0) -> List[SampleImage]:
    """``num`` images from ``source`` (see the module docstring); ``scale`` picks the embedded dataset.

    ``source`` may also be a list of :class:`SampleImage`, arrays or image paths.
    """
    if isinstance(source, (list, tuple)):
        out = []
        for i, item in enumerate(source[start:start + num if num else None]):
            if isinstance(item, SampleImage):
                out.append(item)
            elif isinstance(item, (str, Path)):
                out.append(SampleImage(Path(item).name, _read(Path(item)), source=str(item)))
            else:
                out.append(SampleImage(f'image_{i}', as_rgb_uint8(item), source='array'))
        return out
    src = str(source)
    if src == 'synthetic' or src.startswith('synthetic:'):
        return synthetic_images(src.split(':', 1)[1] if ':' in src else scale, num or 8, start=start)
    if src == 'skimage' or src.startswith('skimage:'):
        names = src.split(':', 1)[1].split(',') if ':' in src else None
        imgs = skimage_images(names)
        return imgs[start:start + num if num else None]
    if src.startswith('coco:'):
        rest = src[len('coco:'):]
        root, _, split = rest.rpartition(':') if rest.count(':') and not Path(rest).exists() else (rest, '', '')
        return coco_images(root or rest, split or 'val2017', num, start=start)
    path = Path(src).expanduser()
    if (path / 'annotations').is_dir():
        splits = sorted(p.stem[len('instances_'):] for p in (path / 'annotations').glob('instances_*.json'))
        split = 'val2017' if 'val2017' in splits else ('val' if 'val' in splits else (splits or ['val2017'])[0])
        return coco_images(path, split, num, start=start)
    return folder_images(path, num, start=start)
