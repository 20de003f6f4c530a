"""Wall time of one distillation training step per method, as a ratio to the student's own step.

Pair: student ``retinanet_r50`` <- teacher ``retinanet_x101`` (zoo names; ``--pair STUDENT:TEACHER`` for
another, e.g. ``retinanet_r50:cascade_mask_rcnn_x101``) at ``--scale`` (default ``mini``; ``smoke`` for tests). Everything is built the way mmengine builds it: ``Runner.from_cfg`` (a temporary
``work_dir``), ``runner.build_optim_wrapper(runner.optim_wrapper)`` (ICD's ``SplitOptimWrapperConstructor``
gives an ``OptimWrapperDict``, which its ``train_step`` takes) and ``runner.build_dataloader``; the models'
weights are initialised as ``Runner.train`` does (``model.init_weights()``) so that heads start from their
priors (DFMSD's teacher boxes above a score threshold, for one, depend on it). The teacher is random
(``teacher_ckpt=None``): its weights do not change the cost of a step.

The baseline is the student alone (``detector_config(student, scale)``); the distilled model is
``distill_config(student_cfg, teacher_cfg, method=m)``. Both step on the same fixed batch, the first batch of
the student config's train dataloader (a fresh copy each step). Each method runs in its own subprocess, which
builds both models, runs ``--warmup`` untimed steps of each, then alternates one student and one distilled
``model.train_step(batch, optim_wrapper)`` ``--repeats`` times: the ratio is the distilled median over the
student median from the same process. Wall and CPU time (all threads of the process) are reported, as in
``feature_losses``. Memory: the process's peak resident set size with the student alone (built and warmed up)
and at the end (both models, all steps).

The distilled step is timed as in steady training: the message hub's ``iter`` is set past a distiller's
``warmup_iters`` (ICD: until then its loss does not reach the student, so the student's backward is shorter).

A method whose config or model cannot be built on this pair shows its reason in the table; one that builds but
fails in a step shows that too, and makes the benchmark exit with status 1.
"""
from __future__ import annotations

import argparse
import copy
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from typing import List, Optional, Tuple

from benchmarks._measure import maxrss_mib, timed

STUDENT, TEACHER = 'retinanet_r50', 'retinanet_x101'
SCALES = ('smoke', 'mini')


def methods() -> Tuple[str, ...]:
    """Every registered distillation method id (kdlab's built-in ones loaded)."""
    from kdlab.methods import METHODS, _load_builtin
    _load_builtin()
    return tuple(METHODS)


def _error(exc: BaseException) -> str:
    text = ' '.join(str(exc).split())
    return f'{type(exc).__name__}: {text[:300]}'


def _build(cfg, work_dir: str, name: str):
    """(model, optim wrapper) of ``cfg`` as mmengine's Runner builds them, weights initialised."""
    from mmengine.runner import Runner
    cfg = copy.deepcopy(cfg)
    cfg.work_dir = os.path.join(work_dir, name)
    cfg.experiment_name = f'bench_{name}_{os.getpid()}'   # one logger / visualizer / message hub per runner
    cfg.load_from, cfg.resume = None, False
    runner = Runner.from_cfg(cfg)
    model = runner.model
    if hasattr(model, 'init_weights'):
        model.init_weights()
    model.train()
    optim_wrapper = runner.build_optim_wrapper(runner.optim_wrapper)
    return runner, model, optim_wrapper


def _stepper(model, optim_wrapper, batch):
    def step():
        model.train_step(copy.deepcopy(batch), optim_wrapper)
    return step


