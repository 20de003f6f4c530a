"""DFMSD's frequency analysis (section 3.4, Figs. 6-7) over a sample of images, as tables.

* :func:`band_table` — the low / mid / high share of spectral energy of every image under every augmentation
  of Fig. 6 (none, flip, crop resized back, Gaussian noise), plus the crop *window* itself before it is resized
  back (``'crop_window'``): the crop changes what is in the frame as well as its scale, and the window separates
  the two (resizing the same content back can only move energy toward the centre).
* :func:`claims` — the paper's three statements as counts over the sample (how many images they hold on).
* :func:`profiles` — radial power profiles per augmentation.
* :func:`me_table` / :func:`enhance_image` — Eq. (4)'s masking-enhancement decision per image (box-area ratio vs
  threshold -> noise or crop) and the enhanced image with its boxes moved along.

Primitives: :mod:`kdlab.core.frequency` (spectra, shares, augmentations), :mod:`kdlab.core.enhance` (DFMSD's
noise and crop), :mod:`kdlab.core.masks` (box-area ratio, decision).
"""
from __future__ import annotations

import dataclasses
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch

from kdlab.analysis.images import SampleImage
from kdlab.core import frequency as fq
from kdlab.core.masks import ME_THRESHOLD, box_area_ratio, me_decision

#: The augmentation settings of the spectra figures (Fig. 6 is qualitative; kdlab's choices): crop side scale
#: drawn from U(0.5, 0.8) so the zoom is visible, noise sigma 25 pixel units.
SPECTRA_CROP_SCALE = (0.5, 0.8)
SPECTRA_NOISE_SIGMA = 25.0
KIND_LABELS = {'none': 'original', 'flip': 'flip', 'crop': 'crop + resize back', 'noise': 'Gaussian noise',
               'crop_window': 'crop window (not resized)'}


def me_settings(**overrides) -> dict:
    """DFMSD's masking-enhancement settings as kdlab's DFMSD trains with them (``ENHANCE_DEFAULTS``), overridden."""
    from kdlab.models.distillers import ENHANCE_DEFAULTS
    keys = ('threshold', 'noise_sigma', 'noise_prob', 'crop_scale', 'box_score_thr')
    out = {k: ENHANCE_DEFAULTS[k] for k in keys}
    out.update({k: v for k, v in overrides.items() if v is not None})
    return out


# ------------------------------------------------------------------------------------------ band shares
def band_table(images: Sequence[SampleImage], *, kinds: Sequence[str] = ('none',) + fq.AUGMENTATIONS,
               low: float = fq.LOW_CUTOFF, high: float = fq.HIGH_CUTOFF, window: Optional[str] = None, seed: int = 0,
               crop_scale=SPECTRA_CROP_SCALE, noise_sigma: float = SPECTRA_NOISE_SIGMA) -> 'pandas.DataFrame':
    """One row per (image, augmentation): ``image, source, kind, low, mid, high`` (shares sum to 1).

    Image ``i`` is augmented with seed ``seed + i``. With ``'crop'`` among ``kinds`` the un-resized crop window
    is added as kind ``'crop_window'``.
    """
    import pandas as pd
    rows = []
    for i, im in enumerate(images):
        kw = dict(low=low, high=high, window=window)
        for kind in kinds:
            aug = fq.augment(im.image, kind, crop_scale=crop_scale, noise_sigma=noise_sigma, seed=seed + i)
            rows.append(dict(image=im.name, source=im.source, kind=kind, **fq.band_shares(aug, **kw)))
            if kind == 'crop':
                _, (y0, x0, ch, cw) = fq.crop_window(im.image.shape[:2], crop_scale, seed=seed + i)
                rows.append(dict(image=im.name, source=im.source, kind='crop_window',
                                 **fq.band_shares(im.image[y0:y0 + ch, x0:x0 + cw], **kw)))
    return pd.DataFrame(rows)


