"""Attention and masks over the image (the ``attention_masks`` notebook): the teacher's FGD spatial / channel
attention per FPN level, every masking method's keep mask, and ICD's per-instance attention, with the boxes.

Inputs come from :mod:`kdlab.analysis.masks`; the level maps are put on the image grid by
:func:`kdlab.viz.featmaps.map_to_image` (bilinear for attention, nearest for masks).
"""
from __future__ import annotations

from typing import List, Optional, Sequence

import numpy as np

from kdlab.viz.featmaps import (DEFAULT_ALPHA, DEFAULT_CMAP, add_colorbar, clean_axes, draw_boxes, draw_overlay,
                                map_to_image, shared_norm)

#: Masked positions are drawn dark, kept positions light (the image shows through both).
MASK_COLOURS = ('#1a1a1a', '#f2f2f2')


def _on_image(fm, k, map2d, mode='bilinear', image_shape=None):
    return map_to_image(map2d, stride=fm.strides[k], input_shape=fm.input_shape,
                        image_shape=image_shape or fm.image.image.shape[:2], mode=mode)


def plot_spatial_attention(level_masks, fm, *, cmap: str = DEFAULT_CMAP, alpha: float = DEFAULT_ALPHA,
                           mode: str = 'minmax', temperature: Optional[float] = None, panel_size: float = 2.4,
                           label: str = 'teacher'):
    """One panel per level: the teacher's ``A_S`` over the image with its boxes, one colour scale for all levels
    (``A_S`` averages to 1 on every level, so the scale compares levels)."""
    import matplotlib.pyplot as plt
    image = fm.image.image
    maps = [_on_image(fm, fm.levels.index(lm.level), lm.spatial_attention) for lm in level_masks]
    norm = shared_norm(maps, mode=mode)
    fig, axes = plt.subplots(1, len(maps), figsize=(panel_size * len(maps) + 0.8, panel_size + 1.0), squeeze=False,
                             constrained_layout=True)
    m = None
    for j, (lm, mp) in enumerate(zip(level_masks, maps)):
        m = draw_overlay(axes[0, j], image, mp, norm=norm, cmap=cmap, alpha=alpha, boxes=fm.image.boxes)
        h, w = lm.spatial_attention.shape
        clean_axes(axes[0, j],
                   title=f'{lm.level} (stride {lm.stride}, {h}x{w})\nmax A_S = {lm.spatial_attention.max():.1f}',
                   ylabel=label if j == 0 else None)
    t = f', T = {temperature}' if temperature is not None else ''
    add_colorbar(fig, m, axes[0].tolist(), f'spatial attention A_S (mean 1{t})')
    fig.suptitle(f'Teacher spatial attention per FPN level: {fm.image.name}', fontsize=10)
    return fig


def plot_channel_attention(level_masks, *, panel_size: float = 2.4, label: str = 'teacher',
                           mask_ratio: Optional[float] = None):
    """One panel per level: the teacher's ``A_C`` per channel, sorted (log scale), with DMKD's channel-branch mask
    (masked channels in red); the dashed line is the mean (1)."""
    import matplotlib.pyplot as plt
    from matplotlib.patches import Patch
    n = len(level_masks)
    fig, axes = plt.subplots(1, n, figsize=(panel_size * n + 0.4, panel_size + 0.9), squeeze=False,
                             constrained_layout=True, sharey=True)
    for j, lm in enumerate(level_masks):
        ax = axes[0, j]
        order = np.argsort(-lm.channel_attention)
        vals = lm.channel_attention[order]
        masked = lm.channel_keep[order] < 0.5
        ax.bar(np.arange(len(vals)), vals, width=1.0, color=np.where(masked, '#d62728', '#7f7f7f'))
        ax.axhline(1.0, color='k', lw=0.8, ls='--')
        ax.set_yscale('log')          # a softmax over channels is often dominated by a few: log shows them all
        ax.set_title(f'{lm.level}: {int(masked.sum())}/{len(vals)} channels masked\nmax A_C = {vals[0]:.1f}',
                     fontsize=9)
        ax.set_xlabel('channel (sorted by A_C)', fontsize=8)
        if j == 0:
            ax.set_ylabel(f'{label} channel attention A_C (log)', fontsize=8)
        ax.tick_params(labelsize=7)
        ax.set_xlim(-0.5, len(vals) - 0.5)
    r = f' (mask ratio {mask_ratio})' if mask_ratio is not None else ''
    fig.legend(handles=[Patch(color='#d62728', label=f'masked by DMKD channel branch{r}'),
                        Patch(color='#7f7f7f', label='kept'), plt.Line2D([], [], color='k', ls='--', label='mean = 1')],
               loc='outside lower center', ncol=3, fontsize=8, frameon=False)
    fig.suptitle('Teacher channel attention per FPN level and the channels DMKD masks', fontsize=10)
    return fig


