"""How many runs the whole paper registry needs at a scale, and how much content addressing saves.

Planning only (:func:`kdlab.engine.planner.plan_rows`), nothing trains. Per paper and in total: the table
rows, the rows kdlab can run (those the plan answers with a run), the rows it skips, the unique runs planned,
``rows/run`` (runnable rows over unique runs), ``alone``: the runs the runnable rows would need if each were
planned on its own (its teachers, its baseline, its distilled run or SAL stages), and ``saved``: alone over
unique. Every paper of the registry is listed, one without reported tables with 0 rows. The total is one
plan over every row of the registry, so a teacher or baseline shared by two papers is one run there (the
total's unique runs are at most the papers' sum). The reasons rows are skipped follow.
"""
from __future__ import annotations

import argparse
import collections
import json
import sys
import time
from typing import Dict


def _closure(plan, ref: str) -> set:
    """Keys of the runs row ``ref`` needs on its own: its run, what that needs (recursively), its baseline."""
    todo = [plan.rows[ref]] + ([plan.baselines[ref]] if ref in plan.baselines else [])
    seen = set()
    while todo:
        key = todo.pop()
        if key in seen:
            continue
        seen.add(key)
        todo.extend(plan.runs[key].needs)
    return seen


def summarise(name: str, plan) -> dict:
    """One row of the table from a plan."""
    alone = sum(len(_closure(plan, ref)) for ref in plan.rows)
    unique = len(plan.runs)
    return dict(paper=name, rows=plan.row_count, runnable=len(plan.rows), skipped=len(plan.skipped),
                unique_runs=unique, alone_runs=alone,
                roles=dict(collections.Counter(r.role for r in plan.runs.values())),
                rows_per_run=len(plan.rows) / unique if unique else None,
                saved=alone / unique if unique else None)


def measure(scale: str = 'mini', root=None) -> Dict[str, object]:
    """Per-paper rows, the total row and the skip reasons of the registry planned at ``scale``."""
    from kdlab import papers
    from kdlab.engine.planner import plan_rows
    t0 = time.perf_counter()
    rows = list(papers.iter_rows(root=root))
    load_s = time.perf_counter() - t0
    by_paper: Dict[str, list] = {p: [] for p in papers.list_papers(root=root)}   # papers without tables: 0
    for r in rows:
        by_paper.setdefault(r.paper, []).append(r)
    t0 = time.perf_counter()
    per_paper = [summarise(p, plan_rows(rs, scale)) for p, rs in by_paper.items()]
    total_plan = plan_rows(rows, scale)
    plan_s = time.perf_counter() - t0
    total = summarise('total', total_plan)
    reasons = collections.Counter(total_plan.skipped.values())
    return dict(scale=scale, papers=per_paper, total=total, skip_reasons=reasons.most_common(),
                load_s=load_s, plan_s=plan_s)


def _ratio(v) -> str:
    return '-' if v is None else f'{v:.2f}'


def format_table(result: dict) -> str:
    head = (f'{"paper":<10} {"rows":>5} {"runnable":>8} {"skipped":>7} {"unique runs":>11} {"rows/run":>8} '
            f'{"alone":>6} {"saved":>6}')
    lines = [head, '-' * len(head)]

    def line(r):
        return (f'{r["paper"]:<10} {r["rows"]:5d} {r["runnable"]:8d} {r["skipped"]:7d} {r["unique_runs"]:11d} '
                f'{_ratio(r["rows_per_run"]):>8} {r["alone_runs"]:6d} {_ratio(r["saved"]):>6}')
    lines += [line(r) for r in result['papers']]
    lines.append('-' * len(head))
    lines.append(line(result['total']))
    t = result['total']
    roles = ', '.join(f'{n} {role}' for role, n in sorted(t['roles'].items()))
    lines.append(f'total unique runs by role: {roles or "none"}; sum of the papers\' unique runs: '
                 f'{sum(r["unique_runs"] for r in result["papers"])}')
    if result['skip_reasons']:
        lines.append('skipped rows by reason:')
        lines += [f'  {n:4d}  {why}' for why, n in result['skip_reasons']]
    return '\n'.join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog='python -m benchmarks registry_runs', description=__doc__.split('\n')[0])
    ap.add_argument('--scale', default='mini', choices=('smoke', 'mini'),
                    help='scale the rows are planned at (default mini; full scale has no 3x schedule for the '
                    "teachers plan_rows trains 3x by default)")
    ap.add_argument('--json', help='also write the result to this JSON file')
    args = ap.parse_args(argv)
    import kdlab  # noqa: F401  (compat fixes before mmengine / mmdet are imported)
    result = measure(args.scale)
    print(f'paper registry planned at {args.scale} scale (planning only, nothing trains)')
    print(format_table(result))
    print(f'(loaded {result["total"]["rows"]} rows in {result["load_s"]:.1f} s, planned in {result["plan_s"]:.1f} s)')
    if args.json:
        with open(args.json, 'w') as f:
            json.dump(result, f, indent=1)
    return 0


if __name__ == '__main__':
    sys.exit(main())
