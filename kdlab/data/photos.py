"""Real photographs for backgrounds and textures: the images scikit-image ships in its wheel (no download).

Used by the mini v2 scenes (:mod:`kdlab.data.scenes`) and the backbones' pretraining images
(:mod:`kdlab.zoo.pretrain`). A crop is drawn from its caller's random stream, so generation stays seeded.
"""
from __future__ import annotations

import functools
from typing import Tuple

import numpy as np

#: scikit-image's bundled photographs (``skimage.data``), colour and grey; the synthetic or scientific ones
#: (chessboards, phantom, colour wheel, logo, text pages) are left out.
PHOTOS: Tuple[str, ...] = ('astronaut', 'brick', 'camera', 'cat', 'coffee', 'coins', 'grass', 'gravel',
                           'horse', 'hubble_deep_field', 'immunohistochemistry', 'moon', 'retina', 'rocket')


@functools.lru_cache(maxsize=None)
def load_photos() -> Tuple[np.ndarray, ...]:
    """Every photograph of :data:`PHOTOS` as float32 H x W x 3 in 0..255 (grey ones replicated)."""
    import skimage.data
    out = []
    for name in PHOTOS:
        img = np.asarray(getattr(skimage.data, name)(), dtype=np.float32)
        if img.dtype == bool or img.max() <= 1.0:
            img = img * 255.0
        if img.ndim == 2:
            img = np.repeat(img[..., None], 3, axis=2)
        out.append(np.ascontiguousarray(img[..., :3]))
    return tuple(out)


def photo_crop(rng: np.random.Generator, h: int, w: int, *, min_side: int = 48,
               jitter: bool = True) -> np.ndarray:
    """A random crop of a random photograph, resized to ``h x w`` (float32, 0..255), randomly flipped and,
    with ``jitter``, with its contrast, brightness and colour balance perturbed."""
    from PIL import Image
    photos = load_photos()
    img = photos[int(rng.integers(len(photos)))]
    ph, pw = img.shape[:2]
    side = int(rng.integers(min(min_side, ph, pw), min(ph, pw) + 1))
    ch, cw = side, min(pw, int(side * w / h))
    y0, x0 = int(rng.integers(0, ph - ch + 1)), int(rng.integers(0, pw - cw + 1))
    crop = Image.fromarray(img[y0:y0 + ch, x0:x0 + cw].astype(np.uint8)).resize((w, h), Image.BILINEAR)
    out = np.asarray(crop, dtype=np.float32)
    if rng.random() < 0.5:
        out = out[:, ::-1]
    if jitter:
        mean = out.mean()
        out = (out - mean) * rng.uniform(0.6, 1.3) + mean + rng.uniform(-30, 30)
        out = out * rng.uniform(0.8, 1.2, size=3).astype(np.float32)
    return np.ascontiguousarray(np.clip(out, 0, 255), dtype=np.float32)