def worker(method: str, warmup: int, repeats: int, scale: str = 'mini', threads: int = 0,
           pair: Tuple[str, str] = (STUDENT, TEACHER)) -> dict:
    """Run one method in this process (see the module docstring); a row of the table."""
    import torch
    import kdlab  # noqa: F401  (compat fixes)
    import kdlab.models  # noqa: F401  (registers kdlab's mmrazor components)
    from mmengine.logging import MessageHub
    from kdlab.methods import distill_config
    from kdlab.zoo import detector_config

    if threads:
        torch.set_num_threads(threads)
    student, teacher = pair
    row = dict(method=method, student=student, teacher=teacher, scale=scale, warmup=warmup, repeats=repeats,
               threads=torch.get_num_threads(), torch=torch.__version__, error=None, stage=None)
    with tempfile.TemporaryDirectory(prefix='kdlab-bench-') as tmp:
        s_cfg = detector_config(student, scale)
        t_cfg = detector_config(teacher, scale)
        s_runner, s_model, s_optim = _build(s_cfg, tmp, 'student')
        batch = next(iter(s_runner.build_dataloader(s_runner.cfg.train_dataloader)))
        s_step = _stepper(s_model, s_optim, batch)
        for _ in range(max(1, warmup)):
            s_step()
        row['student_peak_mib'] = maxrss_mib()
        row['batch_size'] = len(batch['inputs'])
        try:
            cfg = distill_config(s_cfg, t_cfg, student=student, teacher=teacher, teacher_ckpt=None, method=method)
            d_runner, d_model, d_optim = _build(cfg, tmp, method)
        except Exception as exc:  # noqa: BLE001  (the table says why)
            row.update(error=_error(exc), stage='build', peak_mib=maxrss_mib())
            return row
        row['optim_wrapper'] = type(d_optim).__name__
        hub = MessageHub.get_current_instance()
        it = int(getattr(getattr(d_model, 'distiller', None), 'warmup_iters', 0) or 0)
        hub.update_info('iter', it)   # steady training: past a distiller's warm-up
        d_step = _stepper(d_model, d_optim, batch)
        try:
            for _ in range(max(1, warmup)):
                d_step()
        except Exception as exc:  # noqa: BLE001
            row.update(error=_error(exc), stage='step', peak_mib=maxrss_mib())
            return row
        times, s_times = [], []
        for _ in range(repeats):
            s_times.append(timed(s_step))
            times.append(timed(d_step))
        del d_runner, s_runner
    med, cpu = statistics.median(t[0] for t in times), statistics.median(t[1] for t in times)
    s_med, s_cpu = statistics.median(t[0] for t in s_times), statistics.median(t[1] for t in s_times)
    row.update(median_s=med, cpu_s=cpu, times_s=[t[0] for t in times], student_median_s=s_med,
               student_cpu_s=s_cpu, student_times_s=[t[0] for t in s_times], ratio=med / s_med,
               cpu_ratio=cpu / s_cpu, peak_mib=maxrss_mib())
    return row


