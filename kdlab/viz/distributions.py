"""Feature statistics of the ``fpn_features`` notebook: value distributions per FPN level (DFMSD Fig. 8), the
per-channel teacher-student Pearson r and the channel magnitudes per level (PKD's motivation: magnitudes differ
between models and channels, while the correlation is what PKD's loss ``sum_c (1 - r_c)`` cares about)."""
from __future__ import annotations

from typing import Mapping, Optional, Sequence

import numpy as np

MODEL_COLOURS = ('#000000', '#1f77b4', '#d62728', '#2ca02c', '#9467bd', '#ff7f0e')


def _colour(i: int) -> str:
    return MODEL_COLOURS[i % len(MODEL_COLOURS)]


def plot_value_distributions(feats: Mapping[str, Sequence], *, levels: Optional[Sequence[str]] = None, bins: int = 80,
                             max_values: int = 20000, log: bool = True, panel_size: float = 2.6):
    """One panel per level: the distribution of feature values (all channels, positions and images) of every
    model, on shared bins spanning the central 99.8 % of the pooled values; the titles give each model's std."""
    import matplotlib.pyplot as plt
    from matplotlib.ticker import NullFormatter
    from kdlab.analysis.features import value_sample
    labels = list(feats)
    levels = list(levels or feats[labels[0]][0].levels)
    fig, axes = plt.subplots(1, len(levels), figsize=(panel_size * len(levels) + 0.4, panel_size + 1.3),
                             squeeze=False, constrained_layout=True)
    for j, lv in enumerate(levels):
        ax = axes[0, j]
        samples = {lab: value_sample(feats[lab], lv, max_values=max_values) for lab in labels
                   if lv in feats[lab][0].levels}
        allv = np.concatenate(list(samples.values()))
        lo, hi = np.percentile(allv, [0.1, 99.9])
        edges = np.linspace(lo, hi, bins + 1)
        for i, (lab, v) in enumerate(samples.items()):
            ax.hist(v, bins=edges, density=True, histtype='step', lw=1.3, color=_colour(i),
                    label=lab if j == 0 else None)
        if log:
            ax.set_yscale('log')
            ax.yaxis.set_minor_formatter(NullFormatter())
        stds = ' / '.join(f'{v.std():.2f}' for v in samples.values())
        ax.set_title(f'{lv}  (std {stds})', fontsize=8)
        ax.set_xlabel('feature value', fontsize=8)
        if j == 0:
            ax.set_ylabel('density' + (' (log)' if log else ''), fontsize=8)
        ax.tick_params(labelsize=7)
    fig.legend(loc='outside lower center', ncol=len(labels), fontsize=8, frameon=False)
    fig.suptitle('FPN feature-value distributions per level (all channels, positions and images; x range: the '
                 'central 99.8 % of all values; std per model in the titles, in legend order)', fontsize=10)
    return fig


def plot_pearson_by_level(stats, *, title: str = ''):
    """Per level and student: the distribution of the per-channel Pearson r with the teacher (box: quartiles,
    whiskers 5-95 %, points: channels). PKD's loss is the mean of ``1 - r`` over channels."""
    import matplotlib.pyplot as plt
    models = list(dict.fromkeys(stats['model']))
    levels = list(dict.fromkeys(stats['level']))
    fig, ax = plt.subplots(figsize=(1.3 * len(levels) * max(1, len(models)) + 2.0, 3.8), constrained_layout=True)
    width = 0.8 / max(1, len(models))
    rng = np.random.default_rng(0)
    for i, mdl in enumerate(models):
        pos = np.arange(len(levels)) + (i - (len(models) - 1) / 2) * width
        data = [stats[(stats['model'] == mdl) & (stats['level'] == lv)]['pearson_r'].values for lv in levels]
        bp = ax.boxplot(data, positions=pos, widths=width * 0.8, whis=(5, 95), showfliers=False, patch_artist=True)
        for box in bp['boxes']:
            box.set(facecolor=_colour(i + 1), alpha=0.25, edgecolor=_colour(i + 1))
        for med in bp['medians']:
            med.set(color=_colour(i + 1), lw=1.5)
        for p, d in zip(pos, data):
            ax.scatter(p + rng.uniform(-width * 0.25, width * 0.25, len(d)), d, s=4, color=_colour(i + 1), alpha=0.6,
                       label=mdl if p == pos[0] else None)
    ax.axhline(0, color='grey', lw=0.6)
    ax.set_xticks(np.arange(len(levels)))
    ax.set_xticklabels(levels)
    ax.set_xlabel('FPN level (teacher level; student resized to it where sizes differ)', fontsize=9)
    ax.set_ylabel('per-channel Pearson r with the teacher', fontsize=9)
    ax.set_ylim(-1.05, 1.05)
    ax.legend(fontsize=8, frameon=False, loc='lower left', markerscale=3)
    ax.set_title(title or 'Teacher-student channel correlation per level (PKD: loss = mean over channels of 1 - r)',
                 fontsize=10)
    return fig


def plot_channel_magnitudes(stats, *, panel_size: float = 2.6):
    """One panel per level: each channel's mean ``|F|`` for the teacher and every student, channels sorted by
    the teacher's magnitude (log scale): how far magnitudes differ across channels and between models."""
    import matplotlib.pyplot as plt
    models = list(dict.fromkeys(stats['model']))
    levels = list(dict.fromkeys(stats['level']))
    fig, axes = plt.subplots(1, len(levels), figsize=(panel_size * len(levels) + 0.4, panel_size + 1.2),
                             squeeze=False, constrained_layout=True, sharey=True)
    for j, lv in enumerate(levels):
        ax = axes[0, j]
        first = stats[(stats['model'] == models[0]) & (stats['level'] == lv)]
        order = np.argsort(-first['teacher_abs'].values)
        x = np.arange(len(order))
        ax.plot(x, first['teacher_abs'].values[order], color=_colour(0), lw=1.6, label='teacher' if j == 0 else None)
        for i, mdl in enumerate(models):
            sub = stats[(stats['model'] == mdl) & (stats['level'] == lv)]
            ax.plot(x, sub['student_abs'].values[order], color=_colour(i + 1), lw=1.0, marker='.', ms=2.5,
                    label=mdl if j == 0 else None)
        ax.set_yscale('log')
        t_cv = first['teacher_abs'].std() / first['teacher_abs'].mean()
        ax.set_title(f'{lv} (teacher channel spread cv = {t_cv:.2f})', fontsize=8)
        ax.set_xlabel("channel (sorted by teacher's mean |F|)", fontsize=8)
        if j == 0:
            ax.set_ylabel('mean |F| of the channel (log)', fontsize=8)
        ax.tick_params(labelsize=7)
    fig.legend(loc='outside lower center', ncol=len(models) + 1, fontsize=8, frameon=False)
    fig.suptitle('Channel magnitudes per FPN level: teacher vs students', fontsize=10)
    return fig
