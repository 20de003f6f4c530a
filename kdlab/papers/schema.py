"""Schema of the paper registry and its validator.

A registry is a folder (``<repo>/papers``) with one sub-folder per paper::

    papers/<paper_id>/paper.yaml      metadata, method switches, hyper-parameters, interpretation notes
    papers/<paper_id>/<table_id>.yaml one file per reported table (table1, table2, ..., or metafile, readme...)

The full field reference is ``docs/papers.md``. The validator reports every problem it finds, each as
``<file>: row '<id>': field '<field>': <what is wrong>``, and :func:`validate_registry` raises one
:class:`~kdlab.errors.RegistryError` listing them all. Beyond types and vocabularies it checks the arithmetic
the files state themselves: a derived cell must equal its reference value plus the stated difference.
"""
from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

import yaml

from kdlab.errors import RegistryError
from kdlab.papers import vocab

PAPER_FILE = 'paper.yaml'
ID_PATTERN = re.compile(r'^[a-z][a-z0-9_]*$')                # paper and table ids
ROW_ID_PATTERN = re.compile(r'^[a-z0-9][a-z0-9_.\-]*$')      # row ids
ARXIV_PATTERN = re.compile(r'^\d{4}\.\d{4,5}$')
TOLERANCE = 1e-6                                             # values are printed at 0.1; sums of two of them

PAPER_KEYS = {
    'id': True, 'title': True, 'authors': True, 'venue': True, 'year': True, 'arxiv': True, 'sources': True,
    'code': True, 'summary': True, 'switches': True, 'hyperparameters': True, 'interpretation_notes': True,
    'known_differences': True,
}
TABLE_KEYS = {
    'table': True, 'title': True, 'caption': True, 'source': True, 'dataset': True, 'metrics': True,
    'rows': True, 'notes': False, 'claims': False, 'incomplete': False,
}
ROW_KEYS = {
    'id': True, 'teachers': True, 'student': True, 'method': True, 'switches': False, 'metrics': False,
    'derived': False, 'printed_gain': False, 'unreadable': False, 'interpreted': False, 'ablation': False,
    'source': False, 'notes': False,
}
CLAIM_OPS = ('eq', 'gt', 'ge')


class _UniqueKeyLoader(yaml.SafeLoader):
    """SafeLoader that refuses a mapping with a repeated key (plain YAML keeps the last one silently)."""


def _construct_mapping(loader: yaml.SafeLoader, node: yaml.MappingNode, deep: bool = False):
    seen = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        if key in seen:
            raise yaml.constructor.ConstructorError(
                None, None, f'duplicate key {key!r}', key_node.start_mark)
        seen.add(key)
    return loader.construct_mapping(node, deep=deep)


_UniqueKeyLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def read_yaml(path: Path, display: str) -> Any:
    """Parse one registry file; YAML errors become a :class:`RegistryError` naming the file and line."""
    try:
        with open(path, encoding='utf-8') as f:
            return yaml.load(f, Loader=_UniqueKeyLoader)  # noqa: S506 - a SafeLoader subclass
    except yaml.YAMLError as err:
        raise RegistryError([f'{display}: not valid YAML: {err}']) from None
    except OSError as err:
        raise RegistryError([f'{display}: cannot be read: {err}']) from None


class Problems:
    """Collects problems of one file, each naming the row (when there is one) and the field."""

    def __init__(self, display: str):
        self.display = display
        self.items: List[str] = []

    def add(self, field: str, message: str, row: Optional[str] = None) -> None:
        where = f'{self.display}: ' + (f'row {row!r}: ' if row is not None else '')
        self.items.append(f"{where}field '{field}': {message}")


# --------------------------------------------------------------------------------------------- helpers
def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _is_text(value) -> bool:
    return isinstance(value, str) and value.strip() != ''


def _check_keys(mapping: dict, spec: Dict[str, bool], problems: Problems, prefix: str = '',
                row: Optional[str] = None) -> None:
    for key, required in spec.items():
        if required and key not in mapping:
            problems.add(prefix + key, 'missing (required)', row)
    for key in mapping:
        if key not in spec:
            problems.add(prefix + str(key), f'unknown field; allowed: {", ".join(spec)}', row)


