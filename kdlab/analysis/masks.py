"""The teacher's attention and the mask each masking method derives from it, per FPN level, for one image.

Everything is computed by the code the losses use, so the pictures show what the methods train with:

* FGD attention ``A_S`` / ``A_C`` — :func:`kdlab.core.attention.spatial_attention` / ``channel_attention``;
* **MGD**: the random keep mask, :func:`kdlab.core.masks.random_spatial_mask` (teacher-independent);
* **AMD / DMKD**: the top-``mask_ratio`` positions of the teacher's ``A_S`` masked — ``DMKDLoss.spatial_mask``
  (= ``AMDLoss.spatial_mask``); DMKD's channel branch masks the top channels of ``A_C`` —
  ``DMKDLoss.channel_mask``;
* **DFMSD**: the same dual masks computed on the teacher's features of the *masking-enhanced* image (Eq. 4:
  Gaussian noise when the candidate boxes cover less than the threshold of the image, else a random
  proportional crop; :func:`kdlab.analysis.spectra.enhance_image`);
* **DSAMKD** (kdlab's reading, ``DSAMKDLoss``): the DMKD spatial mask of the teacher map max-pooled with window
  ``s`` for each scale ``s`` (:func:`kdlab.core.attention.scale_pyramid`), shown on the level's grid;
* **ICD**: per-instance attention. ICD's masks come from a decoder trained with its auxiliary task
  (``kdlab.models.icd``); without such a decoder kdlab shows the *decoder-free* instance-conditional attention
  (:func:`instance_attention`): the query of an instance is the teacher's mean feature inside its box, the keys
  are the teacher's features at every position of every level, ``softmax_s(q . k / (sqrt(C) tau))`` over all
  positions of all levels, and ICD's mask is the sum over instances (:func:`kdlab.models.losses.icd.instance_mask`).
"""
from __future__ import annotations

import dataclasses
import math
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch
import torch.nn.functional as F

from kdlab.analysis.features import FeatureMaps
from kdlab.core.attention import DEFAULT_TEMPERATURE, channel_attention, scale_pyramid, spatial_attention
from kdlab.core.masks import random_spatial_mask

#: MGD's lambda for one-stage students (kdlab's default mask ratio for every masking method).
DEFAULT_MASK_RATIO = 0.65
DSAMKD_SCALES = (1, 2, 4)


@dataclasses.dataclass
class LevelMasks:
    """One level of one image: the teacher's attention and every method's keep mask (1 kept, 0 masked)."""

    level: str
    stride: int
    spatial_attention: np.ndarray          # (h, w), mean 1
    channel_attention: np.ndarray          # (C,), mean 1
    masks: Dict[str, np.ndarray]           # method -> (h, w) spatial keep mask on this level's grid
    channel_keep: np.ndarray               # (C,) DMKD channel-branch keep mask
    enhanced_channel_keep: Optional[np.ndarray] = None


def _dmkd_loss(mask_ratio: float, channel_mask_ratio: Optional[float], temperature: float, mask_mode: str):
    from kdlab.models.losses.dmkd import DMKDLoss   # the loss's own mask functions (registers mmrazor losses)
    return DMKDLoss(mask_ratio=mask_ratio, channel_mask_ratio=channel_mask_ratio, temperature=temperature,
                    mask_mode=mask_mode)


