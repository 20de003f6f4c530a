"""DFMSD's masking enhancement (ME, section 3.4 and Eq. 4): frequency-adaptive augmentation of an image.

From the paper (prose; the equation was lost in the extraction): the candidate boxes of the previous-stage
teacher give the summed box area over the image area (:func:`kdlab.core.masks.box_area_ratio`). Below the
threshold (small objects dominate) Gaussian noise ``N(0, sigma^2)`` is added "with a certain probability" to
strengthen high frequencies; otherwise a "randomly proportional cropping" enhances low frequencies. The
augmented image goes to the stronger teacher and the student of the last stage (Eq. 8).

kdlab's choices, all parameters (values lost in the extraction): the crop keeps the aspect ratio (side scale
``s ~ U(crop_scale)``, default ``(0.7, 1.0)``) at a uniform random position inside the image and is resized
back to the image size, so batch shapes and the padding are unchanged; noise is added to the image area only
(not the padding), with probability ``noise_prob`` (default 0.5) and ``sigma`` in the units of the tensor it
is added to (:class:`kdlab.models.algorithms.DFMSDDistill` converts its pixel-unit sigma, default 15, to the
normalised input).

Functions are pure; images are ``(C, H, W)`` (or ``(N, C, H, W)`` for :func:`masking_enhancement`).
"""
from __future__ import annotations

from typing import List, Optional, Sequence, Tuple, Union

import torch
import torch.nn.functional as F

from kdlab.core.masks import ME_THRESHOLD, me_decision

Sigma = Union[float, torch.Tensor]


def _uniform(lo: float, hi: float, generator: Optional[torch.Generator]) -> float:
    return float(lo + (hi - lo) * torch.rand((), generator=generator))


def gaussian_noise(img: torch.Tensor, sigma: Sigma, *, valid_hw: Optional[Tuple[int, int]] = None,
                   generator: Optional[torch.Generator] = None) -> torch.Tensor:
    """``img + N(0, sigma^2)`` on the valid ``(h, w)`` top-left area (default: all). ``sigma``: a float or a
    tensor broadcastable to ``(C, 1, 1)`` (per-channel). Shape kept: ``(C, H, W)``."""
    h, w = valid_hw or tuple(img.shape[-2:])
    out = img.clone()
    noise = torch.randn((img.shape[0], h, w), generator=generator, device='cpu').to(img)
    sig = torch.as_tensor(sigma, dtype=img.dtype, device=img.device)
    if sig.dim() == 1:
        sig = sig[:, None, None]
    out[:, :h, :w] = out[:, :h, :w] + noise * sig
    return out


def proportional_crop(img: torch.Tensor, scale: float, *, valid_hw: Optional[Tuple[int, int]] = None,
                      top_left: Optional[Tuple[int, int]] = None,
                      generator: Optional[torch.Generator] = None) -> torch.Tensor:
    """Crop a window of ``round(scale*h) x round(scale*w)`` (aspect ratio kept) from the valid ``(h, w)`` area
    and resize it back to ``(h, w)`` (bilinear): a zoom-in. ``top_left=(y, x)`` fixes the window (default:
    uniform random). Shape kept: ``(C, H, W)``; pixels outside the valid area are untouched."""
    if not 0.0 < scale <= 1.0:
        raise ValueError(f'crop scale must be in (0, 1], got {scale}')
    h, w = valid_hw or tuple(img.shape[-2:])
    ch, cw = max(1, int(round(scale * h))), max(1, int(round(scale * w)))
    if top_left is None:
        y0 = int(torch.randint(0, h - ch + 1, (), generator=generator))
        x0 = int(torch.randint(0, w - cw + 1, (), generator=generator))
    else:
        y0, x0 = top_left
    window = img[None, :, y0:y0 + ch, x0:x0 + cw]
    out = img.clone()
    out[:, :h, :w] = F.interpolate(window, size=(h, w), mode='bilinear', align_corners=False)[0]
    return out


def masking_enhancement(images: torch.Tensor, ratios: Sequence[float], *,
                        valid_hws: Optional[Sequence[Tuple[int, int]]] = None,
                        threshold: float = ME_THRESHOLD, noise_sigma: Sigma = 15.0, noise_prob: float = 0.5,
                        crop_scale: Tuple[float, float] = (0.7, 1.0),
                        generator: Optional[torch.Generator] = None) -> Tuple[torch.Tensor, List[str]]:
    """Eq. (4) on a batch ``(N, C, H, W)``: per image, ``ratios[i]`` (summed box area / image area) picks noise
    (``< threshold``; applied with probability ``noise_prob``) or a proportional crop (``>= threshold``).

    Returns the augmented batch (a new tensor) and what happened to each image: ``'noise'``, ``'crop'`` or
    ``'none'`` (the noise coin said no).
    """
    out, done = images.clone(), []
    for i in range(images.shape[0]):
        hw = tuple(valid_hws[i]) if valid_hws is not None else tuple(images.shape[-2:])
        if me_decision(float(ratios[i]), threshold) == 'noise':
            if float(torch.rand((), generator=generator)) < noise_prob:
                out[i] = gaussian_noise(images[i], noise_sigma, valid_hw=hw, generator=generator)
                done.append('noise')
            else:
                done.append('none')
        else:
            s = _uniform(crop_scale[0], crop_scale[1], generator)
            out[i] = proportional_crop(images[i], s, valid_hw=hw, generator=generator)
            done.append('crop')
    return out, done