def _check_text_or_null(mapping: dict, key: str, problems: Problems, prefix: str = '', row=None) -> None:
    if key in mapping and mapping[key] is not None and not _is_text(mapping[key]):
        problems.add(prefix + key, f'expected text or null, got {mapping[key]!r}', row)


def _check_percent(value, field: str, problems: Problems, row: Optional[str]) -> None:
    if not _is_number(value):
        problems.add(field, f'expected a number (percent as printed, e.g. 40.8), got {value!r}', row)
    elif not 0 <= value <= 100:
        problems.add(field, f'expected a percentage in [0, 100], got {value!r}', row)


# ------------------------------------------------------------------------------------------ paper.yaml
def validate_paper(data: Any, paper_id: str, display: str) -> List[str]:
    """Problems of one ``paper.yaml``; ``paper_id`` is the folder name it must match."""
    p = Problems(display)
    if not isinstance(data, dict):
        p.add('(file)', f'expected a mapping of fields, got {type(data).__name__}')
        return p.items
    _check_keys(data, PAPER_KEYS, p)
    if data.get('id') != paper_id:
        p.add('id', f'{data.get("id")!r} does not match the folder name {paper_id!r}')
    if 'title' in data and not _is_text(data['title']):
        p.add('title', f'expected text, got {data["title"]!r}')
    authors = data.get('authors')
    if 'authors' in data and not (isinstance(authors, list) and authors and all(_is_text(a) for a in authors)):
        p.add('authors', f'expected a non-empty list of names, got {authors!r}')
    _check_text_or_null(data, 'venue', p)
    year = data.get('year')
    if year is not None and not (isinstance(year, int) and not isinstance(year, bool) and 1990 <= year <= 2100):
        p.add('year', f'expected a year such as 2024, or null, got {year!r}')
    arxiv = data.get('arxiv')
    if arxiv is not None and not (isinstance(arxiv, str) and ARXIV_PATTERN.match(arxiv)):
        p.add('arxiv', f'expected an arXiv id as quoted text such as "2207.02039" (unquoted it reads as a '
                       f'number), or null, got {arxiv!r}')
    sources = data.get('sources')
    if 'sources' in data and not (isinstance(sources, list) and sources and all(_is_text(s) for s in sources)):
        p.add('sources', 'expected a non-empty list of texts naming where the facts come from')
    code = data.get('code')
    if 'code' in data:
        if not isinstance(code, dict):
            p.add('code', f'expected a mapping with url, runs, note, got {code!r}')
        else:
            _check_keys(code, {'url': True, 'runs': True, 'note': True}, p, 'code.')
            _check_text_or_null(code, 'url', p, 'code.')
            if code.get('runs') not in (True, False, None):
                p.add('code.runs', f'expected true, false or null (not tried), got {code.get("runs")!r}')
            if 'note' in code and not _is_text(code['note']):
                p.add('code.note', 'expected text saying what works and what does not')
    if 'summary' in data and not _is_text(data['summary']):
        p.add('summary', 'expected text')
    switches = data.get('switches')
    if 'switches' in data:
        if not isinstance(switches, dict):
            p.add('switches', f'expected a mapping name -> {{default, description, source}}, got {switches!r}')
        else:
            allowed = vocab.SWITCHES.get(paper_id, {})
            for name, entry in switches.items():
                field = f'switches.{name}'
                if name not in allowed:
                    p.add(field, f'not a switch of {paper_id!r} in kdlab.papers.vocab.SWITCHES '
                                 f'(known: {", ".join(allowed) or "none"})')
                if not isinstance(entry, dict):
                    p.add(field, 'expected a mapping with default, description, source')
                    continue
                _check_keys(entry, {'default': True, 'description': True, 'source': True}, p, field + '.')
                if name in allowed:
                    _check_switch_value(allowed[name], entry.get('default'), None, field + '.default', p, None)
    hps = data.get('hyperparameters')
    if 'hyperparameters' in data:
        if not isinstance(hps, list):
            p.add('hyperparameters', 'expected a list of {name, value, source, quote?, note?}')
        else:
            for i, hp in enumerate(hps):
                field = f'hyperparameters[{i}]'
                if not isinstance(hp, dict):
                    p.add(field, 'expected a mapping')
                    continue
                _check_keys(hp, {'name': True, 'value': True, 'source': True, 'quote': False, 'note': False},
                            p, field + '.')
                if not _is_text(hp.get('source')):
                    p.add(field + '.source', 'every hyper-parameter cites its source')
    notes = data.get('interpretation_notes')
    if 'interpretation_notes' in data:
        if not isinstance(notes, list):
            p.add('interpretation_notes', 'expected a list of {topic, note}')
        else:
            for i, note in enumerate(notes):
                if not (isinstance(note, dict) and set(note) == {'topic', 'note'}
                        and _is_text(note['topic']) and _is_text(note['note'])):
                    p.add(f'interpretation_notes[{i}]', f'expected {{topic: text, note: text}}, got {note!r}')
    diffs = data.get('known_differences')
    if 'known_differences' in data:
        if not isinstance(diffs, list):
            p.add('known_differences', 'expected a list of {rows: [table/row, ...], metric, note}')
        else:
            for i, d in enumerate(diffs):
                field = f'known_differences[{i}]'
                if not isinstance(d, dict):
                    p.add(field, 'expected a mapping')
                    continue
                _check_keys(d, {'rows': True, 'metric': True, 'note': True}, p, field + '.')
                rows = d.get('rows')
                if not (isinstance(rows, list) and len(rows) >= 2
                        and all(isinstance(r, str) and r.count('/') == 1 for r in rows)):
                    p.add(field + '.rows', f'expected two or more "table/row" references, got {rows!r}')
                if d.get('metric') not in vocab.ALL_METRICS:
                    p.add(field + '.metric', f'unknown metric {d.get("metric")!r}')
    return p.items