def method_masks(teacher: FeatureMaps, *, enhanced: Optional[FeatureMaps] = None,
                 mask_ratio: float = DEFAULT_MASK_RATIO, channel_mask_ratio: Optional[float] = None,
                 temperature: float = DEFAULT_TEMPERATURE, mask_mode: str = 'top',
                 scales: Sequence[int] = DSAMKD_SCALES, seed: int = 0,
                 levels: Optional[Sequence[str]] = None) -> List[LevelMasks]:
    """Per level of ``teacher``: attention and the masks of MGD, AMD/DMKD, DFMSD (when ``enhanced``, the teacher's
    features of the ME-enhanced image, is given) and DSAMKD (one mask per scale > 1; scale 1 is DMKD's).

    Mask names: ``'MGD'``, ``'AMD/DMKD'``, ``'DFMSD'``, ``'DSAMKD s=<s>'``. ``seed`` fixes MGD's random mask
    (and ``mask_mode='sample'``). ``levels``: the levels to compute (default: all).
    """
    loss = _dmkd_loss(mask_ratio, channel_mask_ratio, temperature, mask_mode)
    gen = torch.Generator().manual_seed(int(seed))
    out = []
    for k, lv in enumerate(teacher.levels):
        if levels is not None and lv not in levels:
            continue
        T = teacher.maps[k][None]                                   # (1, C, h, w)
        h, w = T.shape[-2:]
        masks = {'MGD': random_spatial_mask(1, h, w, mask_ratio, generator=gen)[0, 0].numpy()}
        torch.manual_seed(seed)      # mask_mode='sample' draws from torch's global generator
        masks['AMD/DMKD'] = loss.spatial_mask(T)[0, 0].numpy()
        enh_keep = None
        if enhanced is not None and lv in enhanced.levels:
            Te = enhanced.maps[enhanced.levels.index(lv)][None]
            masks['DFMSD'] = loss.spatial_mask(Te)[0, 0].numpy()
            enh_keep = loss.channel_mask(Te)[0, :, 0, 0].numpy()
        for s, pooled in zip(scales, scale_pyramid(T, scales)):
            if int(s) == 1:
                continue
            keep = loss.spatial_mask(pooled)                        # (1, 1, ceil(h/s), ceil(w/s))
            keep = keep.repeat_interleave(int(s), dim=-2).repeat_interleave(int(s), dim=-1)[..., :h, :w]
            masks[f'DSAMKD s={int(s)}'] = keep[0, 0].numpy()
        out.append(LevelMasks(lv, teacher.strides[k], spatial_attention(T, temperature)[0].numpy(),
                              channel_attention(T, temperature)[0].numpy(), masks,
                              loss.channel_mask(T)[0, :, 0, 0].numpy(), enh_keep))
    return out


def candidate_boxes(image, teacher=None, *, score_thr: float = 0.3) -> Optional[np.ndarray]:
    """The boxes the methods would use for ``image``: its ground truth, else (no ground truth, e.g. a
    photograph) the ``teacher``'s predictions above ``score_thr``; None when neither is available."""
    if image.boxes is not None:
        return np.asarray(image.boxes, dtype=np.float32)
    if teacher is None:
        return None
    from kdlab.analysis.features import predict_boxes
    return predict_boxes(teacher, [image], score_thr=score_thr)[0]


def dfmsd_enhanced(teacher, image, *, boxes: Optional[np.ndarray] = None, seed: int = 0, **me):
    """DFMSD's masking enhancement of ``image`` (Eq. 4) and the teacher's features of the enhanced image.

    ``boxes``: the candidate boxes (default :func:`candidate_boxes`); ``me``: settings of
    :func:`kdlab.analysis.spectra.me_settings` (``noise_prob`` defaults to 1 here, to show the noise).
    Returns ``(FeatureMaps of the enhanced image, Enhancement)``.
    """
    from kdlab.analysis.features import extract_fpn
    from kdlab.analysis.spectra import enhance_image, me_settings
    settings = me_settings(**{'noise_prob': 1.0, **me})
    if boxes is None:
        boxes = candidate_boxes(image, teacher, score_thr=settings['box_score_thr'])
    enhanced, what = enhance_image(image, boxes=boxes, seed=seed, threshold=settings['threshold'],
                                   noise_sigma=settings['noise_sigma'], noise_prob=settings['noise_prob'],
                                   crop_scale=tuple(settings['crop_scale']))
    return extract_fpn(teacher, [enhanced])[0], what


def most_instances(images) -> int:
    """Index of the image with the most ground-truth boxes (0 when none has boxes)."""
    counts = [0 if im.boxes is None else len(im.boxes) for im in images]
    return int(np.argmax(counts)) if counts else 0


# ------------------------------------------------------------------------------------------------ ICD
def _boxes_on_level(boxes: np.ndarray, fm: FeatureMaps, k: int) -> List[Tuple[int, int, int, int]]:
    """Boxes (original pixels) -> inclusive-exclusive cell ranges ``(y0, y1, x0, x1)`` of level ``k``
    (at least one cell)."""
    sx, sy = fm.scale_factor
    stride = fm.strides[k]
    h, w = fm.maps[k].shape[-2:]
    out = []
    for x1, y1, x2, y2 in np.asarray(boxes, dtype=np.float64).reshape(-1, 4):
        c0, c1 = int(math.floor(x1 * sx / stride)), int(math.ceil(x2 * sx / stride))
        r0, r1 = int(math.floor(y1 * sy / stride)), int(math.ceil(y2 * sy / stride))
        c0, r0 = min(max(c0, 0), w - 1), min(max(r0, 0), h - 1)
        out.append((r0, max(r1, r0 + 1), c0, max(c1, c0 + 1)))
    return out


