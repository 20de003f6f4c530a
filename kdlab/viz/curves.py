"""Learning curves: the per-epoch validation mAP every run stores (``record['curve']``, kdlab.engine.runner),
baseline and distilled students side by side, the teacher's as a reference where a distillation run gives it."""
from __future__ import annotations

from typing import Mapping, Optional


def curve_frame(records: Mapping[str, Optional[dict]], metric: str = 'mAP'):
    """Long form ``label, epoch, <metric>, teacher_<metric>`` from run records by label (e.g. ``'baseline'``,
    ``'pkd'``); a record without a curve (stored before curves were kept) gives its final value only."""
    import pandas as pd
    rows = []
    for label, rec in records.items():
        if not rec:
            continue
        curve = rec.get('curve') or [dict(epoch=None, **rec.get('metrics', {}))]
        for e in curve:
            rows.append({'label': label, 'epoch': e.get('epoch'), metric: e.get(metric),
                         f'teacher_{metric}': (e.get('teacher') or {}).get(metric)})
    return pd.DataFrame(rows, columns=['label', 'epoch', metric, f'teacher_{metric}'])


def _panels(count: int, cols: int, width: float, height: float):
    """A figure of ``count`` panels, ``cols`` to a row, sharing both axes; the grid's unused cells hidden.
    Returns the figure and the panels' axes, grid row by row."""
    import matplotlib.pyplot as plt
    cols = max(1, min(cols, count))
    rows = max(1, -(-count // cols))
    fig, axes = plt.subplots(rows, cols, figsize=(width * cols, height * rows), sharex=True, sharey=True,
                             squeeze=False, constrained_layout=True)
    for ax in list(axes.flat)[count:]:
        ax.set_visible(False)
    return fig, axes


def plot_learning_curves(frame, metric: str = 'mAP', *, title: str = '', panels: Optional[Mapping[str, str]] = None):
    """One line per run of ``curve_frame``, the teachers' values dashed; returns the figure. ``panels`` (label ->
    panel title, e.g. the detector family): one small plot per panel, sharing the axes, so that the lines of
    one panel keep distinct colours; labels it does not name share one panel."""
    frame = frame.dropna(subset=['epoch'])
    labels = list(dict.fromkeys(frame['label']))
    names = list(dict.fromkeys((panels or {}).get(label, '') for label in labels)) or ['']
    fig, axes = _panels(len(names), 3, 5.5 if len(names) == 1 else 4.2, 3.6)
    for ax, name in zip(axes.flat, names):
        for label in labels:
            if (panels or {}).get(label, '') != name:
                continue
            part = frame[frame['label'] == label]
            line, = ax.plot(part['epoch'], part[metric], marker='o', ms=2 if panels else 3, label=label)
            teacher = part[f'teacher_{metric}'].dropna()
            if not teacher.empty:
                ax.plot(part.loc[teacher.index, 'epoch'], teacher, ls='--', color=line.get_color(), alpha=0.6,
                        label=f'{label}: teacher')
        ax.set_title(name or title, fontsize=9 if panels else None)
        ax.set_xlabel('epoch')
        ax.set_ylabel(f'validation {metric}')
        ax.xaxis.set_tick_params(labelbottom=True)     # shared x: every panel keeps its epochs
        ax.legend(fontsize=7)
    if panels and title:
        fig.suptitle(title)
    return fig


def plot_beside_baseline(baseline: Mapping[int, Optional[dict]], students: Mapping[str, Mapping[int, Optional[dict]]],
                         metric: str = 'mAP', *, title: str = '', cols: int = 4):
    """One panel per distilled student (``students``: label -> seed -> run record), its curves drawn over the
    baseline student's (``baseline``: seed -> run record, grey), one line per seed: where a method's gain comes
    from (an earlier rise, a higher end) and where it has none. Returns the figure."""
    labels = list(students)
    fig, axes = _panels(len(labels), cols, 3.3, 2.6)
    base = curve_frame({f'baseline s{seed}': rec for seed, rec in baseline.items()}, metric).dropna(subset=['epoch'])
    for ax, label in zip(axes.flat, labels):
        for _, part in base.groupby('label', sort=False):
            ax.plot(part['epoch'], part[metric], color='0.6', lw=1)
        runs = curve_frame({f'{label} s{seed}': rec for seed, rec in students[label].items()}, metric)
        for _, part in runs.dropna(subset=['epoch']).groupby('label', sort=False):
            ax.plot(part['epoch'], part[metric], color='C1', lw=1)
        seeds = sum(rec is not None for rec in students[label].values())
        ax.set_title(f'{label} ({seeds} seed{"s" * (seeds != 1)}) over the baseline (grey)', fontsize=8)
        ax.xaxis.set_tick_params(labelbottom=True)
        ax.yaxis.set_tick_params(labelleft=True)
    for ax in axes[:, 0]:
        ax.set_ylabel(f'validation {metric}', fontsize=8)
    for ax in axes[-1]:
        ax.set_xlabel('epoch', fontsize=8)
    if title:
        fig.suptitle(title, fontsize=10)
    return fig
