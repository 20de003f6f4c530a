"""Loading the paper registry: papers, tables, structured rows and DataFrames.

Every file is validated (:mod:`kdlab.papers.schema`) as it is read, so nothing malformed reaches a DataFrame
or the run engine. The registry root is ``<repo>/papers`` next to the package (editable install), or the
folder named by the environment variable ``KDLAB_PAPERS``, or the ``root`` argument of each function.
"""
from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, Iterator, List, Mapping, Optional, Tuple

from kdlab.errors import RegistryError, UnknownNameError
from kdlab.papers import vocab
from kdlab.papers.schema import (PAPER_FILE, display_path, read_yaml, validate_paper, validate_table)

ENV_VAR = 'KDLAB_PAPERS'
NO_TEACHER = 'none'


def registry_root(root=None) -> Path:
    """The registry folder: ``root`` if given, else ``$KDLAB_PAPERS``, else ``<repo>/papers``."""
    if root is not None:
        return Path(root)
    env = os.environ.get(ENV_VAR)
    if env:
        return Path(env)
    return Path(__file__).resolve().parents[2] / 'papers'


def _require_root(root) -> Path:
    path = registry_root(root)
    if not path.is_dir():
        raise RegistryError([f'{path}: the paper registry folder does not exist'],
                            f'run from an editable install of the kdlab repository, or set {ENV_VAR} to its '
                            f'papers/ folder')
    return path


# ------------------------------------------------------------------------------------------ listing
def list_papers(*, root=None) -> List[str]:
    """Ids of the registered papers (folders holding a paper.yaml), sorted."""
    base = _require_root(root)
    return sorted(d.name for d in base.iterdir() if (d / PAPER_FILE).is_file())


def _table_sort_key(table_id: str) -> Tuple[int, int, str]:
    match = re.fullmatch(r'table(\d+)', table_id)
    return (0, int(match.group(1)), '') if match else (1, 0, table_id)


def list_tables(paper_id: str, *, root=None) -> List[str]:
    """Table ids of one paper in the paper's order (``table1, table2, ..., table10``, then others)."""
    base = _require_root(root)
    folder = base / paper_id
    if not (folder / PAPER_FILE).is_file():
        raise UnknownNameError('paper', paper_id, list_papers(root=base),
                               'run `kdlab papers` to list the registered papers')
    return sorted((p.stem for p in folder.glob('*.yaml') if p.name != PAPER_FILE), key=_table_sort_key)


# ------------------------------------------------------------------------------------------ raw files
def load_paper(paper_id: str, *, root=None) -> Dict[str, Any]:
    """Metadata of one paper (the validated ``paper.yaml``) plus ``tables``: its table ids."""
    base = _require_root(root)
    tables = list_tables(paper_id, root=base)   # raises UnknownNameError for an unknown paper
    path = base / paper_id / PAPER_FILE
    display = display_path(path, base)
    data = read_yaml(path, display)
    problems = validate_paper(data, paper_id, display)
    if problems:
        raise RegistryError(problems)
    return {**data, 'tables': tables}


def load_table_data(paper_id: str, table_id: str, *, root=None) -> Dict[str, Any]:
    """The validated contents of one table file, as a dict (rows as written)."""
    base = _require_root(root)
    tables = list_tables(paper_id, root=base)
    if table_id not in tables:
        raise UnknownNameError(f'table of {paper_id!r}', table_id, tables,
                               f'run `kdlab papers {paper_id}` to list its tables')
    path = base / paper_id / f'{table_id}.yaml'
    display = display_path(path, base)
    data = read_yaml(path, display)
    problems = validate_table(data, table_id, display)
    if problems:
        raise RegistryError(problems)
    return data


def method_defaults(method: str, *, root=None) -> Dict[str, Any]:
    """Default switches of ``method`` from ``papers/<method>/paper.yaml`` ({} when it has none)."""
    base = _require_root(root)
    if not (base / method / PAPER_FILE).is_file():
        return {}
    switches = load_paper(method, root=base).get('switches') or {}
    return {name: entry.get('default') for name, entry in switches.items()}


