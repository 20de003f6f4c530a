"""``kdlab reproduce PAPER``: a paper's reproduction notebook, executed headless with papermill.

    kdlab reproduce dfmsd --tables table6 --scale mini          # one notebook, kept under results/dfmsd/
    kdlab reproduce dcsf_kd --scale mini -j 2                   # one notebook per table, two at a time
    kdlab reproduce dfmsd --tables table8 --scale mini -w 2     # two runs at a time, one thread each (2 cores)
    kdlab reproduce pkd --plan                                  # what would run, nothing trained

The executed notebook (``results/<paper>/reproduce_<paper>_<scale>[_<table>].ipynb``) holds the styled tables;
the tables and figures are exported beside it (:func:`kdlab.engine.report.export`). A progress bar counts the
runs the notebooks train (read from the run store) and names the one training, with its epoch and mmengine's
eta (read from its log in the work dir: :func:`kdlab.engine.runner.training_progress`). With ``-j N`` tables run in parallel; a run two tables share is trained once (the run store's lock), the other waits for it. A failing
notebook makes the command exit 1 naming the notebook and its failing cell.
"""
from __future__ import annotations

import concurrent.futures as futures
import contextlib
import sys
import threading
from pathlib import Path
from typing import Dict, List, Optional, Sequence

from kdlab.engine.store import repo_root
from kdlab.errors import KdlabError, NotebookError, UnknownNameError


def notebook_for(paper: str) -> Path:
    """``notebooks/reproduce_<paper>.ipynb``; an error listing the papers that have one."""
    folder = repo_root() / 'notebooks'
    path = folder / f'reproduce_{paper}.ipynb'
    if not path.is_file():
        have = sorted(p.stem[len('reproduce_'):] for p in folder.glob('reproduce_*.ipynb'))
        raise UnknownNameError('paper with a reproduction notebook', paper, have,
                               'a paper with reported tables gets one from tools/make_reproduce_notebooks.py')
    return path


def run_notebooks(paper: str, tables: Optional[Sequence[str]] = None, *, scale: str = 'mini', jobs: int = 1,
                  out: Optional[Path] = None, progress: bool = True, **params) -> List[Path]:
    """Execute the paper's notebook for ``tables`` (one notebook for all with ``jobs=1``, one per table
    otherwise, ``jobs`` at a time). ``params``: the notebook's other parameters (rows, seeds, data_root,
    work_dir, results_dir, export_dir, device, gpus, workers, resume, train, formats). Returns the executed copies;
    raises :class:`NotebookError` (naming the cell) for the first that fails, after the others finish."""
    from kdlab import notebooks, papers
    from kdlab.engine.report import results_dir
    source = notebook_for(paper)
    known = papers.list_tables(paper)
    tables = list(tables or known)
    for t in tables:
        if t not in known:
            raise UnknownNameError(f'table of {paper!r}', t, known, f'run `kdlab papers {paper}` to list them')
    out = Path(out) if out is not None else results_dir(paper)
    if jobs <= 1:
        groups = {'': tables}
    else:
        groups = {f'_{t}': [t] for t in tables}
    from kdlab.zoo import scale_label
    jobs_of: Dict[str, Path] = {s: out / f'reproduce_{paper}_{scale_label(scale)}{s}.ipynb' for s in groups}

    def one(suffix: str) -> Path:
        return notebooks.execute(source, {**params, 'paper_id': paper, 'tables': groups[suffix], 'scale': scale},
                                 jobs_of[suffix], cwd=out, progress=False)

    with reproduce_lock(out, paper, scale):
        return _run_groups(paper, tables, scale, params, groups, one, jobs, progress)


@contextlib.contextmanager
def reproduce_lock(out: Path, paper: str, scale: str):
    """Hold the paper's reproduction at ``scale`` in ``out`` for this process, or raise naming the process that
    holds it: two ``kdlab reproduce`` of one paper would write the same executed notebook and exports. (Runs
    themselves are safe to share: the store trains a run once, under its own lock.) An advisory file lock,
    released when the process ends, so a killed reproduction never leaves it held."""
    import fcntl
    import os
    out.mkdir(parents=True, exist_ok=True)
    path = out / f'.reproduce_{scale}.lock'
    with open(path, 'a+') as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            f.seek(0)
            holder = f.read().strip() or 'another process'
            raise KdlabError(f'another kdlab reproduce of {paper} at {scale} scale is running ({holder}) and '
                             f'writing {out}', 'wait for it to finish (its runs are stored as they finish; '
                             'running again afterwards reuses them), or stop it; to reproduce other tables at '
                             'the same time, run one command with -j N') from None
        f.seek(0)
        f.truncate()
        f.write(f'pid {os.getpid()}\n')
        f.flush()
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def _run_groups(paper, tables, scale, params, groups, one, jobs, progress) -> List[Path]:
    errors, done = [], []
    stop = threading.Event()
    watcher = threading.Thread(target=_watch_runs, args=(paper, tables, scale, params, stop), daemon=True)
    if progress:
        watcher.start()
    try:
        with futures.ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:   # each notebook runs in its own kernel
            for fut in futures.as_completed([pool.submit(one, s) for s in groups]):
                try:
                    done.append(fut.result())
                except NotebookError as err:
                    errors.append(err)
    finally:
        stop.set()
        if watcher.is_alive():
            watcher.join(timeout=30)
    if errors:
        raise errors[0]
    return sorted(done)


