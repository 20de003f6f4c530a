"""Consistency checks of the registry against itself.

These are findings about the papers as much as checks of the transcription:

* :func:`check_printed_gains` - every ``(+x.y)`` a table prints equals the row's value minus its baseline's.
* :func:`check_repeats` - one configuration (method, teacher chain, student, switches with defaults filled
  in) reported in several tables of one paper has the same value everywhere, unless the paper's
  ``known_differences`` lists the difference. Baselines are the commonest case.
* :func:`check_teacher_metrics` - a teacher reported in several rows of one paper has the same metrics.
* :func:`check_claims` - the prose claims each table file records ("beats DMKD by 0.9% mAP") against the
  table's values; a claim the paper gets wrong is recorded ``holds: false`` and must stay false.

Each returns a DataFrame with an ``ok`` column; :func:`report` runs them all.
"""
from __future__ import annotations

import json
import re
from typing import Dict, List, Optional, Tuple

from kdlab.papers import registry, vocab
from kdlab.papers.registry import ReportedRow

TOLERANCE = 1e-6


def _rows(paper_id: Optional[str], root) -> List[ReportedRow]:
    return list(registry.iter_rows(paper_id, root=root))


def _student_key(row: ReportedRow) -> Tuple:
    return (row.student.detector, row.student.backbone, row.student.schedule)


def _teacher_key(spec) -> Tuple:
    return (spec.detector, spec.backbone, spec.schedule, spec.label if spec.detector is None else None)


# ------------------------------------------------------------------------------------------ gains
def check_printed_gains(paper_id: Optional[str] = None, *, root=None):
    """One line per printed gain: printed vs (value - baseline of the same student in the same table)."""
    import pandas as pd

    records = []
    rows = _rows(paper_id, root)
    baselines: Dict[Tuple, List[ReportedRow]] = {}
    for r in rows:
        if r.method == 'baseline':
            baselines.setdefault((r.paper, r.table, _student_key(r)), []).append(r)
    for r in rows:
        for metric, printed in r.printed_gain.items():
            candidates = [b for b in baselines.get((r.paper, r.table, _student_key(r)), [])
                          if metric in b.metrics]
            note = ''
            if not candidates:
                # a table may print a gain over a baseline trained on another schedule (DCSF-KD Table 1: TOOD
                # 2x rows over the 1x baseline); accepted when the table has exactly one such baseline
                other = [b for (paper, table, key), bs in baselines.items() for b in bs
                         if (paper, table) == (r.paper, r.table) and key[:2] == _student_key(r)[:2]
                         and metric in b.metrics]
                if len(other) == 1:
                    candidates = other
                    note = f'baseline of another schedule ({other[0].student.schedule})'
            values = sorted({b.metrics[metric] for b in candidates})
            record = {'paper': r.paper, 'table': r.table, 'row': r.id, 'metric': metric, 'printed': printed,
                      'value': r.metrics.get(metric), 'baseline_rows': ', '.join(b.id for b in candidates),
                      'baseline': values[0] if len(values) == 1 else None, 'computed': None, 'ok': False,
                      'problem': '', 'note': note}
            if not candidates:
                record['problem'] = 'no baseline row for this student in the table'
            elif len(values) > 1:
                record['problem'] = f'baseline rows disagree: {values}'
            elif metric not in r.metrics:
                record['problem'] = 'no value beside the printed gain'
            else:
                computed = round(r.metrics[metric] - values[0], 1)
                record['computed'] = computed
                record['ok'] = abs(computed - printed) <= TOLERANCE
                if not record['ok']:
                    record['problem'] = f'printed {printed:+} but {r.metrics[metric]} - {values[0]} = {computed:+}'
            records.append(record)
    columns = ['paper', 'table', 'row', 'metric', 'printed', 'value', 'baseline_rows', 'baseline', 'computed',
               'ok', 'problem', 'note']
    return pd.DataFrame.from_records(records, columns=columns)