def run_case(method: str, warmup: int, repeats: int, scale: str = 'mini', threads: int = 0,
             pair: Tuple[str, str] = (STUDENT, TEACHER)) -> dict:
    """``worker`` in a fresh subprocess; a process that dies is a row with its last error line."""
    cmd = [sys.executable, '-m', 'benchmarks.train_step', '--worker', method, '--warmup', str(warmup),
           '--repeats', str(repeats), '--scale', scale, '--threads', str(threads), '--pair', ':'.join(pair)]
    env = dict(os.environ, PYTHONWARNINGS='ignore')
    out = subprocess.run(cmd, capture_output=True, text=True, env=env,
                         cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    last = out.stdout.strip().splitlines()[-1] if out.stdout.strip() else ''
    if out.returncode == 0 and last.startswith('{'):
        return json.loads(last)
    lines = [ln for ln in out.stderr.strip().splitlines() if ln.strip()]
    return dict(method=method, scale=scale, error=f'process exited {out.returncode}: '
                f'{lines[-1] if lines else "no output"}'[:300], stage='process', stderr=out.stderr[-3000:])


def format_table(rows: List[dict]) -> str:
    """Columns: medians of the student's and the distilled step; ``x student``: wall ratio in the same process;
    ``CPU x student``: the same for CPU time; peak MiB: the process's maximum RSS with the student alone and
    at the end."""
    head = (f'{"method":<9} {"student (s)":>11} {"distilled (s)":>13} {"x student":>9} {"CPU x student":>13} '
            f'{"peak MiB (student / end)":>24}')
    lines = [head, '-' * len(head)]
    for r in rows:
        if r.get('error'):
            lines.append(f'{r["method"]:<9} not run ({r["stage"]}): {r["error"]}')
            continue
        peak = f'{r["student_peak_mib"]:.0f} / {r["peak_mib"]:.0f}'
        lines.append(f'{r["method"]:<9} {r["student_median_s"]:11.3f} {r["median_s"]:13.3f} {r["ratio"]:9.2f} '
                     f'{r["cpu_ratio"]:13.2f} {peak:>24}')
    ok = [r for r in rows if not r.get('error')]
    if ok:
        s_run = statistics.median(r['student_median_s'] for r in ok)
        lines.append(f'student step over the run: {s_run:.3f} s wall (median of {len(ok)} processes)')
    return '\n'.join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog='python -m benchmarks train_step', description=__doc__.split('\n')[0])
    ap.add_argument('--only', help='comma-separated method ids (default: every registered method)')
    ap.add_argument('--scale', default='mini', choices=SCALES, help='zoo scale of both detectors (default mini)')
    ap.add_argument('--warmup', type=int, default=2, help='untimed steps of each model first (default 2)')
    ap.add_argument('--repeats', type=int, default=5, help='timed steps of each model, alternating; medians are '
                    'reported (default 5)')
    ap.add_argument('--threads', type=int, default=0, help="torch threads per process (default 0: torch's default)")
    ap.add_argument('--pair', default=f'{STUDENT}:{TEACHER}',
                    help=f'STUDENT:TEACHER zoo names (default {STUDENT}:{TEACHER})')
    ap.add_argument('--json', help='also write the rows to this JSON file')
    ap.add_argument('--worker', help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    from kdlab.engine.leaderboard import parse_pair
    from kdlab.errors import KdlabError
    try:
        pair = parse_pair(args.pair)
    except KdlabError as err:
        ap.error(str(err).splitlines()[0])
    if args.repeats < 1:
        ap.error('--repeats must be at least 1')
    if args.worker:
        print(json.dumps(worker(args.worker, args.warmup, args.repeats, args.scale, args.threads, pair)))
        return 0
    known = methods()
    cases = [m.strip() for m in args.only.split(',') if m.strip()] if args.only else list(known)
    unknown = [m for m in cases if m not in known]
    if unknown:
        ap.error(f'unknown method(s) {unknown}; known: {", ".join(known)}')
    print(f'train step: {pair[0]} <- {pair[1]} ({args.scale}), distilled vs student-only step on one fixed batch; '
          f'warmup {args.warmup}, repeats {args.repeats}', flush=True)
    rows = []
    for m in cases:
        t0 = time.time()
        rows.append(run_case(m, args.warmup, args.repeats, args.scale, args.threads, pair))
        r = rows[-1]
        done = (f'{r["median_s"]:.3f} s, student {r["student_median_s"]:.3f} s' if not r.get('error')
                else f'not run ({r["stage"]})')
        print(f'  {m}: {done} ({time.time() - t0:.0f} s with setup)', flush=True)
    print(format_table(rows))
    ok = [r for r in rows if not r.get('error')]
    if ok:
        print(f'(torch {ok[0]["torch"]}, {ok[0]["threads"]} threads, batch {ok[0]["batch_size"]} images)')
    if args.json:
        with open(args.json, 'w') as f:
            json.dump(rows, f, indent=1)
    return 1 if any(r.get('stage') in ('step', 'process') for r in rows) else 0


if __name__ == '__main__':
    sys.exit(main())
