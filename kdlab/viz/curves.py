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


def plot_learning_curves(frame, metric: str = 'mAP', *, title: str = ''):
    """One line per run of ``curve_frame``, the teachers' values dashed; returns the figure."""
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(5.5, 3.6), constrained_layout=True)
    for label, part in frame.dropna(subset=['epoch']).groupby('label', sort=False):
        line, = ax.plot(part['epoch'], part[metric], marker='o', ms=3, label=label)
        teacher = part[f'teacher_{metric}'].dropna()
        if not teacher.empty:
            ax.plot(part.loc[teacher.index, 'epoch'], teacher, ls='--', color=line.get_color(), alpha=0.6,
                    label=f'{label}: teacher')
    ax.set_xlabel('epoch')
    ax.set_ylabel(f'validation {metric}')
    ax.set_title(title)
    ax.legend(fontsize=7)
    return fig
