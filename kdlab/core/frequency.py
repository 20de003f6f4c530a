"""Frequency-domain primitives for DFMSD's analysis (section 3.4, Fig. 6): the centred log-magnitude 2-D DFT of an
image, its radial power profile, the share of spectral energy in low / high frequency bands, and the three
augmentations the paper compares (flip, random proportional crop resized back, Gaussian noise).

DFMSD's claims (prose of section 3.4; the figure is qualitative):

* flipping "produces a Fourier spectrum that resembles the original one";
* Gaussian noise suppresses the close-to-centre amplitude relative to the rest: the high-frequency share rises;
* a random proportional crop (resized back) raises the close-to-centre amplitude: the low-frequency share rises.

Why they hold, which the tests check as numbers. For a real image ``x`` the DFT obeys ``|X(-k)| = |X(k)|``; a
horizontal flip maps ``|X(ky, kx)|`` to ``|X(ky, -kx)|`` (a mirror of the spectrum), which keeps every radius
``|k|``: the radial profile and the band shares are unchanged *exactly*. White noise adds power evenly over all
frequencies while natural (and the synthetic) images have most of theirs near the centre, so the high share
rises. Cropping a window of scale ``s`` and resizing it back is a zoom by ``1/s``: the spectrum contracts toward
the centre by ``s`` (and bilinear resampling low-passes), so the low share rises.

Conventions. Frequencies are measured as a normalised radius ``rho = |f| / 0.5`` with ``f`` in cycles per pixel:
``rho = 1`` is the Nyquist frequency along an axis (corners reach ``sqrt(2)``), so the bands mean the same
thing for any image size. Energy shares exclude the DC term (the image mean is subtracted first): what the
shares compare is structure, not brightness. Images are ``H x W`` (grey) or ``H x W x 3`` (RGB) numpy arrays of
any dtype (grey = ITU-R 601 luma), or torch tensors ``(C, H, W)``; every function is pure.

The crop and the noise are DFMSD's masking-enhancement operations, written once in :mod:`kdlab.core.enhance`
(torch, ``(C, H, W)``); :func:`augment` applies them (and the flip) to numpy images, for plots and tests.
"""
from __future__ import annotations

from typing import Dict, Optional, Sequence, Tuple, Union

import numpy as np
import torch

from kdlab.core.enhance import gaussian_noise, proportional_crop

Image = Union[np.ndarray, torch.Tensor]

#: Band edges in normalised radius ``rho`` (1 = axis Nyquist): low ``rho < LOW_CUTOFF``, high ``rho >= HIGH_CUTOFF``.
LOW_CUTOFF, HIGH_CUTOFF = 0.25, 0.5
#: The augmentations of DFMSD Fig. 6, in the paper's order, after the original.
AUGMENTATIONS = ('flip', 'crop', 'noise')
_LUMA = np.array([0.299, 0.587, 0.114])


# ------------------------------------------------------------------------------------------------ inputs
def to_gray(img: Image) -> np.ndarray:
    """``H x W`` float64 luminance of an image: ``H x W``, ``H x W x {1,3,4}`` (numpy) or ``(C, H, W)`` (torch).

    An alpha channel is dropped; booleans become 0/1. The values keep the image's units (0-255 for uint8).
    """
    if isinstance(img, torch.Tensor):
        arr = img.detach().cpu().double().numpy()
        arr = arr if arr.ndim == 2 else np.moveaxis(arr, 0, -1)
    else:
        arr = np.asarray(img, dtype=np.float64)
    if arr.ndim == 2:
        return arr
    if arr.ndim != 3:
        raise ValueError(f'expected an image H x W or H x W x C, got shape {arr.shape}')
    if arr.shape[-1] == 1:
        return arr[..., 0]
    if arr.shape[-1] in (3, 4):
        return arr[..., :3] @ _LUMA
    raise ValueError(f'expected 1, 3 or 4 colour channels, got {arr.shape[-1]} (shape {arr.shape})')


def radius_grid(shape: Tuple[int, int]) -> np.ndarray:
    """``rho`` of every bin of a *centred* (``fftshift``-ed) spectrum of ``shape = (H, W)``; 1 = axis Nyquist."""
    fy = np.fft.fftshift(np.fft.fftfreq(shape[0]))
    fx = np.fft.fftshift(np.fft.fftfreq(shape[1]))
    return np.hypot(fy[:, None], fx[None, :]) / 0.5


def _window(shape: Tuple[int, int], window: Optional[str]) -> np.ndarray:
    if window is None:
        return np.ones(shape)
    if window == 'hann':
        return np.outer(np.hanning(shape[0]), np.hanning(shape[1]))
    raise ValueError(f"window must be None or 'hann', got {window!r}")