# ------------------------------------------------------------------------------------------ table files
def _check_switch_value(kind: str, value, n_teachers: Optional[int], field: str, p: Problems, row) -> None:
    if value is None:
        return
    if kind == 'bool':
        if not isinstance(value, bool):
            p.add(field, f'expected true, false or null, got {value!r}', row)
    elif kind == 'number':
        if not _is_number(value):
            p.add(field, f'expected a number or null, got {value!r}', row)
    elif kind == 'stages':
        if isinstance(value, bool) or value == 'last':
            return
        if not (isinstance(value, list) and all(v is None or isinstance(v, bool) for v in value)):
            p.add(field, f"expected true/false, 'last', or a list of true/false per stage, got {value!r}", row)
        elif n_teachers is not None and len(value) != n_teachers:
            p.add(field, f'has {len(value)} entries for a chain of {n_teachers} teacher(s); give one per stage',
                  row)
    elif kind == 'levels':
        if not (isinstance(value, list) and value and all(v in vocab.FPN_LEVELS for v in value)
                and len(set(value)) == len(value)):
            p.add(field, f'expected a list of distinct FPN levels from {", ".join(vocab.FPN_LEVELS)}, '
                         f'got {value!r}', row)


def _check_spec(spec, field: str, p: Problems, row: str, *, teacher: bool) -> None:
    if not isinstance(spec, dict):
        p.add(field, f'expected a mapping with detector, backbone, schedule, got {spec!r}', row)
        return
    for key, table in (('detector', vocab.DETECTORS), ('backbone', vocab.BACKBONES),
                       ('schedule', vocab.SCHEDULES)):
        if key not in spec:
            p.add(f'{field}.{key}', 'missing (required; write null when the source does not state it)', row)
        elif spec[key] is not None and spec[key] not in table:
            p.add(f'{field}.{key}', f'unknown {key} {spec[key]!r}; known: {", ".join(table)} '
                                    f'(add it to kdlab.papers.vocab if it is real)', row)
    for key, value in spec.items():
        if key in vocab.SPEC_KEYS:
            continue
        if key in vocab.SPEC_OPTIONAL_TEXT:
            if not _is_text(value):
                p.add(f'{field}.{key}', f'expected text, got {value!r}', row)
        elif not teacher and key in vocab.STUDENT_OPTIONAL_BOOL:
            if not isinstance(value, bool):
                p.add(f'{field}.{key}', f'expected true or false, got {value!r}', row)
        elif teacher and key in vocab.ALL_METRICS:
            _check_percent(value, f'{field}.{key}', p, row)
        else:
            allowed = vocab.SPEC_KEYS + vocab.SPEC_OPTIONAL_TEXT + (
                vocab.ALL_METRICS if teacher else vocab.STUDENT_OPTIONAL_BOOL)
            p.add(f'{field}.{key}', f'unknown field; allowed: {", ".join(allowed)}', row)
    if not teacher and isinstance(spec.get('multiscale'), bool) and isinstance(spec.get('schedule'), str):
        if spec['multiscale'] != spec['schedule'].endswith('_ms'):
            p.add(f'{field}.multiscale', f'contradicts schedule {spec["schedule"]!r}', row)