def claims(table: 'pandas.DataFrame') -> 'pandas.DataFrame':
    """DFMSD's statements checked on every image of ``table`` (:func:`band_table`): one row per claim with the
    number of images it holds on and the mean change of the share it is about. Images whose shares are undefined
    (flat: no structure, e.g. a crop inside one uniform object) are not counted."""
    import pandas as pd
    wide = table.pivot_table(index='image', columns='kind', values=['low', 'high'], sort=False)
    checks = []

    def add(claim, before, after, band, op):
        if (band, before) not in wide or (band, after) not in wide:
            return
        d = (wide[(band, after)] - wide[(band, before)]).dropna()   # a flat image (or crop) has no shares
        ok = d.abs() <= 1e-9 if op == '==' else d > 0
        checks.append(dict(claim=claim, band=band, images=int(len(d)), holds=int(ok.sum()),
                           mean_change=float(d.mean()), min_change=float(d.min()), max_change=float(d.max())))

    add('flip leaves the shares unchanged', 'none', 'flip', 'low', '==')
    add('flip leaves the shares unchanged', 'none', 'flip', 'high', '==')
    add('Gaussian noise raises the high-frequency share', 'none', 'noise', 'high', '>')
    add('crop + resize back raises the low-frequency share', 'none', 'crop', 'low', '>')
    add('resizing the crop window back raises its low-frequency share', 'crop_window', 'crop', 'low', '>')
    return pd.DataFrame(checks)


def profiles(images: Sequence[SampleImage], *, kinds: Sequence[str] = ('none',) + fq.AUGMENTATIONS, bins: int = 32,
             window: Optional[str] = None, seed: int = 0, crop_scale=SPECTRA_CROP_SCALE,
             noise_sigma: float = SPECTRA_NOISE_SIGMA,
             normalise: bool = True) -> Tuple[np.ndarray, Dict[str, np.ndarray]]:
    """Radial power profiles: ``(rho, {kind: (n_images, bins)})``. ``normalise`` divides each profile by the
    image's total (mean-removed) energy, so images of different contrast and size average fairly."""
    out: Dict[str, list] = {k: [] for k in kinds}
    rho = None
    for i, im in enumerate(images):
        for kind in kinds:
            aug = fq.augment(im.image, kind, crop_scale=crop_scale, noise_sigma=noise_sigma, seed=seed + i)
            p = fq.power_spectrum(aug, window=window)
            rho, prof = fq.radial_profile(aug, bins=bins, spectrum=p / p.sum() if normalise and p.sum() > 0 else p)
            out[kind].append(prof)
    return rho, {k: np.asarray(v) for k, v in out.items()}


# ------------------------------------------------------------------------------- masking enhancement (ME)
@dataclasses.dataclass
class Enhancement:
    """What Eq. (4) did to one image."""

    ratio: Optional[float]     # summed box area / image area (None: no boxes known)
    decision: str              # 'noise' | 'crop' | 'n/a'
    done: str                  # 'noise' | 'crop' | 'none' (the noise coin said no, or no boxes)
    scale: Optional[float] = None
    window: Optional[Tuple[int, int, int, int]] = None   # (y0, x0, h, w) of the crop


def _crop_boxes(boxes: Optional[np.ndarray], window, shape) -> Optional[np.ndarray]:
    if boxes is None:
        return None
    y0, x0, ch, cw = window
    h, w = shape
    b = np.asarray(boxes, dtype=np.float32).reshape(-1, 4).copy()
    b[:, [0, 2]] = np.clip((b[:, [0, 2]] - x0) * (w / cw), 0, w)
    b[:, [1, 3]] = np.clip((b[:, [1, 3]] - y0) * (h / ch), 0, h)
    return b[(b[:, 2] - b[:, 0] > 1) & (b[:, 3] - b[:, 1] > 1)]


