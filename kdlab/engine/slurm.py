"""A plan's runs as Slurm jobs (``kdlab reproduce ... --slurm [SBATCH OPTIONS]``) and their state
(``kdlab status``).

A lab reproducing a table on COCO runs on a cluster, behind a scheduler. :func:`submit` turns every run of a
plan that the store does not hold into one batch job:

* named ``kdlab-<key>``, its output in the run's work directory (``slurm-<job id>.out``);
* waiting on the jobs of the runs it needs (``--dependency=afterok:...``: teachers before students, a SAL stage
  before the next; ``--kill-on-invalid-dep=yes``: a job whose input failed leaves the queue instead of waiting
  forever);
* one task per GPU under ``srun``, each task one mmengine process (mmengine's ``slurm`` launcher: it reads
  ``SLURM_PROCID`` / ``SLURM_NTASKS`` / the node list; one task: no process group at all), running
  ``python -m kdlab.engine.launch`` on the run's config. The ``<run:KEY>`` references to the checkpoints it needs
  are resolved when the job starts, after the jobs it waits on have stored them.

The run store (``results/runs``) and the work root (checkpoints) must be on a file system every node sees, as
they are on a cluster's shared home or project space; the jobs write the same records a local run writes.

Submitting again skips the runs that are stored and those whose job is still queued or running (the ledger,
``<work root>/slurm/jobs.json``, remembers each run's last job), and makes the new jobs wait on those.
:func:`states` reads the ledger, the store, ``squeue`` and ``scontrol``: each run *queued*, *running*,
*finished* (its record is stored), or *failed* / *cancelled* / *diverged* (the job ended without a record).
"""
from __future__ import annotations

import datetime
import json
import shlex
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Dict, List, Optional, Sequence

from kdlab.engine.store import RunStore, atomic_write_text, checkpoint_present
from kdlab.errors import KdlabError

#: Slurm's job states that mean the job has not ended (``squeue``'s long names).
LIVE = {'PENDING': 'queued', 'CONFIGURING': 'queued', 'REQUEUED': 'queued', 'RESV_DEL_HOLD': 'queued',
        'REQUEUE_HOLD': 'queued', 'REQUEUE_FED': 'queued', 'SUSPENDED': 'queued', 'RUNNING': 'running',
        'COMPLETING': 'running', 'STAGE_OUT': 'running', 'SIGNALING': 'running', 'RESIZING': 'running'}
#: Ended without a stored record: Slurm's state -> kdlab's word.
ENDED = {'COMPLETED': 'failed', 'FAILED': 'failed', 'NODE_FAIL': 'failed', 'OUT_OF_MEMORY': 'failed',
         'TIMEOUT': 'failed', 'BOOT_FAIL': 'failed', 'DEADLINE': 'failed', 'PREEMPTED': 'failed',
         'CANCELLED': 'cancelled'}


class SlurmError(KdlabError):
    """Slurm refused or could not be reached."""


def job_name(key: str) -> str:
    return f'kdlab-{key}'


def _ledger_path(store: RunStore) -> Path:
    return store.work_root / 'slurm' / 'jobs.json'


def ledger(store: RunStore) -> Dict[str, dict]:
    """Every run submitted from this work root: key -> its last job (id, name, role, submitted, script)."""
    path = _ledger_path(store)
    return json.loads(path.read_text()) if path.is_file() else {}


