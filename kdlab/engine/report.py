"""Reported vs reproduced: the styled view, the figure and the files of one compared table.

A *comparison* is the DataFrame of :func:`kdlab.engine.reproduce.compare_rows`. :func:`styled` colours each
``delta`` and gain cell (kdlab above the paper: green, below: red) and greys pending and skipped rows;
:func:`plot_comparison` draws the paper's and kdlab's mAP and gain per row; :func:`export` writes
``<out>/<table>_<scale>.{csv,md,tex}`` (the Markdown ends with the table's conclusion check,
:mod:`kdlab.engine.conclusions`, also written as ``<table>_<scale>_conclusions.csv``) and the figure (``png``/``pdf``/``svg`` through
:func:`kdlab.viz.export.save_figure`), by default into ``results/<paper>/``.
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Iterable, List, Optional, Union

from kdlab.engine.reproduce import GAIN_METRIC, metric_columns
from kdlab.engine.store import atomic_write_text, repo_root

TABLE_FORMATS = ('csv', 'md', 'tex')
PENDING_STYLE = 'color: #8a8a8a; font-style: italic'
#: The columns of a comparison that hold words, not numbers.
TEXT_COLUMNS = ('row', 'teacher', 'student', 'method', 'status', 'note')


def results_dir(paper: str, root: Union[None, str, Path] = None) -> Path:
    """``<root>/<paper>`` (default root: ``<repo>/results``)."""
    return (Path(root).expanduser() if root is not None else repo_root() / 'results') / paper


def human_columns(frame) -> List[str]:
    """The columns a reader compares: identity, status, per metric paper / kdlab / delta, the gains."""
    cols = ['row', 'teacher'] + (['teacher kdlab'] if 'teacher kdlab' in frame.columns else [])
    cols += ['student', 'method', 'status']
    for m in frame.attrs.get('metrics', []):
        cols += [c for c in (f'{m} paper', f'{m} kdlab', f'{m} delta') if c in frame.columns]
    cols += [c for c in ('gain paper', 'gain kdlab', 'gain sd') if c in frame.columns]
    if len(frame.attrs.get('seeds', [])) > 1:
        cols += metric_columns(frame, 'sd')
    if 'note' in frame.columns and frame['note'].astype(bool).any():
        cols.append('note')
    return cols


def caption(frame) -> str:
    a = frame.attrs
    return (f'{a["paper"]} {a["table"]}: {a["title"]} - reported ({a["source"]}) vs kdlab at {a["scale"]} scale, '
            f'seeds {a["seeds"]}. teacher kdlab = the teacher\'s {GAIN_METRIC} at this scale; delta = kdlab - paper; '
            f'gain = {GAIN_METRIC} minus the baseline student\'s.')


def styled(frame):
    """A pandas Styler of the human columns: deltas and gains coloured by sign, pending rows greyed."""
    view = frame[human_columns(frame)]
    numeric = [c for c in view.columns if c not in TEXT_COLUMNS]

    def sign(v):
        if v is None or (isinstance(v, float) and math.isnan(v)):
            return ''
        return 'background-color: #d9f2d9' if v > 0 else ('background-color: #f8d7d7' if v < 0 else '')

    def pending(row):
        return [PENDING_STYLE if not str(row['status']).startswith(('finished', 'partial')) else ''] * len(row)

    try:
        styler = view.style.format({c: '{:.1f}' for c in numeric}, na_rep='')
        deltas = [c for c in view.columns if c.endswith(' delta')]
        styler = styler.map(sign, subset=deltas) if deltas else styler
        if 'gain kdlab' in view.columns:
            styler = styler.map(sign, subset=['gain kdlab'])
        return styler.apply(pending, axis=1).set_caption(caption(frame)).hide(axis='index')
    except ImportError:              # pandas' Styler needs jinja2
        return view


def to_markdown(frame) -> str:
    """A GitHub-flavoured Markdown table of the human columns (numbers to one decimal, empty where none)."""
    view = frame[human_columns(frame)]

    def cell(v):
        if isinstance(v, float):
            return '' if math.isnan(v) else f'{v:.1f}'
        return str(v).replace('|', '\\|')

    lines = [f'**{caption(frame)}**', '', '| ' + ' | '.join(view.columns) + ' |',
             '|' + '|'.join('---' if c in TEXT_COLUMNS else '---:'
                            for c in view.columns) + '|']
    lines += ['| ' + ' | '.join(cell(v) for v in rec) + ' |' for rec in view.itertuples(index=False)]
    return '\n'.join(lines) + '\n'


def to_latex(frame) -> str:
    """A booktabs LaTeX table of the human columns."""
    view = frame[human_columns(frame)]
    numeric = [c for c in view.columns if c not in TEXT_COLUMNS]
    styler = view.style.format({c: '{:.1f}' for c in numeric}, na_rep='--', escape='latex').hide(axis='index')
    return styler.to_latex(hrules=True, caption=caption(frame).replace('_', r'\_'),
                           label=f'tab:{frame.attrs["paper"]}-{frame.attrs["table"]}-{frame.attrs["scale"]}')


def plot_comparison(frame):
    """Two panels per table: each row's mAP (paper vs kdlab, a tick at the mAP of the teacher kdlab's student
    learnt from) and each distilled row's gain over its baseline (paper vs kdlab); a row kdlab has not run yet
    has no kdlab bar and says so."""
    import matplotlib.pyplot as plt
    import numpy as np
    rows = list(frame['row'])
    done = [str(s).startswith(('finished', 'partial')) for s in frame['status']]
    labels = [f'{r}' + ('' if d else ' (pending)' if s == 'pending' else ' (skipped)')
              for r, d, s in zip(rows, done, frame['status'])]
    distilled = [i for i, m in enumerate(frame['method']) if m != 'baseline']
    height = max(2.6, 0.32 * len(rows) + 1.4)
    fig, axes = plt.subplots(1, 2, figsize=(12, height), constrained_layout=True,
                             gridspec_kw=dict(width_ratios=[1, 1]))
    y = np.arange(len(rows))
    panels = [(axes[0], y, f'{GAIN_METRIC} paper', f'{GAIN_METRIC} kdlab', labels, f'{GAIN_METRIC} (%)'),
              (axes[1], np.arange(len(distilled)), 'gain paper', 'gain kdlab', [labels[i] for i in distilled],
               f'{GAIN_METRIC} gain over the baseline student (points)')]
    for ax, yy, col_p, col_k, labs, xlabel in panels:
        sub = frame if ax is axes[0] else frame.iloc[distilled]
        paper_v = sub[col_p].to_numpy(dtype=float) if col_p in sub else np.full(len(sub), np.nan)
        kdlab_v = sub[col_k].to_numpy(dtype=float) if col_k in sub else np.full(len(sub), np.nan)
        ax.barh(yy - 0.2, np.nan_to_num(paper_v), height=0.38, color='#4c72b0', label='paper')
        ax.barh(yy + 0.2, np.nan_to_num(kdlab_v), height=0.38, color='#dd8452', label=f'kdlab ({frame.attrs["scale"]})')
        if ax is axes[0] and 'teacher kdlab' in sub and sub['teacher kdlab'].notna().any():   # the bar's teacher
            ax.scatter(sub['teacher kdlab'].to_numpy(dtype=float), yy + 0.2, marker='|', s=160, color='k',
                       label=f'its teacher (kdlab, {frame.attrs["scale"]})', zorder=3)
        ax.set_yticks(yy, labs, fontsize=7)
        ax.invert_yaxis()
        ax.axvline(0, color='k', lw=0.6)
        ax.set_xlabel(xlabel, fontsize=8)
        ax.tick_params(axis='x', labelsize=7)
        if not len(yy):
            ax.text(0.5, 0.5, 'no distilled rows', ha='center', va='center', transform=ax.transAxes)
    fig.legend(*axes[0].get_legend_handles_labels(), loc='outside lower center', ncols=3, fontsize=7)  # off the bars
    a = frame.attrs
    fig.suptitle(f'{a["paper"]} {a["table"]}: reported vs reproduced ({a["scale"]}, seeds {a["seeds"]})', fontsize=10)
    return fig


def export(frame, out: Union[None, str, Path] = None, *, formats: Iterable[str] = ('csv', 'md', 'tex', 'png'),
           figure: bool = True) -> List[Path]:
    """Write the comparison as ``<out>/<table>_<label>.<fmt>`` (default ``out``: ``results/<paper>``; ``label``:
    the scale as :func:`kdlab.zoo.scale_label` names it, ``mini_v2`` under mini v2); figure formats (png, pdf,
    svg) draw :func:`plot_comparison`. Returns the paths written."""
    from kdlab.viz.export import FORMATS as FIGURE_FORMATS, save_figure
    a = frame.attrs
    folder = Path(out) if out is not None else results_dir(a['paper'])
    name = f'{a["table"]}_{a.get("label", a["scale"])}'
    formats = list(formats)
    unknown = [f for f in formats if f not in TABLE_FORMATS + FIGURE_FORMATS]
    if unknown:
        from kdlab.errors import KdlabError
        raise KdlabError(f'unknown export format {unknown[0]!r}',
                         f'use some of {", ".join(TABLE_FORMATS + FIGURE_FORMATS)}')
    paths = []
    writers = {'csv': lambda: frame.to_csv(index=False), 'md': lambda: to_markdown(frame), 'tex': lambda: to_latex(frame)}
    from kdlab.engine import conclusions
    checks = conclusions.conclusion_check(frame)
    writers['md'] = lambda: (to_markdown(frame) + '\n**Conclusion check** (per teacher-student block and for the '
                             'whole table; kdlab.engine.conclusions)\n\n' + conclusions.to_markdown(checks))
    for fmt in (f for f in formats if f in TABLE_FORMATS):
        path = folder / f'{name}.{fmt}'
        atomic_write_text(path, writers[fmt]())
        paths.append(path)
    if 'csv' in formats:
        path = folder / f'{name}_conclusions.csv'
        atomic_write_text(path, checks.to_csv(index=False))
        paths.append(path)
    figs = [f for f in formats if f in FIGURE_FORMATS]
    if figure and figs:
        import matplotlib.pyplot as plt
        fig = plot_comparison(frame)
        paths += save_figure(fig, folder.name, name, figs, root=folder.parent)
        plt.close(fig)
    return paths
