"""Cross-paper views: the same teacher/student pair as different papers report it.

Papers re-report each other's baselines and competitors, often with different numbers (another checkpoint,
another schedule, a typo). Those differences are findings, not errors: these functions put them side by side.

A *pair* is keyed by the last teacher of the chain (detector and backbone family; ``none`` for a baseline) and
the student (detector and backbone). Schedules are shown but are not part of the key, so a 2x and a
multi-scale baseline of the same student land in one group - often the reason two papers disagree.
"""
from __future__ import annotations

from typing import Optional

from kdlab.papers import registry, vocab
from kdlab.papers.registry import NO_TEACHER, ReportedRow


def _model_key(detector, backbone) -> Optional[str]:
    if detector is None or backbone is None:
        return None
    return f'{vocab.detector_name(detector)}-{vocab.backbone_name(vocab.backbone_family(backbone))}'


def pair_key(row: ReportedRow) -> Optional[str]:
    """``'RetinaNet-X101 -> RetinaNet-R50'`` (``'none -> ...'`` for a baseline); None when a model is unknown."""
    student = _model_key(row.student.detector, row.student.backbone)
    if student is None:
        return None
    if not row.teachers:
        return f'{NO_TEACHER} -> {student}'
    teacher = _model_key(row.teachers[-1].detector, row.teachers[-1].backbone)
    return None if teacher is None else f'{teacher} -> {student}'


def compare_pairs(metric: str = 'mAP', *, min_papers: int = 2, wide: bool = False, root=None):
    """Rows of pairs that at least ``min_papers`` papers report, with ``metric`` for each.

    Long form (default), sorted by pair and method: ``pair, method, paper, table, row, teacher, student,
    <metric>, flags, spread`` where ``spread`` is max - min of the metric over the papers reporting the same
    method on the pair (0 when they agree) and ``flags`` says which values are derived or interpreted.
    ``wide=True``: one line per (pair, method), one column per paper, values joined with ' / ' when a paper
    reports the pair more than once, and ``spread``.
    """
    import pandas as pd

    if metric not in vocab.ALL_METRICS:
        raise ValueError(f'unknown metric {metric!r}; known: {", ".join(vocab.ALL_METRICS)}')
    records = []
    for r in registry.iter_rows(root=root):
        key = pair_key(r)
        if key is None or metric not in r.metrics:
            continue
        flags = [f'derived:{m}' for m in r.derived if m == metric]
        flags += [f'interpreted:{f}' for f in r.interpreted]
        records.append({'pair': key, 'method': r.method, 'paper': r.paper, 'table': r.table, 'row': r.id,
                        'teacher': r.teacher_text, 'student': r.student_text, metric: r.metrics[metric],
                        'flags': ', '.join(flags)})
    columns = ['pair', 'method', 'paper', 'table', 'row', 'teacher', 'student', metric, 'flags', 'spread']
    frame = pd.DataFrame.from_records(records, columns=columns[:-1])
    if frame.empty:
        return pd.DataFrame(columns=columns)
    n_papers = frame.groupby('pair')['paper'].transform('nunique')
    frame = frame[n_papers >= min_papers].copy()
    frame['spread'] = frame.groupby(['pair', 'method'])[metric].transform(lambda s: round(s.max() - s.min(), 1))
    frame = frame.sort_values(['pair', 'method', 'paper', 'table', 'row'], kind='stable').reset_index(drop=True)
    if not wide:
        return frame[columns]

    def join(values):
        return ' / '.join(dict.fromkeys(f'{v:.1f}' for v in values))

    table = frame.pivot_table(index=['pair', 'method'], columns='paper', values=metric, aggfunc=join)
    table = table.fillna('')
    table['spread'] = frame.groupby(['pair', 'method'])['spread'].first()
    table.columns.name = None
    return table.reset_index()


def findings(metric: str = 'mAP', *, root=None):
    """The (pair, method) combinations that two or more papers report with different values."""
    long = compare_pairs(metric, root=root)
    if long.empty:
        return long
    n_papers = long.groupby(['pair', 'method'])['paper'].transform('nunique')
    return long[(n_papers >= 2) & (long['spread'] > 0)].reset_index(drop=True)


def compare_teachers(metric: str = 'mAP', *, root=None):
    """Teachers (detector, backbone family) whose ``metric`` several papers report; ``differs`` marks disagreement."""
    import pandas as pd

    records = []
    for r in registry.iter_rows(root=root):
        for t in r.teachers:
            key = _model_key(t.detector, t.backbone)
            if key is None or metric not in t.metrics:
                continue
            records.append({'teacher': key, 'paper': r.paper, 'table': r.table, 'as_printed': t.name,
                            'schedule': t.schedule or '?', metric: t.metrics[metric]})
    columns = ['teacher', 'paper', 'table', 'as_printed', 'schedule', metric]
    frame = pd.DataFrame.from_records(records, columns=columns).drop_duplicates()
    if frame.empty:
        return frame.assign(differs=pd.Series(dtype=bool))
    frame = frame[frame.groupby('teacher')['paper'].transform('nunique') >= 2].copy()
    frame['differs'] = frame.groupby('teacher')[metric].transform('nunique') > 1
    return frame.sort_values(['teacher', 'paper', 'table'], kind='stable').reset_index(drop=True)