def _command(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        raise SlurmError(f'`{name}` is not on PATH: this machine is not a Slurm submit host',
                         'run kdlab on a login node of the cluster (or install Slurm: apt-get install slurm-wlm)')
    return path


def _slurm(*args: str) -> str:
    proc = subprocess.run(list(args), capture_output=True, text=True)
    if proc.returncode != 0:
        raise SlurmError(f'{" ".join(shlex.quote(a) for a in args)} failed (exit {proc.returncode}): '
                         f'{proc.stderr.strip() or proc.stdout.strip()}',
                         'check the options given to --slurm and that slurmctld answers (sinfo)')
    return proc.stdout


def queue_states(job_ids: Sequence[str]) -> Dict[str, str]:
    """Slurm's state of each job id it still knows: ``squeue`` for queued and running jobs, ``scontrol show
    job`` for those that ended recently (kept ``MinJobAge`` seconds); ids it no longer knows are absent."""
    ids = [str(j) for j in job_ids if j]
    if not ids:
        return {}
    out = {}
    squeue = subprocess.run([_command('squeue'), '-h', '-o', '%i %T', '-j', ','.join(ids)],
                            capture_output=True, text=True)
    for line in squeue.stdout.splitlines():     # squeue fails as a whole when one id is unknown: ask scontrol
        parts = line.split()
        if len(parts) == 2:
            out[parts[0]] = parts[1]
    for job in ids:
        if job in out:
            continue
        show = subprocess.run([_command('scontrol'), 'show', 'job', '-o', job], capture_output=True, text=True)
        for field in show.stdout.split():
            if field.startswith('JobState='):
                out[job] = field.split('=', 1)[1]
    return out


def job_script(run, store: RunStore, *, config: Path, gpus: int, device: str, depends: Sequence[str],
               threads: Optional[int] = None) -> str:
    """The batch script of one run (see the module's docstring)."""
    work = store.work_dir(run.key)
    lines = ['#!/bin/bash',
             f'#SBATCH --job-name={job_name(run.key)}',
             f'#SBATCH --output={work}/slurm-%j.out',
             f'#SBATCH --ntasks={gpus}']
    if device != 'cpu':
        lines.append(f'#SBATCH --gres=gpu:{gpus}')
    if depends:
        lines += [f'#SBATCH --dependency=afterok:{":".join(depends)}', '#SBATCH --kill-on-invalid-dep=yes']
    extra = json.dumps({'role': run.role, 'needs': list(run.needs)})
    cmd = [sys.executable, '-m', 'kdlab.engine.launch', str(config), '--name', run.name, '--key', run.key,
           '--results', str(store.root), '--work', str(store.work_root), '--extra', extra, '--quiet',
           '--launcher', 'slurm' if gpus > 1 else 'none', '--resolve']
    env = [f'export OMP_NUM_THREADS={threads or "${SLURM_CPUS_PER_TASK:-1}"}']
    if device == 'cpu':
        env.append('export CUDA_VISIBLE_DEVICES=')
    lines += ['set -euo pipefail', *env, 'srun ' + ' '.join(shlex.quote(c) for c in cmd), '']
    return '\n'.join(lines)


def submit(plan, store: Optional[RunStore] = None, *, gpus: int = 1, device: str = 'cuda',
           sbatch_options: Sequence[str] = (), threads: Optional[int] = None, progress: bool = True) -> List[dict]:
    """Submit every run of ``plan`` the store does not hold as a Slurm job; returns one line per run:
    ``{key, name, role, job, action}`` with ``action`` one of ``stored`` (nothing submitted), ``queued`` (its job
    from an earlier submission is still queued or running: reused) or ``submitted``."""
    store = store or RunStore()
    if gpus < 1:
        raise KdlabError(f'gpus={gpus}: a run needs at least one task', 'pass --gpus 1 or more')
    sbatch = _command('sbatch')
    book = ledger(store)
    live = {job: state for job, state in queue_states([e['job'] for e in book.values()]).items() if state in LIVE}
    jobs: Dict[str, str] = {}           # key -> the job a dependant waits on
    out = []
    for run in plan.ordered():
        entry = dict(key=run.key, name=run.name, role=run.role, job=None)
        if store.load(run.key) is not None:
            out.append(dict(entry, action='stored'))
            continue
        old = book.get(run.key)
        if old and old['job'] in live:
            jobs[run.key] = old['job']
            out.append(dict(entry, job=old['job'], action='queued'))
            continue
        depends = []
        for need in run.needs:
            rec = store.load(need)
            if rec is not None:
                if not checkpoint_present(rec):
                    raise KdlabError(f'{run.name} needs the checkpoint of stored run {need} '
                                     f'({rec.get("name")}), which is not at {rec.get("checkpoint")}',
                                     'the work root must be the one the run was trained into, on a file system '
                                     'the nodes share (--work-dir); or train that run again here first')
            elif need in jobs:
                depends.append(jobs[need])
            else:
                raise KdlabError(f'{run.name} needs run {need}, which is neither stored nor planned here',
                                 'submit the whole plan (no row filter that drops its teacher)')
        work = store.work_dir(run.key)
        work.mkdir(parents=True, exist_ok=True)
        config = work / 'slurm_config.py'
        run.cfg.dump(str(config))                 # <run:KEY> references resolved by the job when it starts
        script = work / 'slurm_job.sh'
        atomic_write_text(script, job_script(run, store, config=config, gpus=gpus, device=device,
                                             depends=depends, threads=threads))
        job = _slurm(sbatch, '--parsable', *sbatch_options, str(script)).strip().split(';')[0]
        jobs[run.key] = job
        book[run.key] = dict(job=job, name=run.name, role=run.role, script=str(script),
                             submitted=datetime.datetime.now().isoformat(timespec='seconds'))
        atomic_write_text(_ledger_path(store), json.dumps(book, indent=2, sort_keys=True) + '\n')
        out.append(dict(entry, job=job, action='submitted'))
        if progress:
            wait = f', after job {", ".join(depends)}' if depends else ''
            print(f'[{run.role}] {run.name}: job {job}{wait}', flush=True)
    return out


def states(store: Optional[RunStore] = None, keys: Optional[Sequence[str]] = None):
    """One row per submitted run (``keys``: only those): key, name, role, job, state, mAP, and where its job's
    output is. State: ``finished`` (record stored), ``queued``, ``running``, ``diverged`` (the run's record says
    so), ``failed`` or ``cancelled`` (the job ended without a record; Slurm's word in ``slurm_state``), or
    ``unknown`` where ``squeue`` is not on PATH (not a submit host)."""
    import pandas as pd
    store = store or RunStore()
    book = ledger(store)
    if keys is not None:
        book = {k: v for k, v in book.items() if k in keys}
    reachable = bool(shutil.which('squeue'))
    slurm = queue_states([e['job'] for e in book.values()]) if book and reachable else {}
    rows = []
    for key, entry in book.items():
        rec, state, mAP = store.load(key), None, None
        sstate = slurm.get(entry['job'])
        if rec is not None:
            state, mAP = 'finished', (rec.get('metrics') or {}).get('mAP')
        elif sstate in LIVE:
            state = LIVE[sstate]
        else:
            path = store.run_dir(key) / 'run.json'
            status = json.loads(path.read_text()).get('status') if path.is_file() else None
            if status == 'diverged':
                state = 'diverged'
            elif not reachable:          # not a submit host: Slurm cannot say whether the job still runs
                state = 'unknown'
            else:
                state = ENDED.get(sstate or '', 'failed')
        rows.append(dict(key=key, name=entry['name'], role=entry['role'], job=entry['job'], state=state,
                         slurm_state=sstate or '', mAP=mAP,
                         output=str(store.work_dir(key) / f'slurm-{entry["job"]}.out')))
    return pd.DataFrame(rows, columns=['key', 'name', 'role', 'job', 'state', 'slurm_state', 'mAP', 'output'])


def main(args) -> int:
    store = RunStore(args.results, args.work_dir)
    frame = states(store)
    if frame.empty:
        print(f'no run submitted to Slurm from {store.work_root} (kdlab reproduce ... --slurm)')
        return 0
    print(frame.drop(columns=['output']).to_string(index=False))
    counts = frame['state'].value_counts()
    print('\n' + ', '.join(f'{n} {s}' for s, n in counts.items()))
    bad = frame[frame['state'].isin(['failed', 'cancelled', 'diverged'])]
    for row in bad.itertuples(index=False):
        print(f'{row.name}: {row.state}; its output: {row.output}')
    if not bad.empty:
        print('submitting again (the same kdlab reproduce ... --slurm) resubmits them and skips what is stored or '
              'queued')
    return 0


def register(sub) -> None:
    p = sub.add_parser('status', help='the runs submitted to Slurm: queued, running, finished or failed')
    p.add_argument('--results', default=None, help='run store (default: results/runs)')
    p.add_argument('--work-dir', default=None, help='work root the runs were submitted from (default: '
                   '~/.cache/kdlab/work)')
    p.set_defaults(func=main)