#: Softmax temperature of the decoder-free instance attention (kdlab's choice: the scale of a dot product of
#: LayerNorm-ed features is arbitrary; ICD's learned queries use 1).
ICD_TEMPERATURE = 0.25


def instance_attention(teacher: FeatureMaps, boxes: np.ndarray, *, temperature: float = ICD_TEMPERATURE,
                       levels: Optional[Sequence[str]] = None) -> Tuple[List[List[np.ndarray]], List[np.ndarray]]:
    """Decoder-free ICD-style attention of each instance over every position of every level.

    Per instance ``q``: ``query = mean`` of the (LayerNorm-ed over channels) teacher features inside its box,
    averaged over the levels; ``attn_q(s) = softmax_s(query . key_s / (sqrt(C) * temperature))`` over all
    positions ``s`` of all levels (each row sums to 1, as in ICD's decoder; ``temperature`` defaults to
    :data:`ICD_TEMPERATURE`, sharper than ICD's 1 because these queries are not learned). ICD's mask is
    ``m(s) = sum_q attn_q(s)`` (``kdlab.models.losses.icd.instance_mask``).

    Returns ``(per_instance, mask)``: ``per_instance[q][l]`` the ``(h_l, w_l)`` attention of instance ``q`` on
    level ``l``; ``mask[l]`` the summed mask on level ``l``.
    """
    from kdlab.models.losses.icd import instance_mask
    idx = [teacher.levels.index(lv) for lv in (levels or teacher.levels)]
    maps = [teacher.maps[k] for k in idx]
    c = maps[0].shape[0]
    keys = torch.cat([F.layer_norm(m.reshape(c, -1).T, (c,)) for m in maps], dim=0)     # (S, C)
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    if len(boxes) == 0:
        return [], [np.zeros(m.shape[-2:], dtype=np.float32) for m in maps]
    queries = []
    for b in boxes:
        per_level = []
        for k, m in zip(idx, maps):
            (r0, r1, c0, c1), = _boxes_on_level(b[None], teacher, k)
            cells = m[:, r0:r1, c0:c1].reshape(c, -1).T
            per_level.append(F.layer_norm(cells, (c,)).mean(dim=0))
        queries.append(torch.stack(per_level).mean(dim=0))
    q = torch.stack(queries)                                                            # (Q, C)
    logits = (q @ keys.T / math.sqrt(c))[None, None]                                    # (1, 1, Q, S)
    attn = (logits / temperature).softmax(dim=-1)[0, 0]                                 # (Q, S)
    mask = instance_mask(logits, torch.ones(1, len(boxes)), temperature)[0, 0]          # (S,)
    sizes = [int(m.shape[-2] * m.shape[-1]) for m in maps]
    shapes = [tuple(m.shape[-2:]) for m in maps]

    def split(v):
        return [part.reshape(shape).numpy() for part, shape in zip(torch.split(v, sizes), shapes)]

    return [split(a) for a in attn], split(mask)


def instance_focus(teacher: FeatureMaps, boxes: np.ndarray, per_instance: List[List[np.ndarray]], *,
                   levels: Optional[Sequence[str]] = None) -> 'pandas.DataFrame':
    """How much of each instance's attention (:func:`instance_attention`) falls inside its own box, against
    what a uniform attention would put there (the box's share of all positions): one row per instance with
    ``mass_in_box``, ``uniform`` and their ratio ``focus`` (> 1: the instance's query finds its own object)."""
    import pandas as pd
    idx = [teacher.levels.index(lv) for lv in (levels or teacher.levels)]
    rows = []
    for q, att in enumerate(per_instance):
        inside = area = total = cells = 0.0
        for k, a in zip(idx, att):
            (r0, r1, c0, c1), = _boxes_on_level(np.asarray(boxes)[q][None], teacher, k)
            inside += float(a[r0:r1, c0:c1].sum())
            total += float(a.sum())
            area += (r1 - r0) * (c1 - c0)
            cells += a.size
        mass, uniform = inside / max(total, 1e-12), area / cells
        rows.append(dict(instance=q, mass_in_box=mass, uniform=uniform, focus=mass / uniform))
    return pd.DataFrame(rows)