# ------------------------------------------------------------------------------------------ structures
@dataclass(frozen=True)
class ModelSpec:
    """A teacher or student as a table reports it. ``None`` = the source does not state it."""

    detector: Optional[str]
    backbone: Optional[str]
    schedule: Optional[str]
    label: Optional[str] = None                                  # the paper's own name, e.g. 'ST-T'
    metrics: Mapping[str, float] = field(default_factory=dict)   # teachers: their reported metrics
    extra: Mapping[str, Any] = field(default_factory=dict)       # variant, config, checkpoint, inherit, ...

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> 'ModelSpec':
        metrics = {k: v for k, v in data.items() if k in vocab.ALL_METRICS}
        extra = {k: v for k, v in data.items()
                 if k not in vocab.SPEC_KEYS and k not in metrics and k != 'label'}
        return cls(data.get('detector'), data.get('backbone'), data.get('schedule'), data.get('label'),
                   metrics, extra)

    @property
    def known(self) -> bool:
        """Detector and backbone both stated (enough to pick a config)."""
        return self.detector is not None and self.backbone is not None

    @property
    def name(self) -> str:
        """``'RetinaNet-X101'``; unknown parts as ``?``; the paper's label first when the detector is unknown."""
        text = f'{vocab.detector_name(self.detector)}-{vocab.backbone_name(self.backbone)}'
        if self.detector is None and self.label:
            return f'{self.label} ({text})'
        return text

    def describe_teacher(self) -> str:
        """``'RetinaNet-X101 (41.0)'`` with the teacher's reported mAP when there is one."""
        mAP = self.metrics.get('mAP')
        return self.name if mAP is None else f'{self.name} ({mAP})'

    def describe_student(self) -> str:
        """``'RetinaNet-R50 2x'``; ``?`` for a schedule the source does not state."""
        return f'{self.name} {self.schedule or "?"}'

    def as_dict(self) -> Dict[str, Any]:
        out = {'detector': self.detector, 'backbone': self.backbone, 'schedule': self.schedule}
        if self.label:
            out['label'] = self.label
        out.update(self.metrics)
        out.update(self.extra)
        return out


@dataclass(frozen=True)
class ReportedRow:
    """One reported row, structured for the run engine.

    ``metrics`` holds every value the registry has for the row, printed or derived; ``derived`` says which
    are derived (and from which sentence). ``switches`` are the method's switches with the method's defaults
    filled in (``papers/<method>/paper.yaml``); ``row_switches`` are the ones the row states.
    """

    paper: str
    table: str
    id: str
    method: str
    teachers: Tuple[ModelSpec, ...]
    student: ModelSpec
    row_switches: Mapping[str, Any]
    switches: Mapping[str, Any]
    metrics: Mapping[str, float]
    derived: Mapping[str, Mapping[str, Any]]
    printed_gain: Mapping[str, float]
    unreadable: Mapping[str, Mapping[str, Any]]
    interpreted: Mapping[str, str]
    ablation: Optional[Mapping[str, Any]]
    source: str
    notes: Optional[str]
    incomplete: Optional[str]

    @property
    def ref(self) -> str:
        """``'table1/<row id>'``: how paper.yaml's known_differences name the row."""
        return f'{self.table}/{self.id}'

    @property
    def stages(self) -> int:
        return len(self.teachers)

    @property
    def teacher_text(self) -> str:
        """``'RetinaNet-X101 (41.0)'``; a chain as ``'A -> B'``; ``'none'`` for a baseline."""
        return ' -> '.join(t.describe_teacher() for t in self.teachers) or NO_TEACHER

    @property
    def student_text(self) -> str:
        return self.student.describe_student()

    @property
    def unknown_switches(self) -> Tuple[str, ...]:
        """Switches the row states as null: printed in the paper but lost (e.g. a tick column)."""
        return tuple(k for k, v in self.row_switches.items() if v is None)

    @property
    def runnable(self) -> bool:
        """Enough is known to turn the row into runs: models named, no lost switch, and the table complete or
        its gaps filled by a stated interpretation of the teachers and the student (DSAMKD's abstract)."""
        filled = not self.incomplete or {'teachers', 'student'} <= set(self.interpreted)
        return (self.student.known and all(t.known for t in self.teachers)
                and not self.unknown_switches and filled)


def _resolve_switches(method: str, row_switches: Mapping[str, Any], n_teachers: int,
                      defaults: Mapping[str, Any]) -> Dict[str, Any]:
    resolved = dict(defaults)
    resolved.update(row_switches)
    stages_kind = {k for k, kind in vocab.SWITCHES.get(method, {}).items() if kind == 'stages'}
    for name in stages_kind:
        value = resolved.get(name)
        if value == 'last' and n_teachers:
            resolved[name] = [False] * (n_teachers - 1) + [True]
        elif isinstance(value, bool) and n_teachers:
            resolved[name] = [value] * n_teachers
    return resolved


def rows_from_data(paper_id: str, data: Mapping[str, Any], *, root=None,
                   defaults_cache: Optional[Dict[str, Dict[str, Any]]] = None) -> List[ReportedRow]:
    """Structured rows of one validated table dict."""
    cache = defaults_cache if defaults_cache is not None else {}
    out = []
    for row in data['rows']:
        method = row['method']
        if method not in cache:
            cache[method] = method_defaults(method, root=root)
        teachers = tuple(ModelSpec.from_dict(t) for t in row['teachers'])
        row_switches = dict(row.get('switches') or {})
        derived = dict(row.get('derived') or {})
        metrics = dict(row.get('metrics') or {})
        for name, entry in derived.items():
            metrics[name] = entry['value']
        out.append(ReportedRow(
            paper=paper_id, table=data['table'], id=row['id'], method=method, teachers=teachers,
            student=ModelSpec.from_dict(row['student']), row_switches=row_switches,
            switches=_resolve_switches(method, row_switches, len(teachers), cache[method]),
            metrics=metrics, derived=derived, printed_gain=dict(row.get('printed_gain') or {}),
            unreadable=dict(row.get('unreadable') or {}), interpreted=dict(row.get('interpreted') or {}),
            ablation=row.get('ablation'), source=row.get('source') or data['source'], notes=row.get('notes'),
            incomplete=data.get('incomplete')))
    return out