def _watch_runs(paper: str, tables: List[str], scale: str, params: dict, stop: threading.Event,
                interval: float = 5.0) -> None:
    """A progress bar over the runs the notebooks will train, read from the run store while they work."""
    from kdlab.engine.planner import runs_bar
    from kdlab.engine.reproduce import reproduction
    from kdlab.engine.store import RunStore
    try:
        job = reproduction(paper, tables, scale, rows=params.get('rows'), seeds=params.get('seeds') or [0],
                           data_root=params.get('data_root'), teacher_ckpts=params.get('teacher_ckpts'),
                           teacher_input=params.get('teacher_input', 'student'),
                           store=RunStore(params.get('results_dir'), params.get('work_dir')))
    except KdlabError:
        return                 # the notebook fails on the same input and says so
    from kdlab.engine.store import checkpoint_present
    keys = [r.key for r in job.pending()]
    rebuild = [r.key for r in job.to_rebuild()]        # stored, but their checkpoint is trained again first
    bar = runs_bar(len(keys) + len(rebuild), desc=f'{paper} {" ".join(tables)} ({scale}): runs')
    runs = job.runs()
    while True:
        stopped = stop.wait(interval)
        unfinished = ([k for k in keys if job.store.load(k) is None]
                      + [k for k in rebuild if not checkpoint_present(job.store.load(k) or {})])
        bar.n = len(keys) + len(rebuild) - len(unfinished)
        bar.set_postfix_str(training_now(job.store, runs, unfinished), refresh=False)
        bar.refresh()
        if stopped:
            break
    bar.close()


def training_now(store, runs: Dict[str, object], keys: Sequence[str], *, now: Optional[float] = None,
                 idle_s: float = 900.0) -> str:
    """What is training among the unfinished runs ``keys`` (those whose log was written in the last ``idle_s``
    seconds): ``'<run name>: epoch 8/36 (20/60), eta 3:15:50'``, several joined by ``'; '``, '' when none is."""
    import time
    from kdlab.engine.runner import training_progress
    now = time.time() if now is None else now
    parts = []
    for key in keys:
        state = training_progress(store.work_dir(key))
        if state is None or now - state['updated'] > idle_s:
            continue
        run = runs.get(key)
        total = _max_epochs(run.cfg) if run is not None else None
        name = run.name if run is not None else key
        parts.append(f"{name}: epoch {state['epoch']}{f'/{total}' if total else ''} "
                     f"({state['iter']}/{state['iters']}), eta {state['eta']}")
    return '; '.join(parts)


def _max_epochs(cfg) -> Optional[int]:
    try:
        return int(cfg['train_cfg']['max_epochs'])
    except (KeyError, TypeError, ValueError):
        return None


def parse_teacher_ckpts(items: Optional[Sequence[str]]) -> Dict[str, str]:
    """``['retinanet_x101=https://...pth', ...]`` -> ``{'retinanet_x101': 'https://...pth'}``."""
    out = {}
    for item in items or ():
        name, sep, ckpt = item.partition('=')
        if not sep or not name or not ckpt:
            raise KdlabError(f'--teacher-ckpt {item!r} is not NAME=PATH_OR_URL',
                             'e.g. --teacher-ckpt retinanet_x101=checkpoints/retinanet_x101_2x.pth')
        out[name] = ckpt
    return out


def released_lines(runs) -> List[str]:
    """What a plan's released teachers are and where they come from (the local mirror or a download), and the
    teachers no zoo provides (trained)."""
    from kdlab.zoo.released import checkpoint_dir, local_or_url
    lines, fetch = [], []
    for run in runs:
        rel = run.cfg.get('kdlab_released')
        if rel:
            where = local_or_url(rel['url'])
            there = where != rel['url']
            lines.append(f"teacher {run.name.split(' [')[0]}: released, COCO box AP {rel['box_AP']} ({rel['metafile']}), "
                         + (f'from {where}' if there else f"to fetch: {rel['url']}"))
            if not there:
                fetch.append(rel['url'])
        elif run.role == 'teacher' and 'no released checkpoint' in run.name:
            lines.append(f'teacher {run.name}: no zoo provides it; it is trained')
    if fetch:
        mirror = checkpoint_dir()
        lines.append(f'{len(fetch)} checkpoint(s) to download before the teachers are evaluated'
                     + (f' (not in {mirror})' if mirror else '') + ': with no internet, put these files in a '
                     'folder and pass --checkpoint-dir DIR (or set KDLAB_CHECKPOINTS)')
    return lines


