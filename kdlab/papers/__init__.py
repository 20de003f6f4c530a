"""The paper registry: the numbers papers report, as data a program can trust.

``papers/<paper_id>/paper.yaml`` holds a paper's metadata, method switches, hyper-parameters and interpretation
notes; ``papers/<paper_id>/<table_id>.yaml`` holds one reported table (schema and policy: ``docs/papers.md``).

>>> from kdlab import papers
>>> papers.list_papers()                      # ['amd', 'crosskd', 'dcsf_kd', 'dfmsd', ...]
>>> papers.list_tables('dfmsd')               # ['table1', ..., 'table11']
>>> df = papers.load_table('dfmsd', 'table6') # one row per reported row, metrics mAP ... ARl
>>> for row in papers.iter_rows('dfmsd', 'table7'):   # structured rows for the run engine
...     row.teachers, row.student, row.switches, row.metrics, row.runnable
>>> papers.compare_pairs()                    # the same pair as different papers report it
>>> papers.consistency.report()               # printed gains, repeated configurations, claims
"""
from kdlab.papers import consistency, vocab
from kdlab.papers.compare import compare_pairs, compare_teachers, findings, pair_key
from kdlab.papers.display import display_frame, show_table
from kdlab.papers.registry import (ENV_VAR, ModelSpec, ReportedRow, iter_rows, list_papers, list_tables,
                                   load_all, load_paper, load_table, load_table_data, registry_root, summary)
from kdlab.papers.schema import validate_registry


def validate(*, root=None) -> None:
    """Validate every file of the registry; raises :class:`kdlab.errors.RegistryError` listing all problems."""
    validate_registry(registry_root(root))


__all__ = [
    'ENV_VAR', 'ModelSpec', 'ReportedRow', 'compare_pairs', 'compare_teachers', 'consistency', 'display_frame',
    'findings', 'iter_rows', 'list_papers', 'list_tables', 'load_all', 'load_paper', 'load_table',
    'load_table_data', 'pair_key', 'registry_root', 'show_table', 'summary', 'validate', 'vocab',
]
