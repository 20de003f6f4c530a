"""Does a reproduced table reach its paper's conclusion? The check a reader wants before the cells.

A paper's conclusion about a table is which methods help, and in which order. Per teacher-student block of a
comparison (:func:`kdlab.engine.reproduce.compare_rows`: the rows sharing a teacher and a student) and for the
whole table, :func:`conclusion_check` counts

* ``same sign``: rows whose gain over the baseline student has the paper's sign (a zero gain has no sign and
  never agrees);
* ``within spread``: rows whose gain is not larger than twice its seed standard deviation: not a result
  either way (unknown with one seed);
* ``median ratio``: the median of reproduced gain / reported gain (1 = the paper's size);
* ``rho``: the Spearman rank correlation of the methods' gains with the paper's, where a block has three or
  more methods (scipy.stats.spearmanr), and its ``p``;
* ``gain sd``: the median seed spread of the block's gains;

and writes a one-line ``verdict``. :func:`summary` does the same for every reproduced table of a scale
(``results/<paper>/<table>_<scale>.csv``) into ``results/summary_<scale>.{csv,md}``.
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Iterable, List, Optional, Union

COLUMNS = ['paper', 'table', 'block', 'rows', 'same sign', 'within spread', 'median ratio', 'rho', 'p',
           'gain sd', 'verdict']
#: a gain within this many seed standard deviations of zero is not a result
SPREAD_SDS = 2.0


def _finite(v) -> bool:
    return v is not None and isinstance(v, (int, float)) and math.isfinite(float(v))


def _check(rows, paper: str, table: str, block: str) -> dict:
    import numpy as np
    pairs = [(float(r['gain paper']), float(r['gain kdlab']), r.get('gain sd'), r['method']) for r in rows
             if _finite(r.get('gain paper')) and _finite(r.get('gain kdlab'))]
    n = len(pairs)
    out = dict(paper=paper, table=table, block=block, rows=n)
    if not n:
        out.update({'same sign': 0, 'within spread': math.nan, 'median ratio': math.nan, 'rho': math.nan,
                    'p': math.nan, 'gain sd': math.nan, 'verdict': 'nothing to compare yet (no finished row '
                    'with a reported gain)'})
        return out
    same = sum(1 for p, k, _, _ in pairs if p * k > 0)
    sds = [float(sd) for _, _, sd, _ in pairs if _finite(sd)]
    within = (sum(1 for _, k, sd, _ in pairs if _finite(sd) and abs(k) <= SPREAD_SDS * float(sd))
              if len(sds) == n else math.nan)
    ratios = [k / p for p, k, _, _ in pairs if p != 0]
    ratio = float(np.median(ratios)) if ratios else math.nan
    rho = pval = math.nan
    if n >= 3:
        from scipy.stats import spearmanr
        res = spearmanr([p for p, *_ in pairs], [k for _, k, *_ in pairs])
        rho, pval = float(res.statistic), float(res.pvalue)
    spread = float(np.median(sds)) if sds else math.nan
    parts = [f'signs agree in {same}/{n}']
    if math.isfinite(ratio):
        parts.append(f'gains {ratio:.2g}x the paper\'s (median)')
    if n >= 3:
        parts.append(f'order rho {rho:+.2f}' if math.isfinite(rho) else 'order undefined (tied gains)')
    if math.isnan(within):
        parts.append('one seed: spread unknown' if not sds else
                     f'{n - len(sds)}/{n} rows of one seed: spread partly unknown')
    elif within:
        parts.append(f'{within}/{n} within {SPREAD_SDS:g} sd of zero (not results)')
    verdict = '; '.join(parts)
    agrees = same == n and (n < 3 or (math.isfinite(rho) and rho > 0))
    verdict = ('agrees: ' if agrees else 'disagrees: ' if same < n / 2 or (math.isfinite(rho) and rho < 0)
               else 'partly: ') + verdict
    out.update({'same sign': same, 'within spread': within, 'median ratio': round(ratio, 3),
                'rho': round(rho, 3) if math.isfinite(rho) else rho, 'p': round(pval, 3) if math.isfinite(pval) else pval,
                'gain sd': round(spread, 2) if math.isfinite(spread) else spread, 'verdict': verdict})
    return out


def styled(check):
    """A conclusion check as a notebook shows it: numbers rounded, no index, the verdict whole and wrapped
    (pandas' plain display cuts long text with an ellipsis)."""
    try:
        return (check.style.format({'median ratio': '{:.2f}', 'rho': '{:.2f}', 'p': '{:.3f}', 'gain sd': '{:.2f}'},
                                   na_rep='')
                .set_properties(subset=['verdict'], **{'white-space': 'normal', 'text-align': 'left',
                                                       'min-width': '28em'})
                .hide(axis='index'))
    except ImportError:              # pandas' Styler needs jinja2
        return check


def conclusion_check(frame, *, paper: Optional[str] = None, table: Optional[str] = None):
    """One row per teacher-student block of a comparison and one for the whole table (``block == 'all'``)."""
    import pandas as pd
    paper = paper or frame.attrs.get('paper', '')
    table = table or frame.attrs.get('table', '')
    records = frame.to_dict('records')
    distilled = [r for r in records if r.get('method') != 'baseline']
    blocks = {}
    for r in distilled:
        blocks.setdefault(f"{r['teacher']} -> {r['student']}", []).append(r)
    out = [_check(rows, paper, table, block) for block, rows in blocks.items()]
    if len(blocks) != 1:
        out.append(_check(distilled, paper, table, 'all'))
    else:
        out[0]['block'] = f"all ({out[0]['block']})"
    return pd.DataFrame(out, columns=COLUMNS)


def to_markdown(checks) -> str:
    def cell(v):
        if isinstance(v, float):
            return '' if math.isnan(v) else f'{v:.2f}'
        return str(v).replace('|', '\\|')
    lines = ['| ' + ' | '.join(checks.columns) + ' |', '|' + '|'.join('---' for _ in checks.columns) + '|']
    lines += ['| ' + ' | '.join(cell(v) for v in rec) + ' |' for rec in checks.itertuples(index=False)]
    return '\n'.join(lines) + '\n'


def reproduced_tables(scale: str = 'mini', root: Union[None, str, Path] = None) -> List[Path]:
    """Every ``results/<paper>/<table>_<scale>.csv`` (a comparison written by :func:`kdlab.engine.report.export`);
    ``scale`` as results files name it (:func:`kdlab.zoo.scale_label`: ``mini`` for v1, ``mini_v2``)."""
    from kdlab.engine.store import repo_root
    root = Path(root) if root is not None else repo_root() / 'results'
    return sorted(p for p in root.glob(f'*/*_{scale}.csv') if p.parent.name not in ('leaderboard', 'mini_v2'))


def summary(scale: str = 'mini', root: Union[None, str, Path] = None, *, write: bool = True,
            tables: Optional[Iterable[Path]] = None):
    """The conclusion checks of every reproduced table of ``scale`` (as results files name it,
    :func:`kdlab.zoo.scale_label`) and of its leaderboard (:func:`kdlab.engine.leaderboard.board_check`) in one frame; written (``write``) to ``<root>/summary_<scale>.csv`` and
    ``.md``."""
    import pandas as pd
    from kdlab.engine.store import atomic_write_text, repo_root
    root = Path(root) if root is not None else repo_root() / 'results'
    frames = []
    for path in (tables if tables is not None else reproduced_tables(scale, root)):
        frame = pd.read_csv(path)
        if not {'gain paper', 'gain kdlab', 'method', 'teacher', 'student'} <= set(frame.columns):
            continue
        frames.append(conclusion_check(frame, paper=path.parent.name, table=path.stem[:-len(scale) - 1]))
    board = root / 'leaderboard' / f'leaderboard_{scale}.csv'
    if tables is None and board.is_file():     # the leaderboard's cells, checked against the papers' gains per pair
        from kdlab.engine.leaderboard import board_check
        frame = pd.read_csv(board)
        frame.attrs['label'] = scale
        if {'student', 'teacher', 'method', 'gain', 'gain_sd'} <= set(frame.columns):
            frames.append(board_check(frame))
    result = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=COLUMNS)
    if write:
        atomic_write_text(root / f'summary_{scale}.csv', result.to_csv(index=False))
        whole = result[result['block'].str.startswith('all') & (result['paper'] != 'leaderboard')]
        n, same = int(whole['rows'].sum()), int(whole['same sign'].sum())
        head = (f'**Conclusion checks, {scale} scale: {len(whole)} tables, {same} of {n} distilled rows with the '
                f"paper's sign of gain ({same / n:.0%}); the leaderboard's cells below them**\n\n" if n else f'**Conclusion checks, {scale} scale**\n\n')
        atomic_write_text(root / f'summary_{scale}.md', head + to_markdown(result))
    return result