def enhance_image(image: SampleImage, *, boxes: Optional[np.ndarray] = None, threshold: float = ME_THRESHOLD,
                  noise_sigma: float = 15.0, noise_prob: float = 1.0, crop_scale=(0.7, 1.0),
                  seed: int = 0) -> Tuple[SampleImage, Enhancement]:
    """DFMSD Eq. (4) on one image: noise when the candidate ``boxes`` (default: its ground truth) cover less than
    ``threshold`` of it, else a random proportional crop resized back (boxes moved along).

    ``noise_prob`` defaults to 1 here (show the noise; training draws it with kdlab's 0.5). An image without
    boxes is returned unchanged (``decision='n/a'``).
    """
    boxes = image.boxes if boxes is None else boxes
    if boxes is None:
        return image, Enhancement(None, 'n/a', 'none')
    ratio = box_area_ratio(boxes, image.shape)
    decision = me_decision(ratio, threshold)
    gen = torch.Generator().manual_seed(int(seed))
    if decision == 'noise':
        if float(torch.rand((), generator=gen)) >= noise_prob:
            return image, Enhancement(ratio, decision, 'none')
        img = fq.augment(image.image, 'noise', noise_sigma=noise_sigma, seed=seed)
        return (dataclasses.replace(image, image=img, boxes=np.asarray(boxes, np.float32), name=image.name + ' +noise'),
                Enhancement(ratio, decision, 'noise'))
    scale, _ = fq.crop_window(image.shape, crop_scale, seed=seed)        # s ~ U(crop_scale)
    _, window = fq.crop_window(image.shape, scale, seed=seed)            # the window augment() takes for s
    img = fq.augment(image.image, 'crop', crop_scale=scale, seed=seed)
    return (dataclasses.replace(image, image=img, boxes=_crop_boxes(boxes, window, image.shape),
                                name=image.name + ' +crop'),
            Enhancement(ratio, decision, 'crop', scale, window))


def me_table(images: Sequence[SampleImage], *, boxes: Optional[Sequence[Optional[np.ndarray]]] = None,
             threshold: float = ME_THRESHOLD) -> 'pandas.DataFrame':
    """Per image: number of candidate boxes, box-area ratio, Eq. (4)'s decision, and (synthetic data) whether
    the generator drew it small- or large-object dominated."""
    import pandas as pd
    rows = []
    for i, im in enumerate(images):
        b = (boxes[i] if boxes is not None else None)
        b = im.boxes if b is None else b
        ratio = None if b is None else box_area_ratio(b, im.shape)
        kind = ('small' if '(small)' in im.name else 'large' if '(large)' in im.name else None)
        rows.append(dict(image=im.name, boxes=None if b is None else int(len(np.asarray(b).reshape(-1, 4))),
                         ratio=ratio, decision='n/a' if ratio is None else me_decision(ratio, threshold),
                         dominated_by=kind))
    return pd.DataFrame(rows)


def me_decisions(images: Sequence[SampleImage], *, teacher=None, threshold: float = ME_THRESHOLD,
                 score_thr: Optional[float] = None) -> Tuple[List[SampleImage], 'pandas.DataFrame']:
    """Eq. (4) over a sample: the images with the candidate boxes the decision used, and :func:`me_table`.

    Candidate boxes: the ``teacher``'s predictions above ``score_thr`` (default: kdlab's DFMSD setting) when a
    teacher (:class:`kdlab.analysis.features.Detector`) is given, as DFMSD does; otherwise the ground truth.
    Images without either get decision ``'n/a'``.
    """
    if teacher is not None:
        from kdlab.analysis.features import predict_boxes
        thr = me_settings()['box_score_thr'] if score_thr is None else score_thr
        boxes = predict_boxes(teacher, images, score_thr=thr)
        shown = [dataclasses.replace(im, boxes=b, labels=None) for im, b in zip(images, boxes)]
    else:
        shown = list(images)
    return shown, me_table(shown, threshold=threshold)