def plot_method_masks(level_masks, fm, *, enhanced_fm=None, enhancement=None, methods: Optional[Sequence[str]] = None,
                      mask_ratio: Optional[float] = None, alpha: float = 0.55, panel_size: float = 2.1):
    """Rows: masking methods; columns: FPN levels. Each panel: the keep mask on the image (dark = masked, the
    student must reconstruct the teacher there; light = kept). DFMSD's row sits on the enhanced image."""
    import matplotlib.pyplot as plt
    from matplotlib.colors import BoundaryNorm, ListedColormap
    methods = list(methods or [m for m in level_masks[0].masks])
    cmap = ListedColormap(list(MASK_COLOURS))
    norm = BoundaryNorm([-0.5, 0.5, 1.5], cmap.N)
    fig, axes = plt.subplots(len(methods), len(level_masks),
                             figsize=(panel_size * len(level_masks) + 1.2, panel_size * len(methods) + 0.8),
                             squeeze=False, constrained_layout=True)
    m = None
    row_names = {'MGD': 'MGD\n(random)', 'AMD/DMKD': 'AMD / DMKD\n(top A_S)',
                 'DFMSD': 'DFMSD\n(enhanced image)'}
    for i, meth in enumerate(methods):
        on_enh = meth == 'DFMSD' and enhanced_fm is not None
        src = enhanced_fm if on_enh else fm
        for j, lm in enumerate(level_masks):
            ax = axes[i, j]
            if meth not in lm.masks:
                ax.set_axis_off()
                continue
            k = src.levels.index(lm.level)
            mp = _on_image(src, k, lm.masks[meth], mode='nearest')
            m = draw_overlay(ax, src.image.image, mp, norm=norm, cmap=cmap, alpha=alpha, boxes=src.image.boxes,
                             box_color='#ffd700')
            kept = float(lm.masks[meth].mean())
            name = row_names.get(meth, meth.replace('DSAMKD s=', 'DSAMKD\n(max-pool '))
            if meth.startswith('DSAMKD'):
                name += ')'
            if on_enh and enhancement is not None:
                name += f'\nME: {enhancement.done}'
            clean_axes(ax, title=(f'{lm.level} (stride {lm.stride})\n' if i == 0 else '') + f'{1 - kept:.0%} masked',
                       ylabel=name if j == 0 else None)
    add_colorbar(fig, m, axes[-1, :].tolist(), 'keep mask (dark: masked, the student reconstructs the teacher there)',
                 orientation='horizontal', ticks=[0, 1], ticklabels=['masked', 'kept'], shrink=0.5)
    r = f', mask ratio {mask_ratio}' if mask_ratio is not None else ''
    fig.suptitle(f'Masks derived from the teacher per method and level{r}: {fm.image.name}', fontsize=10)
    return fig


def plot_instance_attention(per_instance: List[List[np.ndarray]], mask: List[np.ndarray], fm, boxes, *,
                            levels: Optional[Sequence[str]] = None, max_instances: int = 4,
                            cmap: str = DEFAULT_CMAP, alpha: float = DEFAULT_ALPHA, panel_size: float = 2.1,
                            decoder: str = 'decoder-free'):
    """Rows: instances (their box highlighted) and ICD's mask (sum over instances); columns: FPN levels.

    An instance's attention sums to 1 over all levels together; the title of a panel gives the level's share
    (*mass*). The colours show the attention relative to a uniform one *on that level* (value x positions /
    mass: 1 = uniform), in one scale per row, so where an instance looks reads the same on every level."""
    import matplotlib.pyplot as plt
    levels = list(levels or fm.levels)
    n = min(len(per_instance), max_instances)
    if n == 0:
        fig, ax = plt.subplots(figsize=(5, 4), constrained_layout=True)
        ax.imshow(fm.image.image)
        clean_axes(ax, title=f'{fm.image.name}: no instances')
        ax.text(0.5, 0.5, 'no boxes: no ground truth and no teacher\nprediction above the score threshold',
                transform=ax.transAxes, ha='center', va='center', fontsize=9, color='white',
                bbox=dict(facecolor='black', alpha=0.6))
        return fig
    rows = [(f'instance {q}', per_instance[q], q) for q in range(n)] + [('ICD mask\n(sum over instances)', mask, None)]
    fig, axes = plt.subplots(len(rows), len(levels), figsize=(panel_size * len(levels) + 1.4,
                                                              panel_size * len(rows) + 0.8),
                             squeeze=False, constrained_layout=True)
    image = fm.image.image
    for i, (name, maps, q) in enumerate(rows):
        rel = [mp * mp.size / max(float(mp.sum()), 1e-12) for mp in maps]
        on_img = [_on_image(fm, fm.levels.index(lv), mp) for lv, mp in zip(levels, rel)]
        norm = shared_norm(on_img)
        m = None
        for j, (lv, mp) in enumerate(zip(levels, on_img)):
            ax = axes[i, j]
            m = draw_overlay(ax, image, mp, norm=norm, cmap=cmap, alpha=alpha)
            draw_boxes(ax, boxes, highlight=q)
            share = float(maps[j].sum())
            clean_axes(ax, title=(f'{lv}\n' if i == 0 else '') + f'mass {share:.2f}', ylabel=name if j == 0 else None)
        add_colorbar(fig, m, axes[i].tolist(), ('attention' if q is not None else 'mask') + '\n/ level mean',
                     orientation='vertical')
    fig.suptitle(f'ICD-style instance-conditional attention ({decoder}) of the teacher: {fm.image.name}', fontsize=10)
    return fig
