"""Fourier pictures of DFMSD section 3.4 (the ``dft_spectra`` notebook): Fig. 6's spectra of an image and its
flipped / cropped / noised variants, radial power profiles, band shares over a sample, and Eq. (4)'s
masking-enhancement decision per image."""
from __future__ import annotations

from typing import Dict, Optional, Sequence

import numpy as np

from kdlab.analysis.spectra import KIND_LABELS, SPECTRA_CROP_SCALE, SPECTRA_NOISE_SIGMA
from kdlab.core import frequency as fq
from kdlab.viz.featmaps import add_colorbar, clean_axes, draw_boxes, shared_norm

KIND_COLOURS = {'none': '#000000', 'flip': '#1f77b4', 'crop': '#2ca02c', 'noise': '#d62728',
                'crop_window': '#98df8a'}


def plot_spectra_grid(images, *, kinds: Sequence[str] = ('none',) + fq.AUGMENTATIONS, max_images: int = 2,
                      crop_scale=SPECTRA_CROP_SCALE, noise_sigma: float = SPECTRA_NOISE_SIGMA, seed: int = 0,
                      window: Optional[str] = None, low: float = fq.LOW_CUTOFF, high: float = fq.HIGH_CUTOFF,
                      cmap: str = 'viridis', panel_size: float = 2.2):
    """DFMSD Fig. 6: per image, a row of the augmented images and a row of their centred log-magnitude spectra
    ``log(1 + |F|)``, the four spectra of an image in one colour scale; each spectrum panel notes its low / high
    energy shares. Image ``i`` is augmented with seed ``seed + i`` (as :func:`kdlab.analysis.spectra.band_table`)."""
    import matplotlib.pyplot as plt
    images = list(images)[:max_images]
    fig, axes = plt.subplots(2 * len(images), len(kinds), figsize=(panel_size * len(kinds) + 1.2,
                                                                   2 * panel_size * len(images) + 0.6),
                             squeeze=False, constrained_layout=True)
    for i, im in enumerate(images):
        augs = [fq.augment(im.image, k, crop_scale=crop_scale, noise_sigma=noise_sigma, seed=seed + i) for k in kinds]
        specs = [fq.log_magnitude_spectrum(a, window=window) for a in augs]
        norm = shared_norm(specs)
        m = None
        for j, (kind, a, s) in enumerate(zip(kinds, augs, specs)):
            ax = axes[2 * i, j]
            ax.imshow(a, cmap='gray' if a.ndim == 2 else None, interpolation='nearest')
            clean_axes(ax, title=KIND_LABELS.get(kind, kind), ylabel=im.name if j == 0 else None)
            ax = axes[2 * i + 1, j]
            m = ax.imshow(s, cmap=cmap, norm=norm, extent=(-0.5, 0.5, 0.5, -0.5), interpolation='nearest')
            sh = fq.band_shares(a, low=low, high=high, window=window)
            ax.text(0.02, 0.02, f"low {sh['low']:.2f}  high {sh['high']:.3f}", transform=ax.transAxes, fontsize=7,
                    color='white', va='bottom', ha='left', bbox=dict(facecolor='black', alpha=0.5, pad=1.5, lw=0))
            ax.set_xlabel('f_x (cycles/px)', fontsize=8)
            ax.set_ylabel('f_y (cycles/px)' if j == 0 else '', fontsize=8)
            ax.tick_params(labelsize=7)
            ax.set_xticks([-0.5, 0, 0.5])
            ax.set_yticks([-0.5, 0, 0.5])
        add_colorbar(fig, m, axes[2 * i + 1].tolist(), 'log(1 + |DFT|)\n(one scale per image)')
    fig.suptitle(f'Centred log-magnitude DFT of images and their augmentations (low: rho < {low}, '
                 f'high: rho >= {high}; rho = 1 at Nyquist)', fontsize=10)
    return fig


def plot_radial_profiles(rho: np.ndarray, profs: Dict[str, np.ndarray], *, low: float = fq.LOW_CUTOFF,
                         high: float = fq.HIGH_CUTOFF, title: str = ''):
    """Left: the median normalised radial power profile per augmentation (band: inter-quartile range over the
    images). Right: the median per-image ratio of each augmented profile to the original's (1 = unchanged)."""
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8), constrained_layout=True)
    base = profs.get('none')
    for kind, p in profs.items():
        c = KIND_COLOURS.get(kind, None)
        lab = f'{KIND_LABELS.get(kind, kind)}'
        ls = '--' if kind == 'flip' else '-'
        axes[0].plot(rho, np.nanmedian(p, axis=0), color=c, ls=ls, label=lab, lw=1.4)
        axes[0].fill_between(rho, np.nanpercentile(p, 25, axis=0), np.nanpercentile(p, 75, axis=0), color=c,
                             alpha=0.12, lw=0)
        if base is not None and kind != 'none':
            with np.errstate(divide='ignore', invalid='ignore'):
                ratio = np.nanmedian(p / base, axis=0)
            axes[1].plot(rho, ratio, color=c, ls=ls, label=lab, lw=1.4)
    axes[0].set_yscale('log')
    axes[0].set_ylabel('power per ring / total energy (log)', fontsize=9)
    axes[1].set_yscale('log')
    axes[1].axhline(1.0, color='k', lw=0.8)
    axes[1].set_ylabel('augmented / original profile (median, log)', fontsize=9)
    for ax in axes:
        ax.set_xlabel('normalised radial frequency rho (1 = Nyquist)', fontsize=9)
        for x in (low, high):
            ax.axvline(x, color='grey', lw=0.8, ls=':')
        ax.set_xlim(0, float(rho.max()) + (rho[1] - rho[0]) / 2)
        ax.tick_params(labelsize=8)
        ax.legend(fontsize=8, frameon=False)
    n = len(next(iter(profs.values())))
    fig.suptitle(f'Radial power profiles over {n} images{": " + title if title else ""} '
                 f'(dotted: band edges rho = {low}, {high})', fontsize=10)
    return fig