def _row_values(row: dict) -> Dict[str, float]:
    """Printed and derived values of a row (derived only where the entry is well formed)."""
    values = {k: v for k, v in (row.get('metrics') or {}).items() if _is_number(v)}
    for k, d in (row.get('derived') or {}).items():
        if isinstance(d, dict) and _is_number(d.get('value')):
            values.setdefault(k, d['value'])
    return values


def validate_table(data: Any, table_id: str, display: str) -> List[str]:
    """Problems of one table file; ``table_id`` is the file name (without ``.yaml``) it must match."""
    p = Problems(display)
    if not isinstance(data, dict):
        p.add('(file)', f'expected a mapping of fields, got {type(data).__name__}')
        return p.items
    _check_keys(data, TABLE_KEYS, p)
    if data.get('table') != table_id:
        p.add('table', f'{data.get("table")!r} does not match the file name {table_id!r}')
    for key in ('title', 'source'):
        if key in data and not _is_text(data[key]):
            p.add(key, f'expected text, got {data[key]!r}')
    _check_text_or_null(data, 'caption', p)
    if 'incomplete' in data and not _is_text(data['incomplete']):
        p.add('incomplete', 'expected text saying what is missing')
    if 'dataset' in data and data['dataset'] is not None and data['dataset'] not in vocab.DATASETS:
        p.add('dataset', f'unknown dataset {data["dataset"]!r}; known: {", ".join(vocab.DATASETS)} '
                         f'(null when the source does not name it)')
    metrics = data.get('metrics')
    table_metrics: Tuple[str, ...] = ()
    if 'metrics' in data:
        if not (isinstance(metrics, list) and metrics and len(set(metrics)) == len(metrics)):
            p.add('metrics', f'expected a non-empty list of distinct metric names, got {metrics!r}')
        else:
            bad = [m for m in metrics if m not in vocab.ALL_METRICS]
            if bad:
                p.add('metrics', f'unknown metric(s) {bad}; known: {", ".join(vocab.ALL_METRICS)}')
            table_metrics = tuple(m for m in metrics if m in vocab.ALL_METRICS)
    notes = data.get('notes')
    if notes is not None and not (isinstance(notes, list) and all(_is_text(n) for n in notes)):
        p.add('notes', 'expected a list of texts')

    rows = data.get('rows')
    if 'rows' in data and not (isinstance(rows, list) and rows):
        p.add('rows', 'expected a non-empty list of rows')
        rows = []
    rows = rows or []
    ids: Dict[str, int] = {}
    for index, row in enumerate(rows):
        if not isinstance(row, dict):
            p.add('(row)', f'row #{index + 1} is not a mapping', f'#{index + 1}')
            continue
        rid = row.get('id')
        label = rid if isinstance(rid, str) else f'#{index + 1}'
        if not (isinstance(rid, str) and ROW_ID_PATTERN.match(rid)):
            p.add('id', f'expected a slug of a-z, 0-9, "_", ".", "-", got {rid!r}', label)
        elif rid in ids:
            p.add('id', f'duplicate row id (also row #{ids[rid] + 1})', label)
        else:
            ids[rid] = index
        _validate_row(row, label, table_metrics, p)

    by_id = {row.get('id'): row for row in rows if isinstance(row, dict)}
    _check_derived_arithmetic(rows, by_id, p)
    _validate_claims(data.get('claims'), by_id, table_metrics, p)
    return p.items


