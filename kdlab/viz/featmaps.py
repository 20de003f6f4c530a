"""Feature maps on matplotlib, following mmengine's ``Visualizer.draw_featmap`` conventions, plus one colour scale
shared across models.

mmengine (``mmengine/visualization/visualizer.py``, ``draw_featmap``) reduces a ``(C, H, W)`` map to what it shows:

* ``channel_reduction='squeeze_mean'``: the mean over channels;
* ``channel_reduction='select_max'``: the channel with the largest sum over ``(H, W)``;
* ``channel_reduction=None, topk=k``: the ``k`` channels with the largest sums, laid out by ``arrangement``
  ``(rows, cols)`` (default ``(4, 5)``);

resizes the map bilinearly to the image, min-max normalises *each map on its own*, colours it with ``jet`` and
blends it over the image with ``alpha = 0.5``. Per-map min-max hides exactly what a distillation study compares
(a student whose activations are half the teacher's looks the same), so kdlab keeps the reductions, the
resizing, the colormap and the blending, and replaces the per-map normalisation by :func:`shared_norm`: one
``matplotlib.colors.Normalize`` over every map of a comparison (teacher and students; per level or over all
levels), drawn as a colour bar.

Reductions here are applied at the map's own resolution, then the result is resized (mmengine resizes first;
for ``squeeze_mean`` both orders agree, for ``select_max`` / ``topk`` the choice of channel may differ at
borders). :func:`map_to_image` maps a level onto the original image exactly: upsample by the stride, crop the
padding, resize to the image.
"""
from __future__ import annotations

from typing import Dict, Mapping, Optional, Sequence, Tuple

import numpy as np
import torch
import torch.nn.functional as F

from kdlab.errors import UnknownNameError

REDUCTIONS = ('squeeze_mean', 'select_max', None)
DEFAULT_CMAP = 'jet'      # mmengine's draw_featmap colours maps with cv2.COLORMAP_JET
DEFAULT_ALPHA = 0.5       # and blends them with weight 0.5


# ------------------------------------------------------------------------------------------ reductions
def _chw(feat) -> torch.Tensor:
    t = torch.as_tensor(feat).detach().cpu().float()
    if t.dim() == 4 and t.shape[0] == 1:
        t = t[0]
    if t.dim() == 2:
        t = t[None]
    if t.dim() != 3:
        raise ValueError(f'expected a feature map (C, H, W), got shape {tuple(t.shape)}')
    return t


def topk_channels(feat, k: int = 20) -> torch.Tensor:
    """Indices of the ``k`` channels with the largest sum over ``(H, W)`` (mmengine's ranking), largest first."""
    t = _chw(feat)
    return torch.topk(t.sum(dim=(1, 2)), min(int(k), t.shape[0])).indices


def reduce_featmap(feat, channel_reduction: Optional[str] = 'squeeze_mean', topk: int = 20) -> np.ndarray:
    """``(C, H, W)`` -> ``(H, W)`` (``'squeeze_mean'`` / ``'select_max'``) or ``(k, H, W)`` (``None``: the top-k
    channels by sum, largest first; ``topk <= 0`` keeps a 1- or 3-channel map as it is)."""
    if channel_reduction not in REDUCTIONS:
        raise UnknownNameError('channel_reduction', str(channel_reduction), [str(r) for r in REDUCTIONS])
    t = _chw(feat)
    if channel_reduction == 'squeeze_mean':
        return t.mean(dim=0).numpy()
    if channel_reduction == 'select_max':
        return t[topk_channels(t, 1)[0]].numpy()
    if topk <= 0:
        if t.shape[0] not in (1, 3):
            raise ValueError(f'topk <= 0 shows the map as an image: it needs 1 or 3 channels, got {t.shape[0]}; '
                             "use channel_reduction='squeeze_mean' or topk > 0")
        return t.numpy()
    return t[topk_channels(t, topk)].numpy()


def map_to_image(map2d, *, stride: int, input_shape: Tuple[int, int], image_shape: Tuple[int, int],
                 mode: str = 'bilinear') -> np.ndarray:
    """A level's ``(h, w)`` map on the original image's pixel grid ``image_shape``.

    The map covers ``h * stride x w * stride`` pixels of the resized input (``input_shape``, before padding):
    upsample by ``stride``, crop to ``input_shape``, resize to ``image_shape`` (bilinear, as mmengine; use
    ``mode='nearest'`` for masks).
    """
    t = torch.as_tensor(np.asarray(map2d, dtype=np.float32))[None, None]
    kw = dict(align_corners=False) if mode == 'bilinear' else {}
    up = F.interpolate(t, size=(t.shape[-2] * stride, t.shape[-1] * stride), mode=mode, **kw)
    up = up[..., :input_shape[0], :input_shape[1]]
    out = F.interpolate(up, size=tuple(int(s) for s in image_shape), mode=mode, **kw)
    return out[0, 0].numpy()