def gpu_hours_table(runs):
    """Each run's estimated V100-hours at full scale (kdlab.zoo.throughput) and the total, as a DataFrame."""
    import pandas as pd
    from kdlab.engine.planner import full_schedule
    from kdlab.zoo.throughput import gpu_hours
    runs = list(runs)
    by_key = {r.key: r for r in runs}
    rows = []
    for r in runs:
        if not r.detector:
            continue
        schedule = full_schedule(r.detector, r.schedule)
        if r.cfg.get('kdlab_provided'):
            hours, what = gpu_hours(r.detector, schedule, evaluate_only=True), 'evaluate'
        else:
            teachers = [(by_key[k].detector, full_schedule(by_key[k].detector, by_key[k].schedule))
                        for k in r.needs if k in by_key and by_key[k].role == 'teacher']
            hours, what = gpu_hours(r.detector, schedule, teachers), 'train'
        rows.append(dict(run=r.name.split(' [released')[0], does=what, gpu_hours=round(hours, 1)))
    frame = pd.DataFrame(rows, columns=['run', 'does', 'gpu_hours'])
    frame.attrs['total'] = round(float(frame['gpu_hours'].sum()), 1) if len(frame) else 0.0
    return frame


def main(args) -> int:
    import os
    from kdlab.engine.reproduce import reproduction
    from kdlab.engine.store import RunStore
    if args.checkpoint_dir:      # read by the runs (kdlab.zoo.released.local_or_url), in this process and the kernels
        from kdlab.zoo.released import CHECKPOINTS_ENV
        os.environ[CHECKPOINTS_ENV] = str(Path(args.checkpoint_dir).expanduser().resolve())
    if args.plan:
        job = reproduction(args.paper, args.tables, args.scale, rows=args.rows, seeds=args.seeds,
                           data_root=args.data_root, store=RunStore(args.results, args.work_dir),
                           teacher_ckpts=parse_teacher_ckpts(args.teacher_ckpt), teacher_input=args.teacher_input)
        summary = job.summary()
        print(summary.to_string(index=False))
        rebuild = job.to_rebuild()
        print(f'\n{summary.attrs["unique_runs"]} unique runs for these rows (seeds {job.seeds}); '
              f'{len(job.pending())} not stored yet'
              + (f'; {len(rebuild)} stored without their checkpoint on this machine, trained again first: '
                 + ', '.join(r.name for r in rebuild) if rebuild else ''))
        if args.scale != 'full':        # on this store's CPU timings; the full scale's estimate is below
            note = job.estimate_note()
            print(f'to train: {note}' if note else 'nothing to train')
        for line in released_lines(job.runs().values()):
            print(line)
        if args.scale == 'full':
            from kdlab.zoo.released import backbone_weight_lines
            for line in backbone_weight_lines(job.runs().values()):
                print(line)
        if args.scale == 'full':
            hours = gpu_hours_table(job.runs().values())
            print('\nestimated V100-hours per run (kdlab.zoo.throughput: the model zoo\'s RetinaNet-R50 anchor, '
                  '0.205 s per iteration of 2 images, scaled by each config\'s inference time):')
            print(hours.to_string(index=False))
            print(f"total: {hours.attrs['total']} V100-hours ({hours.attrs['total'] / 8:.1f} h on 8 GPUs)")
        return 0
    if args.slurm is not None:
        return submit_to_slurm(args)
    params = dict(rows=args.rows, seeds=args.seeds, data_root=args.data_root, work_dir=args.work_dir,
                  teacher_ckpts=parse_teacher_ckpts(args.teacher_ckpt), teacher_input=args.teacher_input,
                  results_dir=args.results,
                  export_dir=args.export_dir, device=args.device, gpus=args.gpus, workers=args.workers,
                  resume=not args.no_resume, train=not args.no_train)
    try:
        paths = run_notebooks(args.paper, args.tables, scale=args.scale, jobs=args.jobs, out=args.out, **params)
    except NotebookError as err:
        print(f'kdlab: error: {err}', file=sys.stderr)
        return 1
    for p in paths:
        print('executed notebook:', p)
    from kdlab.engine.conclusions import summary
    from kdlab.zoo import scale_label
    checks = summary(scale_label(args.scale), Path(args.export_dir).parent if args.export_dir else None)
    whole = checks[checks['block'].str.startswith('all') & (checks['paper'] == args.paper)]
    for rec in whole.itertuples(index=False):
        print(f'conclusion check, {rec.paper} {rec.table}: {rec.verdict}')
    return 0