def _validate_row(row: dict, label: str, table_metrics: Tuple[str, ...], p: Problems) -> None:
    _check_keys(row, ROW_KEYS, p, row=label)
    method = row.get('method')
    if 'method' in row and method not in vocab.METHODS:
        p.add('method', f'unknown method {method!r}; known: {", ".join(vocab.METHODS)}', label)
    teachers = row.get('teachers')
    if 'teachers' in row:
        if not isinstance(teachers, list):
            p.add('teachers', f'expected an ordered list of teacher entries, got {teachers!r}', label)
            teachers = []
        elif method == 'baseline' and teachers:
            p.add('teachers', 'a baseline row (student trained alone) has no teachers: write []', label)
        elif method != 'baseline' and not teachers:
            p.add('teachers', f'a {method!r} row needs at least one teacher', label)
        for i, t in enumerate(teachers):
            _check_spec(t, f'teachers[{i}]', p, label, teacher=True)
    if 'student' in row:
        _check_spec(row['student'], 'student', p, label, teacher=False)

    switches = row.get('switches')
    if switches is not None:
        if not isinstance(switches, dict):
            p.add('switches', f'expected a mapping, got {switches!r}', label)
        else:
            allowed = vocab.SWITCHES.get(method, {})
            n = len(teachers) if isinstance(teachers, list) else None
            for name, value in switches.items():
                if name not in allowed:
                    p.add(f'switches.{name}', f'not a switch of method {method!r} (known: '
                                              f'{", ".join(allowed) or "none"})', label)
                else:
                    _check_switch_value(allowed[name], value, n, f'switches.{name}', p, label)

    metrics = row.get('metrics') or {}
    if not isinstance(metrics, dict):
        p.add('metrics', f'expected a mapping metric -> value, got {metrics!r}', label)
        metrics = {}
    for name, value in metrics.items():
        field = f'metrics.{name}'
        if name not in table_metrics:
            p.add(field, f'not one of the table\'s metrics ({", ".join(table_metrics)})', label)
        _check_percent(value, field, p, label)

    derived = row.get('derived') or {}
    if not isinstance(derived, dict):
        p.add('derived', 'expected a mapping metric -> {value, quote, section, ...}', label)
        derived = {}
    for name, entry in derived.items():
        field = f'derived.{name}'
        if name not in table_metrics:
            p.add(field, f'not one of the table\'s metrics ({", ".join(table_metrics)})', label)
        if name in metrics:
            p.add(field, 'the cell is printed (in metrics); a cell is either printed or derived', label)
        if not isinstance(entry, dict):
            p.add(field, 'expected {value, quote, section, relative_to?, difference?}', label)
            continue
        _check_keys(entry, {'value': True, 'quote': True, 'section': True, 'relative_to': False,
                            'difference': False}, p, field + '.', label)
        _check_percent(entry.get('value'), field + '.value', p, label)
        if not _is_text(entry.get('quote')):
            p.add(field + '.quote', 'a derived cell quotes the sentence it comes from', label)
        if ('relative_to' in entry) != ('difference' in entry):
            p.add(field, 'relative_to and difference come together', label)
        if 'difference' in entry and not _is_number(entry['difference']):
            p.add(field + '.difference', f'expected a signed number, got {entry["difference"]!r}', label)
        ref = entry.get('relative_to')
        if ref is not None and not (isinstance(ref, dict) and set(ref) == {'row', 'metric'}):
            p.add(field + '.relative_to', f'expected {{row, metric}}, got {ref!r}', label)

    known = set(metrics) | set(derived)
    if not known:
        p.add('metrics', 'the row reports no value (printed or derived)', label)
    for key in ('printed_gain', 'unreadable', 'interpreted'):
        if key in row and not isinstance(row[key], dict):
            p.add(key, f'expected a mapping, got {row[key]!r}', label)
    for name, gain in (row.get('printed_gain') or {}).items() if isinstance(row.get('printed_gain'), dict) else ():
        if not _is_number(gain):
            p.add(f'printed_gain.{name}', f'expected the signed number as printed, e.g. 1.7, got {gain!r}', label)
        if name not in known:
            p.add(f'printed_gain.{name}', 'a gain is printed beside a value; the row has no value for it', label)
        if method == 'baseline':
            p.add(f'printed_gain.{name}', 'a baseline row has no gain over itself', label)
    for name, entry in (row.get('unreadable') or {}).items() if isinstance(row.get('unreadable'), dict) else ():
        field = f'unreadable.{name}'
        if name not in table_metrics:
            p.add(field, f'not one of the table\'s metrics ({", ".join(table_metrics)})', label)
        if name in known:
            p.add(field, 'an unreadable cell has no value; remove it from metrics/derived', label)
        if not (isinstance(entry, dict) and set(entry) == {'printed', 'note'} and _is_text(entry['note'])):
            p.add(field, 'expected {printed: text as printed, note: text}', label)
    for name, note in (row.get('interpreted') or {}).items() if isinstance(row.get('interpreted'), dict) else ():
        if name not in vocab.INTERPRETABLE_FIELDS:
            p.add(f'interpreted.{name}', f'expected one of {", ".join(vocab.INTERPRETABLE_FIELDS)}', label)
        if not _is_text(note):
            p.add(f'interpreted.{name}', 'expected text saying what was interpreted and why', label)
    ablation = row.get('ablation')
    if ablation is not None and not (isinstance(ablation, dict) and set(ablation) == {'ticks', 'columns'}
                                     and isinstance(ablation['ticks'], int) and isinstance(ablation['columns'], list)
                                     and 0 <= ablation['ticks'] <= len(ablation['columns'])):
        p.add('ablation', f'expected {{ticks: count, columns: [names]}} with ticks <= columns, got {ablation!r}',
              label)
    for key in ('source', 'notes'):
        if key in row and not _is_text(row[key]):
            p.add(key, 'expected text', label)