def plot_band_shares(table, *, kinds: Optional[Sequence[str]] = None, low: float = fq.LOW_CUTOFF,
                     high: float = fq.HIGH_CUTOFF, title: str = ''):
    """The low- and high-frequency shares of every image (grey lines join one image across augmentations) and
    their means (black), from :func:`kdlab.analysis.spectra.band_table`."""
    import matplotlib.pyplot as plt
    kinds = list(kinds or [k for k in ('none', 'flip', 'crop_window', 'crop', 'noise') if k in set(table['kind'])])
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.9), constrained_layout=True)
    for ax, band, what in ((axes[0], 'low', f'rho < {low}'), (axes[1], 'high', f'rho >= {high}')):
        wide = table.pivot_table(index='image', columns='kind', values=band, sort=False)[kinds]
        x = np.arange(len(kinds))
        for _, row in wide.iterrows():
            ax.plot(x, row.values, color='grey', alpha=0.35, lw=0.8, marker='o', ms=2.5)
        ax.plot(x, wide.mean().values, color='black', lw=2, marker='D', ms=5, label='mean over images')
        ax.set_xticks(x)
        ax.set_xticklabels([KIND_LABELS.get(k, k).replace(' (not resized)', '\n(not resized)').replace(' + ', '\n+ ')
                            for k in kinds], fontsize=8)
        ax.set_ylabel(f'{band}-frequency share of energy ({what})', fontsize=9)
        ax.set_xlabel('augmentation', fontsize=9)
        ax.tick_params(axis='y', labelsize=8)
        ax.legend(fontsize=8, frameon=False)
    fig.suptitle(f'Spectral energy shares per image ({len(wide)} images{": " + title if title else ""})',
                 fontsize=10)
    return fig


def plot_me_decisions(images, table, *, threshold: float, max_images: int = 8, panel_size: float = 1.8,
                      title: str = ''):
    """DFMSD Eq. (4) per image: thumbnails with the candidate boxes and the decision, and the box-area ratio of
    each image against the threshold (blue: Gaussian noise, ratio below; green: crop, ratio at or above)."""
    import matplotlib.pyplot as plt
    images = list(images)
    n = min(len(images), max_images)
    colours = {'noise': '#1f77b4', 'crop': '#2ca02c', 'n/a': '#7f7f7f'}
    fig = plt.figure(figsize=(max(panel_size * n, 6) + 0.4, panel_size + 3.4), constrained_layout=True)
    gs = fig.add_gridspec(2, n, height_ratios=[panel_size, 2.6])
    for i in range(n):
        ax = fig.add_subplot(gs[0, i])
        row = table.iloc[i]
        ax.imshow(images[i].image, interpolation='nearest')
        draw_boxes(ax, images[i].boxes, color='yellow', lw=1.0)
        ratio = '-' if row['ratio'] is None or row['ratio'] != row['ratio'] else f"{row['ratio']:.2f}"
        clean_axes(ax, title=f"{images[i].name}\nratio {ratio} -> {row['decision']}")
        ax.title.set_fontsize(7)
    ax = fig.add_subplot(gs[1, :])
    ratios = table['ratio'].astype(float).fillna(0).values
    ax.bar(np.arange(len(table)), ratios, color=[colours[d] for d in table['decision']])
    ax.axhline(threshold, color='k', ls='--', lw=1)
    ax.set_ylim(0, 1.45 * max(float(np.nanmax(ratios)) if len(ratios) else 0.0, threshold))
    ax.text(-0.5, threshold, f' threshold {threshold}', va='bottom', ha='left', fontsize=8,
            bbox=dict(facecolor='white', alpha=0.8, lw=0, pad=1))
    ax.set_xticks(np.arange(len(table)))
    ax.set_xticklabels([str(s).split(' (')[0] for s in table['image']], rotation=60, ha='right', fontsize=7)
    ax.set_xlabel('image', fontsize=9)
    ax.set_ylabel('summed box area / image area', fontsize=9)
    ax.set_xlim(-0.6, len(table) - 0.4)
    from matplotlib.patches import Patch
    ax.legend(handles=[Patch(color=colours['noise'], label='< threshold: Gaussian noise (high frequencies)'),
                       Patch(color=colours['crop'], label='>= threshold: proportional crop (low frequencies)')],
              fontsize=8, frameon=False, loc='upper center', ncol=2)
    fig.suptitle(f'DFMSD masking enhancement, Eq. (4): decision per image (boxes: candidate boxes)'
                 f'{": " + title if title else ""}',
                 fontsize=10)
    return fig