def submit_to_slurm(args) -> int:
    """``kdlab reproduce ... --slurm [OPTIONS]``: the plan's runs as Slurm jobs (:mod:`kdlab.engine.slurm`); the
    comparison is made afterwards by the same command without ``--slurm`` (it trains nothing that is stored)."""
    import shlex
    from kdlab.engine.reproduce import reproduction
    from kdlab.engine.slurm import submit
    from kdlab.engine.store import RunStore
    store = RunStore(args.results, args.work_dir)
    job = reproduction(args.paper, args.tables, args.scale, rows=args.rows, seeds=args.seeds,
                       data_root=args.data_root, store=store,
                       teacher_ckpts=parse_teacher_ckpts(args.teacher_ckpt), teacher_input=args.teacher_input)
    # a job's device: what --device says; 'auto' is the GPU at full scale, the CPU at mini and smoke scale (the
    # submitting login node's own device says nothing about the nodes')
    device = args.device if args.device != 'auto' else ('cuda' if args.scale == 'full' else 'cpu')
    lines = submit(job.plan(), store, gpus=args.gpus, device=device, sbatch_options=shlex.split(args.slurm))
    actions = [line['action'] for line in lines]
    print(f'{actions.count("submitted")} job(s) submitted, {actions.count("queued")} already queued or running, '
          f'{actions.count("stored")} run(s) stored; `kdlab status` follows them; once they are stored, '
          f'`kdlab reproduce {args.paper}` (same options, no --slurm) makes the tables')
    return 0


def register(sub) -> None:
    p = sub.add_parser('reproduce', help="re-run a paper's tables beside the reported ones (papermill)")
    p.add_argument('paper', help='pkd, dcsf_kd, dsamkd, icd, dfmsd; the baselines mgd, fgd, crosskd, amd')
    p.add_argument('--tables', nargs='+', default=None, help='table ids (default: all of the paper)')
    p.add_argument('--rows', nargs='+', default=None, help='row ids (default: all)')
    p.add_argument('--scale', default='mini', choices=('smoke', 'mini', 'full'))
    p.add_argument('--seeds', nargs='+', type=int, default=[0])
    p.add_argument('-j', '--jobs', type=int, default=1, help='tables executed in parallel (one notebook each)')
    p.add_argument('--data-root', default=None, help='COCO root at full scale (default: the synthetic data)')
    p.add_argument('--work-dir', default=None, help='checkpoints (default: ~/.cache/kdlab/work)')
    p.add_argument('--results', default=None, help='run store (default: results/runs)')
    p.add_argument('--export-dir', default=None, help='tables and figures (default: results/<paper>)')
    p.add_argument('--out', default=None, help='executed notebooks (default: results/<paper>)')
    p.add_argument('--teacher-ckpt', action='append', default=None, metavar='NAME=PATH_OR_URL',
                   help='a released teacher (zoo name) to evaluate and distil from instead of training it')
    p.add_argument('--checkpoint-dir', default=None, metavar='DIR',
                   help='a local mirror of released checkpoints, by file name (default: $KDLAB_CHECKPOINTS); at full '
                        "scale the teachers are the model zoo's released ones")
    p.add_argument('--teacher-input', default='student', choices=('student', 'own'),
                   help="what the teacher is fed: the student's preprocessed batch (the released code's, default) "
                        'or its own preprocessing')
    p.add_argument('--device', default='auto', choices=('auto', 'cpu', 'cuda'))
    p.add_argument('--gpus', type=int, default=1, help='processes per run (torchrun) when > 1')
    p.add_argument('-w', '--workers', type=int, default=1,
                   help='runs trained at once on the CPU (each in its own process, cores / N threads)')
    p.add_argument('--no-resume', action='store_true', help='restart interrupted runs instead of resuming')
    p.add_argument('--no-train', action='store_true', help='only show what is stored (the rest: pending)')
    p.add_argument('--plan', action='store_true', help='print the runs the rows need; train nothing')
    p.add_argument('--slurm', nargs='?', const='', default=None, metavar='"SBATCH OPTIONS"',
                   help='submit the runs not stored as Slurm jobs (each waits on the runs it needs; --gpus tasks '
                        "each) instead of training here; the quoted options go to every sbatch, e.g. "
                        '--slurm "--partition=gpu --time=2-00:00:00"')
    p.set_defaults(func=main)

