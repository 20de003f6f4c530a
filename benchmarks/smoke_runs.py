"""What a smoke-scale table costs, with kdlab's per-run savings and without them, as a ratio from the same call.

``make test``'s critical path is every registered table trained at smoke scale (about 120 runs); a smoke run is
seconds of model work inside a second or two of fixed costs. This benchmark trains one table (``--paper``,
``--table``; default DFMSD Table 6, 24 rows, 34 runs) into a fresh run store, once as kdlab runs it and once with
the savings undone, alternating ``--repeats`` times, each in its own process (imports, caches and the memos
below start empty), one thread each:

* ``format``: the run's config written in yapf's layout (:data:`kdlab.engine.runner.FORMAT_RUN_CONFIG`);
* ``gc``: mmengine's full garbage collection per dataset (:mod:`kdlab.compat`, fix 8);
* ``memo``: every teacher checkpoint checked and every checkpoint hashed again for each run that needs it
  (:func:`kdlab.engine.checkpoints.check_checkpoint`, :func:`kdlab.engine.store.file_digest`);
* ``budget``: two-stage detectors with the mini scale's RoI budget and 100 detections per image instead of the
  smoke scale's (:data:`kdlab.zoo.SMOKE_ROIS_PER_IMAGE` and the two after it);
* ``eval``: every run tested after its last validation of the same weights on the same split
  (:func:`kdlab.engine.runner.final_validation`).

``--undo`` picks which are undone (default all five). Reported: each variant's wall time (median over repeats)
and the ratio of kdlab's to the undone one. The runs' configs differ only under ``budget``; their results are
not compared (smoke numbers mean nothing).
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from typing import List

SAVINGS = ('format', 'gc', 'memo', 'budget', 'eval')


class _Forgetful(dict):
    """A memo that never remembers (``in`` is always False)."""

    def __contains__(self, key) -> bool:
        return False

    def add(self, key) -> None:
        pass


def undo(savings: List[str]) -> None:
    """Put back mmengine's or the mini scale's behaviour for each of ``savings`` in this process."""
    if 'format' in savings:
        from kdlab.engine import runner
        runner.FORMAT_RUN_CONFIG = True
    if 'gc' in savings:
        import gc
        from mmengine.dataset import base_dataset
        base_dataset.gc = gc
    if 'memo' in savings:
        from kdlab.engine import checkpoints, store
        checkpoints._PASSED = _Forgetful()
        store._DIGESTS = _Forgetful()
    if 'budget' in savings:
        import kdlab.zoo as zoo
        zoo.SMOKE_ROIS_PER_IMAGE = zoo.MINI_ROIS_PER_IMAGE
        zoo.SMOKE_PROPOSALS_PER_IMAGE = zoo.MINI_PROPOSALS_PER_IMAGE
        zoo.SMOKE_DETECTIONS_PER_IMAGE = 100
    if 'eval' in savings:
        from kdlab.engine import runner
        runner.final_validation = lambda *args: None


def worker(paper: str, table: str, savings: List[str]) -> dict:
    import kdlab  # noqa: F401
    from kdlab.engine import reproduce
    from kdlab.engine.store import RunStore
    undo(savings)
    with tempfile.TemporaryDirectory() as d:
        job = reproduce.reproduction(paper, [table], 'smoke', store=RunStore(f'{d}/runs', f'{d}/work'))
        runs = len(job.pending())
        t0 = time.perf_counter()
        job.run(resume=True, interrupt='stop')
        return dict(undone=savings, runs=runs, wall_s=time.perf_counter() - t0)


def run_variant(paper: str, table: str, savings: List[str]) -> dict:
    env = dict(os.environ, OMP_NUM_THREADS='1', MKL_NUM_THREADS='1')
    out = subprocess.run([sys.executable, '-m', 'benchmarks', 'smoke_runs', '--worker', '--paper', paper,
                          '--table', table, '--undo', *(savings or ['none'])], capture_output=True, text=True,
                         env=env)
    lines = [line for line in out.stdout.splitlines() if line.startswith('{')]
    if out.returncode or not lines:
        raise RuntimeError(f'the {savings or "kdlab"} variant failed:\n{out.stderr[-2000:]}')
    return json.loads(lines[-1])


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog='python -m benchmarks smoke_runs', description=__doc__.split('\n')[0])
    p.add_argument('--paper', default='dfmsd')
    p.add_argument('--table', default='table6')
    p.add_argument('--undo', nargs='+', default=list(SAVINGS), choices=list(SAVINGS) + ['none'])
    p.add_argument('--repeats', type=int, default=1)
    p.add_argument('--worker', action='store_true', help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    savings = [s for s in args.undo if s != 'none']
    if args.worker:
        print(json.dumps(worker(args.paper, args.table, savings)))
        return 0
    walls = {'kdlab': [], 'undone': []}
    runs = None
    for _ in range(args.repeats):          # alternated: a slower machine slows both alike
        for name, undone in (('kdlab', []), ('undone', savings)):
            row = run_variant(args.paper, args.table, undone)
            walls[name].append(row['wall_s'])
            runs = row['runs']
    kd, un = statistics.median(walls['kdlab']), statistics.median(walls['undone'])
    print(f'{args.paper} {args.table} at smoke scale, {runs} runs, one thread, median of {args.repeats}:')
    undone = f'undone: {" ".join(savings)}'
    width = max(len(undone), len('kdlab'))
    print(f'  {"kdlab":<{width}} {kd:7.1f} s  ({kd / runs:.2f} s a run)')
    print(f'  {undone:<{width}} {un:7.1f} s  ({un / runs:.2f} s a run)')
    print(f'  ratio kdlab / undone: {kd / un:.2f}')
    return 0