# --------------------------------------------------------------------------------------- normalisation
def shared_norm(maps: Sequence, *, mode: str = 'minmax', percentiles: Tuple[float, float] = (1.0, 99.0),
                symmetric: bool = False, vmin: Optional[float] = None, vmax: Optional[float] = None):
    """One ``matplotlib.colors.Normalize`` for every map in ``maps`` (teacher and students alike).

    ``mode='minmax'`` spans the joint minimum and maximum (mmengine's min-max, taken jointly);
    ``'percentile'`` the joint ``percentiles`` (robust to a few extreme activations). ``symmetric`` centres
    the range on 0 (signed features, differences). ``vmin`` / ``vmax`` fix either end.
    """
    from matplotlib.colors import Normalize
    values = np.concatenate([np.asarray(m, dtype=np.float64).ravel() for m in maps]) if len(maps) else np.zeros(1)
    values = values[np.isfinite(values)]
    if values.size == 0:
        values = np.zeros(1)
    if mode == 'minmax':
        lo, hi = float(values.min()), float(values.max())
    elif mode == 'percentile':
        lo, hi = (float(v) for v in np.percentile(values, percentiles))
    else:
        raise UnknownNameError('normalisation mode', mode, ('minmax', 'percentile'))
    if symmetric:
        m = max(abs(lo), abs(hi))
        lo, hi = -m, m
    lo = lo if vmin is None else float(vmin)
    hi = hi if vmax is None else float(vmax)
    if not hi > lo:                       # a constant map: give it a visible, honest range
        hi = lo + (abs(lo) * 1e-3 or 1e-6)
    return Normalize(vmin=lo, vmax=hi, clip=False)


# ---------------------------------------------------------------------------------------------- drawing
def clean_axes(ax, *, title: Optional[str] = None, ylabel: Optional[str] = None) -> None:
    """Image panels: no ticks (pixel indices say nothing), a title and a row label instead."""
    ax.set_xticks([])
    ax.set_yticks([])
    if title:
        ax.set_title(title, fontsize=9)
    if ylabel:
        ax.set_ylabel(ylabel, fontsize=9)


def draw_boxes(ax, boxes, *, color: str = 'white', lw: float = 1.2, highlight: Optional[int] = None) -> None:
    """Outline ``(K, 4)`` xyxy boxes (pixels of the image drawn in ``ax``); ``highlight`` thickens one."""
    from matplotlib.patches import Rectangle
    if boxes is None:
        return
    for i, (x1, y1, x2, y2) in enumerate(np.asarray(boxes, dtype=np.float64).reshape(-1, 4)):
        hl = highlight is not None and i == highlight
        ax.add_patch(Rectangle((x1, y1), x2 - x1, y2 - y1, fill=False, edgecolor='yellow' if hl else color,
                               linewidth=lw * (2.2 if hl else 1.0), alpha=1.0 if hl or highlight is None else 0.5))


def draw_overlay(ax, image: Optional[np.ndarray], map2d: np.ndarray, *, norm=None, cmap: str = DEFAULT_CMAP,
                 alpha: float = DEFAULT_ALPHA, boxes=None, box_color: str = 'white'):
    """``map2d`` (already on the image grid) blended over ``image`` with weight ``alpha``; returns the mappable."""
    if image is not None:
        ax.imshow(image, interpolation='nearest')
    m = ax.imshow(map2d, cmap=cmap, norm=norm, alpha=alpha if image is not None else 1.0, interpolation='nearest',
                  extent=(0, map2d.shape[1], map2d.shape[0], 0) if image is None else
                  (0, image.shape[1], image.shape[0], 0))
    draw_boxes(ax, boxes, color=box_color)
    ax.set_xlim(0, (image if image is not None else map2d).shape[1])
    ax.set_ylim((image if image is not None else map2d).shape[0], 0)
    return m


def add_colorbar(fig, mappable, ax, label: str, *, orientation: str = 'vertical', ticks=None, ticklabels=None,
                 shrink: float = 0.9):
    """A labelled colour bar for ``mappable`` beside the axes ``ax`` (one axes or a list)."""
    cb = fig.colorbar(mappable, ax=ax, orientation=orientation, fraction=0.046 if orientation == 'vertical'
                      else 0.08, pad=0.03, shrink=shrink, aspect=20 if orientation == 'vertical' else 30)
    # the colour bar shows the map's colours at full strength (the overlay blends them with the image)
    cb.solids.set_alpha(1.0) if getattr(cb, 'solids', None) is not None else None
    cb.set_label(label, fontsize=8)
    cb.ax.tick_params(labelsize=7)
    if ticks is not None:
        cb.set_ticks(ticks)
        if ticklabels is not None:
            cb.set_ticklabels(ticklabels)
    return cb