# ------------------------------------------------------------------------------------------ repeats
def configuration_key(row: ReportedRow) -> str:
    """What makes two rows the same experiment: method, teacher chain, student, resolved switches."""
    return json.dumps({
        'method': row.method,
        'teachers': [_teacher_key(t) for t in row.teachers],
        'student': _student_key(row),
        'switches': {k: row.switches[k] for k in sorted(row.switches)},
    }, sort_keys=True, default=str)


def check_repeats(paper_id: Optional[str] = None, *, root=None):
    """Configurations reported more than once in a paper, per metric: equal, or listed in known_differences.

    Rows whose switches are partly unknown (lost tick columns) take no part: their configuration is not known.
    Columns: paper, configuration (readable), metric, values ("table/row=value; ..."), consistent, listed, ok.
    """
    import pandas as pd

    rows = [r for r in _rows(paper_id, root) if not r.unknown_switches]
    groups: Dict[Tuple[str, str], List[ReportedRow]] = {}
    for r in rows:
        groups.setdefault((r.paper, configuration_key(r)), []).append(r)
    listed_cache: Dict[str, List[dict]] = {}
    records = []
    for (paper, _), members in groups.items():
        if len(members) < 2:
            continue
        if paper not in listed_cache:
            listed_cache[paper] = registry.load_paper(paper, root=root).get('known_differences') or []
        first = members[0]
        label = f'{vocab.method_name(first.method)}: {first.teacher_text} => {first.student_text}'
        for metric in vocab.ALL_METRICS:
            present = [m for m in members if metric in m.metrics]
            if len(present) < 2:
                continue
            values = {m.metrics[metric] for m in present}
            refs = {m.ref for m in present}
            consistent = max(values) - min(values) <= TOLERANCE
            listed = any(d.get('metric') == metric and set(d.get('rows') or []) == refs
                         for d in listed_cache[paper])
            records.append({
                'paper': paper, 'configuration': label, 'metric': metric,
                'values': '; '.join(f'{m.ref}={m.metrics[metric]}' for m in present),
                'consistent': consistent, 'listed': listed, 'ok': consistent != listed,
            })
    # a listing that matches no repeated configuration is stale (rows renamed, or a subset of a group)
    matched = {(r['paper'], r['metric'], frozenset(re.findall(r'([^=; ]+)=', r['values'])))
               for r in records if r['listed']}
    for paper in ([paper_id] if paper_id else sorted({r.paper for r in rows})):
        if paper not in listed_cache:
            listed_cache[paper] = registry.load_paper(paper, root=root).get('known_differences') or []
        for d in listed_cache[paper]:
            if (paper, d.get('metric'), frozenset(d.get('rows') or [])) not in matched:
                records.append({'paper': paper, 'configuration': '(known_differences entry)',
                                'metric': d.get('metric'), 'values': '; '.join(d.get('rows') or []),
                                'consistent': None, 'listed': True, 'ok': False})
    columns = ['paper', 'configuration', 'metric', 'values', 'consistent', 'listed', 'ok']
    return pd.DataFrame.from_records(records, columns=columns)


def check_teacher_metrics(paper_id: Optional[str] = None, *, root=None):
    """Teachers reported with metrics in several rows of one paper: the metrics agree."""
    import pandas as pd

    seen: Dict[Tuple, Dict[str, Dict[float, List[str]]]] = {}
    for r in _rows(paper_id, root):
        for t in r.teachers:
            for metric, value in t.metrics.items():
                seen.setdefault((r.paper, t.name, _teacher_key(t)), {}).setdefault(metric, {}) \
                    .setdefault(value, []).append(r.ref)
    records = []
    for (paper, name, _), by_metric in seen.items():
        for metric, by_value in by_metric.items():
            n_rows = sum(len(v) for v in by_value.values())
            if n_rows < 2:
                continue
            records.append({'paper': paper, 'teacher': name, 'metric': metric,
                            'values': '; '.join(f'{v} ({len(refs)} rows)' for v, refs in sorted(by_value.items())),
                            'ok': len(by_value) == 1})
    return pd.DataFrame.from_records(records, columns=['paper', 'teacher', 'metric', 'values', 'ok'])