# ---------------------------------------------------------------------------------------------- spectra
def power_spectrum(img: Image, *, window: Optional[str] = None, remove_mean: bool = True) -> np.ndarray:
    """Centred power spectrum ``|fftshift(fft2(g))|^2`` of the grey image ``g``: ``H x W`` float64.

    ``remove_mean`` subtracts the mean first (the DC bin is then 0); ``window='hann'`` tapers the borders
    (less leakage from the image edges; symmetric, so a flip still only mirrors the spectrum).
    """
    g = to_gray(img)
    if remove_mean:
        g = g - g.mean()
    g = g * _window(g.shape, window)
    return np.abs(np.fft.fftshift(np.fft.fft2(g))) ** 2


def log_magnitude_spectrum(img: Image, *, window: Optional[str] = None, remove_mean: bool = False) -> np.ndarray:
    """DFMSD Fig. 6's picture: ``log(1 + |fftshift(fft2(g))|)``, ``H x W``, the zero frequency in the centre.

    The mean is kept by default (the bright centre of the usual pictures); pass ``remove_mean=True`` to drop it.
    """
    return np.log1p(np.sqrt(power_spectrum(img, window=window, remove_mean=remove_mean)))


def radial_profile(img: Image, *, bins: int = 32, max_radius: float = 1.0, window: Optional[str] = None,
                   spectrum: Optional[np.ndarray] = None) -> Tuple[np.ndarray, np.ndarray]:
    """Mean power in ``bins`` rings of equal width over ``0 < rho <= max_radius``: ``(centres, power)``.

    The DC bin (``rho = 0``) is left out; with ``max_radius=1`` the corners beyond the axis Nyquist are not
    counted (they exist only along the diagonals). Empty rings (tiny images) give NaN. ``spectrum``: a power
    spectrum already computed by :func:`power_spectrum` (then ``img`` only gives the shape).
    """
    p = power_spectrum(img, window=window) if spectrum is None else spectrum
    rho = radius_grid(p.shape)
    edges = np.linspace(0.0, max_radius, bins + 1)
    idx = np.digitize(rho, edges[1:], right=True)    # ring i holds edges[i] < rho <= edges[i+1]
    keep = (rho > 0) & (rho <= max_radius)
    sums = np.bincount(idx[keep], weights=p[keep], minlength=bins)[:bins]
    counts = np.bincount(idx[keep], minlength=bins)[:bins]
    with np.errstate(invalid='ignore', divide='ignore'):
        power = sums / counts
    return (edges[:-1] + edges[1:]) / 2, power


def band_shares(img: Image, *, low: float = LOW_CUTOFF, high: float = HIGH_CUTOFF,
                window: Optional[str] = None) -> Dict[str, float]:
    """Share of the (mean-removed) spectral energy in ``low`` (``rho < low``), ``mid`` and ``high`` (``rho >= high``).

    The three shares sum to 1 (a flat image has no energy: all three are NaN).
    """
    if not 0.0 < low <= high:
        raise ValueError(f'band edges must satisfy 0 < low <= high, got low={low}, high={high}')
    g = to_gray(img)
    p = power_spectrum(g, window=window)
    rho = radius_grid(p.shape)
    total = p.sum()
    # a flat image has no structure: its "energy" would be rounding noise (std below 1e-9 of the values)
    if total <= 0 or g.std() <= 1e-9 * max(1.0, float(np.abs(g).max())):
        return {'low': float('nan'), 'mid': float('nan'), 'high': float('nan')}
    lo = float(p[rho < low].sum() / total)
    hi = float(p[rho >= high].sum() / total)
    return {'low': lo, 'mid': 1.0 - lo - hi, 'high': hi}


def low_frequency_share(img: Image, *, cutoff: float = LOW_CUTOFF, window: Optional[str] = None) -> float:
    """Share of the spectral energy below ``rho = cutoff`` (DC excluded)."""
    return band_shares(img, low=cutoff, high=max(cutoff, HIGH_CUTOFF), window=window)['low']


def high_frequency_share(img: Image, *, cutoff: float = HIGH_CUTOFF, window: Optional[str] = None) -> float:
    """Share of the spectral energy at ``rho >= cutoff`` (DC excluded)."""
    return band_shares(img, low=min(cutoff, LOW_CUTOFF), high=cutoff, window=window)['high']


# ----------------------------------------------------------------------------------------- augmentations
def _as_chw(img: np.ndarray) -> Tuple[torch.Tensor, bool]:
    arr = np.asarray(img, dtype=np.float32)
    if arr.ndim == 2:
        return torch.from_numpy(arr[None].copy()), True
    return torch.from_numpy(np.ascontiguousarray(np.moveaxis(arr, -1, 0))), False


def _back(t: torch.Tensor, gray: bool, dtype, clip: bool) -> np.ndarray:
    arr = t.numpy()
    arr = arr[0] if gray else np.moveaxis(arr, 0, -1)
    if np.issubdtype(dtype, np.integer):
        return np.clip(np.rint(arr), 0, 255).astype(dtype) if clip else arr.astype(np.float32)
    return arr.astype(np.float32)