def _check_derived_arithmetic(rows: list, by_id: dict, p: Problems) -> None:
    """value == referenced value + difference, for every derived cell that states a reference."""
    for row in rows:
        if not isinstance(row, dict) or not isinstance(row.get('derived'), dict):
            continue
        label = row.get('id')
        for name, entry in row['derived'].items():
            if not (isinstance(entry, dict) and isinstance(entry.get('relative_to'), dict)
                    and _is_number(entry.get('difference')) and _is_number(entry.get('value'))):
                continue
            ref = entry['relative_to']
            target = by_id.get(ref.get('row'))
            field = f'derived.{name}.relative_to'
            if target is None:
                p.add(field, f'row {ref.get("row")!r} is not in this table', label)
                continue
            ref_value = _row_values(target).get(ref.get('metric'))
            if ref_value is None:
                p.add(field, f'row {ref.get("row")!r} has no value for {ref.get("metric")!r}', label)
                continue
            expected = round(ref_value + entry['difference'], 1)
            if abs(expected - entry['value']) > TOLERANCE:
                p.add(f'derived.{name}.value', f'{entry["value"]} != {ref_value} {entry["difference"]:+} '
                                               f'= {expected} (row {ref.get("row")!r})', label)


def _validate_claims(claims, by_id: dict, table_metrics: Tuple[str, ...], p: Problems) -> None:
    if claims is None:
        return
    if not isinstance(claims, list):
        p.add('claims', 'expected a list of {quote, section, checks}')
        return
    for i, claim in enumerate(claims):
        field = f'claims[{i}]'
        if not isinstance(claim, dict):
            p.add(field, 'expected a mapping')
            continue
        _check_keys(claim, {'quote': True, 'section': True, 'checks': True}, p, field + '.')
        if not _is_text(claim.get('quote')):
            p.add(field + '.quote', 'expected the sentence, verbatim')
        checks = claim.get('checks')
        if not (isinstance(checks, list) and checks):
            p.add(field + '.checks', 'expected a non-empty list of checks')
            continue
        for j, check in enumerate(checks):
            cf = f'{field}.checks[{j}]'
            if not isinstance(check, dict):
                p.add(cf, 'expected a mapping')
                continue
            _check_keys(check, {'row': True, 'metric': True, 'value': True, 'minus': False, 'op': False,
                                'holds': False, 'note': False}, p, cf + '.')
            for key in ('row', 'minus'):
                if key in check and check[key] not in by_id:
                    p.add(f'{cf}.{key}', f'row {check[key]!r} is not in this table')
            if check.get('metric') not in table_metrics:
                p.add(cf + '.metric', f'not one of the table\'s metrics ({", ".join(table_metrics)})')
            if not _is_number(check.get('value')):
                p.add(cf + '.value', f'expected a number, got {check.get("value")!r}')
            if check.get('op', 'eq') not in CLAIM_OPS:
                p.add(cf + '.op', f'expected one of {", ".join(CLAIM_OPS)}')
            if not isinstance(check.get('holds', True), bool):
                p.add(cf + '.holds', 'expected true or false')
            if check.get('holds', True) is False and not _is_text(check.get('note')):
                p.add(cf + '.note', 'a claim marked holds: false says why')