# ------------------------------------------------------------------------------------------ claims
def _claim_value(by_id: Dict[str, ReportedRow], check: dict) -> Optional[float]:
    row = by_id[check['row']]
    value = row.metrics.get(check['metric'])
    if value is None:
        return None
    if 'minus' in check:
        other = by_id[check['minus']].metrics.get(check['metric'])
        if other is None:
            return None
        value = round(value - other, 1)
    return value


def check_claims(paper_id: Optional[str] = None, *, root=None):
    """Every recorded prose claim, evaluated: ``holds`` (computed) must equal ``declared`` (holds: in file)."""
    import pandas as pd

    base = registry._require_root(root)
    papers = [paper_id] if paper_id else registry.list_papers(root=base)
    records = []
    for pid in papers:
        for tid in registry.list_tables(pid, root=base):
            data = registry.load_table_data(pid, tid, root=base)
            if not data.get('claims'):
                continue
            by_id = {r.id: r for r in registry.rows_from_data(pid, data, root=base)}
            for claim in data['claims']:
                for check in claim['checks']:
                    computed = _claim_value(by_id, check)
                    op = check.get('op', 'eq')
                    if computed is None:
                        holds = None
                    elif op == 'eq':
                        holds = abs(computed - check['value']) <= TOLERANCE
                    elif op == 'gt':
                        holds = computed > check['value'] + TOLERANCE
                    else:
                        holds = computed >= check['value'] - TOLERANCE
                    declared = check.get('holds', True)
                    expression = check['row'] + (f' - {check["minus"]}' if 'minus' in check else '')
                    records.append({
                        'paper': pid, 'table': tid, 'section': claim['section'], 'quote': claim['quote'],
                        'check': f'{expression} [{check["metric"]}] {op} {check["value"]}',
                        'computed': computed, 'declared': declared, 'holds': holds,
                        'ok': holds is not None and holds == declared, 'note': check.get('note', ''),
                    })
    columns = ['paper', 'table', 'section', 'quote', 'check', 'computed', 'declared', 'holds', 'ok', 'note']
    return pd.DataFrame.from_records(records, columns=columns)


def report(paper_id: Optional[str] = None, *, root=None) -> Dict[str, object]:
    """All checks: ``{'gains': df, 'repeats': df, 'teachers': df, 'claims': df}``; each has an ``ok`` column."""
    return {
        'gains': check_printed_gains(paper_id, root=root),
        'repeats': check_repeats(paper_id, root=root),
        'teachers': check_teacher_metrics(paper_id, root=root),
        'claims': check_claims(paper_id, root=root),
    }


def failures(checks: Dict[str, object]) -> List[str]:
    """Readable lines for every failing entry of :func:`report`'s result (empty when all pass)."""
    lines = []
    for name, frame in checks.items():
        for record in frame[~frame['ok'].astype(bool)].to_dict('records'):
            detail = ', '.join(f'{k}={v}' for k, v in record.items() if k != 'ok' and v not in ('', None))
            lines.append(f'{name}: {detail}')
    return lines


def summary_lines(checks: Dict[str, object]) -> List[str]:
    """One line per kind of check that says what it means: for the claims, how many hold and how many do not
    (a claim recorded as not holding is consistent with the registry, and a finding about the paper)."""
    lines = []
    for name, frame in checks.items():
        ok = int(frame['ok'].astype(bool).sum())
        if name == 'claims' and 'holds' in frame:
            holds = int(frame['holds'].astype(bool).sum())
            lines.append(f'claims: {holds} of {len(frame)} hold against their tables; {len(frame) - holds} do not '
                         f'(recorded as findings about the paper, listed below); '
                         f'{len(frame) - ok} differ from what the registry records')
        else:
            lines.append(f'{name}: {ok} of {len(frame)} consistent')
    return lines