def flip(img: Image, *, axis: str = 'horizontal') -> Image:
    """Mirror an image left-right (``'horizontal'``, mmdet's default ``RandomFlip``) or top-bottom."""
    if axis not in ('horizontal', 'vertical'):
        raise ValueError(f"axis must be 'horizontal' or 'vertical', got {axis!r}")
    if isinstance(img, torch.Tensor):                      # (C, H, W) or (H, W)
        return img.flip(-1 if axis == 'horizontal' else -2)
    arr = np.asarray(img)
    return np.ascontiguousarray(arr[:, ::-1] if axis == 'horizontal' else arr[::-1])


def crop_window(shape: Tuple[int, int], crop_scale: Union[float, Tuple[float, float]] = (0.5, 0.8), *,
                seed: Optional[int] = 0) -> Tuple[float, Tuple[int, int, int, int]]:
    """The crop :func:`augment` takes from an image of ``shape = (H, W)``: ``(s, (y0, x0, h_c, w_c))``.

    ``s`` is ``crop_scale`` or drawn from ``U(crop_scale)``; the window is ``round(s H) x round(s W)`` (as
    :func:`kdlab.core.enhance.proportional_crop` sizes it) at a uniform random position. Same seed, same window.
    """
    gen = torch.Generator().manual_seed(int(seed)) if seed is not None else None
    if isinstance(crop_scale, (tuple, list)):
        lo, hi = crop_scale
        s = float(lo + (hi - lo) * torch.rand((), generator=gen))
    else:
        s = float(crop_scale)
    if not 0.0 < s <= 1.0:
        raise ValueError(f'crop scale must be in (0, 1], got {s}')
    h, w = int(shape[0]), int(shape[1])
    ch, cw = max(1, int(round(s * h))), max(1, int(round(s * w)))
    y0 = int(torch.randint(0, h - ch + 1, (), generator=gen))
    x0 = int(torch.randint(0, w - cw + 1, (), generator=gen))
    return s, (y0, x0, ch, cw)


def augment(img: np.ndarray, kind: str, *, crop_scale: Union[float, Tuple[float, float]] = (0.5, 0.8),
            noise_sigma: float = 25.0, seed: Optional[int] = 0, clip: bool = True) -> np.ndarray:
    """One of DFMSD Fig. 6's augmentations of a numpy image ``H x W (x C)``; the shape is kept.

    * ``'flip'``: horizontal mirror;
    * ``'crop'``: :func:`kdlab.core.enhance.proportional_crop` - a window of side scale ``s`` (a float, or drawn
      from ``U(crop_scale)``) at a random position, resized back (bilinear): a zoom-in;
    * ``'noise'``: :func:`kdlab.core.enhance.gaussian_noise` - ``+ N(0, noise_sigma^2)`` in the image's units
      (pixels for uint8; DFMSD's masking enhancement defaults to 15 on the normalised-back pixel scale).

    ``seed`` fixes the crop position / scale and the noise (None: torch's global generator). ``clip``: a uint8
    input comes back as uint8 (rounded, clipped to 0..255), else float32. ``kind='none'`` returns a copy.
    """
    if kind == 'none':
        return np.array(img, copy=True)
    if kind == 'flip':
        return flip(img)
    if kind not in AUGMENTATIONS:
        raise ValueError(f'unknown augmentation {kind!r}; choose from {("none",) + AUGMENTATIONS}')
    x, gray = _as_chw(img)
    if kind == 'crop':
        scale, (y0, x0, _, _) = crop_window(x.shape[-2:], crop_scale, seed=seed)
        out = proportional_crop(x, scale, top_left=(y0, x0))
    else:
        gen = torch.Generator().manual_seed(int(seed)) if seed is not None else None
        out = gaussian_noise(x, float(noise_sigma), generator=gen)
    return _back(out, gray, np.asarray(img).dtype, clip)


def augmentation_shares(images: Sequence[np.ndarray], *, kinds: Sequence[str] = ('none',) + AUGMENTATIONS,
                        low: float = LOW_CUTOFF, high: float = HIGH_CUTOFF, window: Optional[str] = None,
                        seed: int = 0, **augment_kwargs) -> Dict[str, np.ndarray]:
    """Band shares of each image under each augmentation: ``{'<kind>.<band>': array (n_images,)}``.

    Image ``i`` is augmented with seed ``seed + i`` (reproducible, different per image).
    """
    out: Dict[str, list] = {}
    for i, img in enumerate(images):
        for kind in kinds:
            shares = band_shares(augment(img, kind, seed=seed + i, **augment_kwargs), low=low, high=high,
                                 window=window)
            for band, v in shares.items():
                out.setdefault(f'{kind}.{band}', []).append(v)
    return {k: np.asarray(v) for k, v in out.items()}