# ------------------------------------------------------------------------------------------ registry
def validate_registry(root: Path) -> None:
    """Validate every file under ``root`` and the references between them; raise one RegistryError."""
    root = Path(root)
    problems: List[str] = []
    if not root.is_dir():
        raise RegistryError([f'{root}: the paper registry folder does not exist'],
                            'set KDLAB_PAPERS to the papers/ folder of a kdlab checkout')
    for paper_dir in sorted(d for d in root.iterdir() if d.is_dir() and not d.name.startswith(('.', '_'))):
        problems.extend(validate_paper_dir(paper_dir, root))
    if problems:
        raise RegistryError(problems)


def display_path(path: Path, root: Path) -> str:
    """``papers/dfmsd/table1.yaml`` style path for messages."""
    try:
        return str(Path(root.name) / Path(path).resolve().relative_to(root.resolve()))
    except ValueError:
        return str(path)


def validate_paper_dir(paper_dir: Path, root: Path) -> List[str]:
    """Problems of one paper folder: its paper.yaml, each table file, and references between them."""
    problems: List[str] = []
    paper_id = paper_dir.name
    if not ID_PATTERN.match(paper_id):
        problems.append(f'{display_path(paper_dir, root)}: folder name must be a lower-case id (a-z, 0-9, _)')
    paper_path = paper_dir / PAPER_FILE
    if not paper_path.is_file():
        return problems + [f'{display_path(paper_dir, root)}: no {PAPER_FILE}']
    try:
        paper = read_yaml(paper_path, display_path(paper_path, root))
    except RegistryError as err:
        return problems + err.problems
    problems.extend(validate_paper(paper, paper_id, display_path(paper_path, root)))
    tables: Dict[str, Any] = {}
    for path in sorted(paper_dir.glob('*.yaml')):
        if path.name == PAPER_FILE:
            continue
        display = display_path(path, root)
        if not ID_PATTERN.match(path.stem):
            problems.append(f'{display}: table file names are lower-case ids such as table1.yaml')
            continue
        try:
            data = read_yaml(path, display)
        except RegistryError as err:
            problems.extend(err.problems)
            continue
        problems.extend(validate_table(data, path.stem, display))
        tables[path.stem] = data
    for other in paper_dir.iterdir():
        if other.is_file() and other.suffix in ('.yml', '.json', '.csv'):
            problems.append(f'{display_path(other, root)}: registry files are .yaml')
    # known_differences must point at existing rows
    if isinstance(paper, dict) and isinstance(paper.get('known_differences'), list):
        for i, d in enumerate(paper['known_differences']):
            for ref in (d.get('rows') or []) if isinstance(d, dict) else ():
                if not isinstance(ref, str) or '/' not in ref:
                    continue
                table_id, row_id = ref.split('/', 1)
                rows = (tables.get(table_id) or {}).get('rows') or []
                if not any(isinstance(r, dict) and r.get('id') == row_id for r in rows):
                    problems.append(f'{display_path(paper_path, root)}: field '
                                    f"'known_differences[{i}].rows': {ref!r} is not a row of this paper")
    return problems