def plot_featmap_grid(feats: Mapping[str, 'FeatureMaps'], *, image_index: int = 0,
                      levels: Optional[Sequence[str]] = None,
                      channel_reduction: Optional[str] = 'squeeze_mean', share: str = 'level', mode: str = 'minmax',
                      overlay: bool = True, alpha: float = DEFAULT_ALPHA, cmap: str = DEFAULT_CMAP, boxes: bool = True,
                      panel_size: float = 2.2, title: Optional[str] = None):
    """DFMSD Fig. 4: the FPN maps of one image, one row per model, one column per level, in shared colours.

    Args:
        feats: ``{label: [FeatureMaps per image]}`` (:func:`kdlab.analysis.features.extract_all`), the teacher
            first.
        image_index: which image of the sample.
        levels: the levels to show (default: every level of the first model).
        channel_reduction: ``'squeeze_mean'`` or ``'select_max'`` (mmengine's).
        share: ``'level'`` — one colour scale per column, shared by all models (levels differ in magnitude);
            ``'all'`` — one scale for the whole figure.
        mode: :func:`shared_norm` mode.
        overlay: blend over the image (else the bare map, on the image grid).
    """
    import matplotlib.pyplot as plt
    labels = list(feats)
    first = feats[labels[0]][image_index]
    levels = list(levels or first.levels)
    image = first.image.image
    grid: Dict[Tuple[str, str], np.ndarray] = {}
    for lab in labels:
        fm = feats[lab][image_index]
        for lv in levels:
            if lv in fm.levels:
                k = fm.levels.index(lv)
                red = reduce_featmap(fm.maps[k], channel_reduction)
                grid[lab, lv] = map_to_image(red, stride=fm.strides[k], input_shape=fm.input_shape,
                                             image_shape=image.shape[:2])
    norms = {}
    if share == 'all':
        n = shared_norm(list(grid.values()), mode=mode)
        norms = {lv: n for lv in levels}
    elif share == 'level':
        norms = {lv: shared_norm([v for (lab, l2), v in grid.items() if l2 == lv], mode=mode) for lv in levels}
    else:
        raise UnknownNameError('share', share, ('level', 'all'))
    fig, axes = plt.subplots(len(labels), len(levels), figsize=(panel_size * len(levels) + 0.6,
                                                                panel_size * len(labels) + 0.9),
                             squeeze=False, constrained_layout=True)
    what = {'squeeze_mean': 'mean over channels', 'select_max': 'strongest channel'}[channel_reduction]
    mappables = {}
    for i, lab in enumerate(labels):
        fm = feats[lab][image_index]
        for j, lv in enumerate(levels):
            ax = axes[i, j]
            if (lab, lv) not in grid:
                ax.set_axis_off()
                ax.text(0.5, 0.5, f'no {lv}', ha='center', va='center', transform=ax.transAxes)
                continue
            k = fm.levels.index(lv)
            mappables[lv] = draw_overlay(ax, image if overlay else None, grid[lab, lv], norm=norms[lv], cmap=cmap,
                                         alpha=alpha, boxes=first.image.boxes if boxes else None)
            h, w = fm.maps[k].shape[-2:]
            clean_axes(ax, title=f'{lv} (stride {fm.strides[k]}, {h}x{w})' if i == 0 else None,
                       ylabel=lab if j == 0 else None)
    if share == 'all':
        add_colorbar(fig, next(iter(mappables.values())), axes[:, -1].tolist(), f'{what} (one scale, all panels)')
    else:
        for j, lv in enumerate(levels):
            if lv in mappables:
                add_colorbar(fig, mappables[lv], axes[:, j].tolist(), f'{lv}: {what}\n(shared by the rows)',
                             orientation='horizontal')
    fig.suptitle(title or f'FPN feature maps of {first.image.name} ({what}; colours comparable down each column)',
                 fontsize=10)
    return fig


def plot_topk_channels(fmap: 'FeatureMaps', level: str, *, topk: int = 20, arrangement: Tuple[int, int] = (4, 5),
                       overlay: bool = True, alpha: float = DEFAULT_ALPHA, cmap: str = DEFAULT_CMAP,
                       norm_maps: Optional[Sequence] = None, label: str = '', panel_size: float = 1.7):
    """mmengine's ``channel_reduction=None`` view: the ``topk`` channels (largest sum first) of one level in an
    ``arrangement = (rows, cols)`` grid, in one colour scale (``norm_maps``: more maps to share it with)."""
    import matplotlib.pyplot as plt
    rows, cols = arrangement
    if rows * cols < topk:
        raise ValueError(f'arrangement {arrangement} holds {rows * cols} maps, fewer than topk={topk}')
    k = fmap.levels.index(level)
    idx = topk_channels(fmap.maps[k], topk)
    image = fmap.image.image
    maps = [map_to_image(fmap.maps[k][c].numpy(), stride=fmap.strides[k], input_shape=fmap.input_shape,
                         image_shape=image.shape[:2]) for c in idx.tolist()]
    norm = shared_norm(maps + list(norm_maps or []))
    fig, axes = plt.subplots(rows, cols, figsize=(panel_size * cols + 0.8, panel_size * rows + 0.6), squeeze=False,
                             constrained_layout=True)
    m = None
    for n, ax in enumerate(axes.flat):
        if n >= len(maps):
            ax.set_axis_off()
            continue
        m = draw_overlay(ax, image if overlay else None, maps[n], norm=norm, cmap=cmap, alpha=alpha)
        clean_axes(ax, title=f'channel {int(idx[n])}')
    add_colorbar(fig, m, axes.ravel().tolist(), 'activation (one scale, all channels)')
    fig.suptitle(f'{label} {level}: top-{len(maps)} channels by summed activation', fontsize=10)
    return fig