def iter_rows(paper_id: Optional[str] = None, table_id: Optional[str] = None, *,
              root=None) -> Iterator[ReportedRow]:
    """Structured rows of one table, one paper, or (no arguments) the whole registry, in paper order."""
    base = _require_root(root)
    if table_id is not None and paper_id is None:
        raise ValueError('table_id needs paper_id')
    papers = [paper_id] if paper_id is not None else list_papers(root=base)
    cache: Dict[str, Dict[str, Any]] = {}
    for pid in papers:
        tables = [table_id] if table_id is not None else list_tables(pid, root=base)
        for tid in tables:
            yield from rows_from_data(pid, load_table_data(pid, tid, root=base), root=base,
                                      defaults_cache=cache)


# ------------------------------------------------------------------------------------------ DataFrames
def _metric_columns(metrics) -> List[str]:
    return list(vocab.METRICS) + [m for m in vocab.EXTRA_METRICS if m in metrics]


def rows_to_frame(rows: List[ReportedRow], metrics=()):
    """One DataFrame row per reported row: human columns, the metrics (NaN where not reported), structure."""
    import pandas as pd

    columns = _metric_columns(set(metrics) | {m for r in rows for m in r.metrics})
    records = []
    for r in rows:
        record = {'row': r.id, 'teacher': r.teacher_text, 'student': r.student_text, 'method': r.method}
        for m in columns:
            record[m] = float(r.metrics[m]) if m in r.metrics else math.nan
        record.update({
            'printed_gain': dict(r.printed_gain),
            'derived': tuple(r.derived),
            'unreadable': tuple(r.unreadable),
            'interpreted': tuple(r.interpreted),
            'runnable': r.runnable,
            'teachers': [t.as_dict() for t in r.teachers],
            'student_spec': r.student.as_dict(),
            'switches': dict(r.switches),
            'source': r.source,
            'notes': r.notes or '',
            'paper': r.paper,
            'table': r.table,
        })
        records.append(record)
    head = ['row', 'teacher', 'student', 'method'] + columns
    tail = ['printed_gain', 'derived', 'unreadable', 'interpreted', 'runnable', 'teachers', 'student_spec',
            'switches', 'source', 'notes', 'paper', 'table']
    return pd.DataFrame.from_records(records, columns=head + tail)


def load_table(paper_id: str, table_id: str, *, root=None):
    """One reported table as a DataFrame, one row per reported row.

    Columns: ``row, teacher, student, method``, the ten box metrics ``mAP ... ARl`` (NaN where the table does
    not report them; derived cells hold their value and are named in ``derived``), any extra metric the table
    reports (``mask_mAP``), then ``printed_gain, derived, unreadable, interpreted, runnable`` and the
    structured ``teachers`` (ordered list of dicts), ``student_spec``, ``switches`` (method defaults filled
    in), ``source``, ``notes``, ``paper``, ``table``. ``df.attrs`` carries the table's title, caption,
    source, dataset, reported metrics, notes and claims.
    """
    base = _require_root(root)
    data = load_table_data(paper_id, table_id, root=base)
    frame = rows_to_frame(rows_from_data(paper_id, data, root=base), data['metrics'])
    frame.attrs.update({
        'paper': paper_id, 'table': table_id, 'title': data['title'], 'caption': data.get('caption'),
        'source': data['source'], 'dataset': data['dataset'], 'metrics': list(data['metrics']),
        'notes': list(data.get('notes') or []), 'claims': list(data.get('claims') or []),
        'incomplete': data.get('incomplete'),
    })
    return frame


def load_all(*, root=None):
    """Every row of the registry in one DataFrame (same columns as :func:`load_table`)."""
    return rows_to_frame(list(iter_rows(root=root)))


def summary(*, root=None):
    """One row per paper: id, title, venue, year, arXiv, code and whether it runs, tables, row counts."""
    import pandas as pd

    base = _require_root(root)
    records = []
    for pid in list_papers(root=base):
        meta = load_paper(pid, root=base)
        rows = list(iter_rows(pid, root=base))
        runs = meta['code']['runs']
        records.append({
            'paper': pid, 'title': meta['title'], 'venue': meta['venue'], 'year': meta['year'],
            'arxiv': meta['arxiv'] or '', 'code': meta['code']['url'] or '',
            'code_runs': {True: 'yes', False: 'no', None: 'not tried'}[runs],
            'tables': ', '.join(meta['tables']), 'rows': len(rows),
            'derived_cells': sum(len(r.derived) for r in rows),
        })
    return pd.DataFrame.from_records(records)
