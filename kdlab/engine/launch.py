"""One run on several processes: torchrun around :func:`kdlab.engine.runner.execute`.

:func:`launch` writes the resolved config next to the run's checkpoints and starts
``python -m torch.distributed.run --nproc_per_node N -m kdlab.engine.launch CONFIG ...``: every process builds
mmengine's Runner with the ``pytorch`` launcher (NCCL on GPUs, gloo on CPU), trains its share of each batch
and rank 0 stores the result. The same entry point runs one process on the CPU of a machine with a GPU
(``device='cpu'``: the GPU is hidden from the child). On a cluster, use mmengine's slurm launcher directly:
``srun -n 8 python -m kdlab.cli train CONFIG --launcher slurm``.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
from typing import Optional

from kdlab.engine.store import checkpoint_present
from kdlab.errors import KdlabError


def launch(cfg, *, name: str, store, key: str, extra: Optional[dict] = None, gpus: int = 1, device: str = 'auto',
           resume: bool = True, progress: bool = True, threads: Optional[int] = None,
           console: Optional[str] = None, overwrite: bool = False) -> dict:
    """Execute ``cfg`` (references resolved) on ``gpus`` processes; return the stored record. ``threads``:
    CPU threads per process (default: ``$OMP_NUM_THREADS``, else 1). ``console``: a file name in the run's work
    dir that takes the processes' console output (appended), instead of this process's stdout. ``overwrite``:
    train a stored run again (its checkpoint is not on this machine) and replace its record."""
    with store.lock(key):
        rec = store.load(key)
        if rec is not None and (not overwrite or checkpoint_present(rec)):    # another process finished it
            return rec
        work = store.work_dir(key)
        if not resume and work.is_dir():
            shutil.rmtree(work)                    # start again (before any child could resume from it)
        if resume and not overwrite:               # parked on another machine (kdlab park): resume from there
            from kdlab.engine.park import unpark
            unpark(store, key)
        return _launch(cfg, name=name, store=store, key=key, extra=extra, gpus=gpus, device=device,
                       progress=progress, work=work, port=_free_port(), threads=threads,
                       console=console, overwrite=overwrite)


def _free_port() -> int:
    with socket.socket() as s:                     # a free port for the rendezvous
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def _launch(cfg, *, name, store, key, extra, gpus, device, progress, work, port, threads, console,
            overwrite=False) -> dict:
    work.mkdir(parents=True, exist_ok=True)
    path = work / 'launch_config.py'
    cfg.dump(str(path))
    cmd = [sys.executable, '-m', 'torch.distributed.run', f'--nproc_per_node={gpus}', '--master_addr=127.0.0.1',
           f'--master_port={port}', '-m', 'kdlab.engine.launch', str(path), '--name', name, '--key', key,
           '--results', str(store.root), '--work', str(store.work_root), '--extra', json.dumps(extra or {})]
    if not progress:
        cmd.append('--quiet')
    if overwrite:
        cmd.append('--overwrite')
    env = dict(os.environ)
    if device == 'cpu':
        env['CUDA_VISIBLE_DEVICES'] = ''
    if threads:
        env['OMP_NUM_THREADS'] = env['MKL_NUM_THREADS'] = str(threads)
    env.setdefault('OMP_NUM_THREADS', '1')
    if console:
        with open(work / console, 'a') as out:
            returncode = _run_child(cmd, env, stdout=out, stderr=subprocess.STDOUT)
    else:
        returncode = _run_child(cmd, env)
    record = store.load(key)
    if returncode != 0 or record is None or (overwrite and not checkpoint_present(record)):
        raise KdlabError(f'run {key} ({name}) failed on {gpus} process(es) (exit {returncode})',
                         f'see the log under {work}; rerun to resume from its last checkpoint')
    return record


#: The torchrun processes this process has started and that have not ended (several with ``workers``).
_CHILDREN: set = set()


def _run_child(cmd, env, **streams) -> int:
    """Run torchrun to its end; stopped (its workers with it) if this thread is interrupted."""
    proc = subprocess.Popen(cmd, env=env, **streams)
    _CHILDREN.add(proc)
    try:
        return proc.wait()
    except BaseException:
        _stop(proc)
        raise
    finally:
        _CHILDREN.discard(proc)


def stop_children(grace_s: float = 30.0) -> int:
    """Stop every training this process launched and wait for them to end; returns how many were running.
    SIGTERM first: torchrun passes it on to its workers, so none is left training unseen (a Jupyter interrupt
    reaches the kernel only). What they trained since their last checkpoint is lost; a rerun resumes there."""
    procs = [p for p in list(_CHILDREN) if p.poll() is None]
    for proc in procs:
        _stop(proc, grace_s)
    return len(procs)


def _stop(proc, grace_s: float = 30.0) -> None:
    if proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(grace_s)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def main(argv=None) -> int:
    """The per-process entry point under torchrun."""
    ap = argparse.ArgumentParser(prog='python -m kdlab.engine.launch')
    ap.add_argument('config')
    ap.add_argument('--name', required=True)
    ap.add_argument('--key', required=True)
    ap.add_argument('--results', required=True)
    ap.add_argument('--work', required=True)
    ap.add_argument('--extra', default='{}')
    ap.add_argument('--quiet', action='store_true')
    ap.add_argument('--overwrite', action='store_true', help='train a stored run again and replace its record')
    ap.add_argument('--launcher', default='pytorch', choices=('pytorch', 'slurm', 'none'),
                    help="how the processes were started: torchrun (pytorch), srun (slurm), one process (none)")
    ap.add_argument('--resolve', action='store_true',
                    help='the config still names the checkpoints it needs as <run:KEY> (a Slurm job, submitted '
                         'before they existed): resolve them from the store now, and record those inputs')
    args = ap.parse_args(argv)
    import kdlab  # noqa: F401  (compat fixes)
    from mmengine.config import Config
    from kdlab.engine.runner import execute
    from kdlab.engine.store import RunStore
    cfg = Config.fromfile(args.config)
    store = RunStore(args.results, args.work)
    extra = json.loads(args.extra)
    if args.resolve:
        from kdlab.engine.planner import resolve_refs
        cfg = resolve_refs(cfg, store)
        extra.setdefault('built_from', store.inputs(extra.get('needs') or ()))
    rank = int(os.environ.get('RANK', os.environ.get('SLURM_PROCID', '0')))
    execute(cfg, name=args.name, store=store, key=args.key, extra=extra, progress=not args.quiet and rank == 0,
            launcher=None if args.launcher == 'none' else args.launcher, overwrite=args.overwrite)
    return 0


def split_optimizers(cfg) -> bool:
    """Whether ``cfg`` trains with several optimizers (mmengine's ``OptimWrapperDict``: an ``optim_wrapper`` of
    named wrappers and no ``optimizer`` of its own; ICD's student and decoder, ``kdlab.methods.icd``)."""
    wrapper = cfg.get('optim_wrapper') or {}
    return 'optimizer' not in wrapper and bool(wrapper.get('constructor'))


def process_launcher(cfg, launcher: str, world_size: Optional[int] = None) -> Optional[str]:
    """The launcher this process's Runner is built with (``runner._execute``; ``execute`` still knows the process
    was launched, so it takes no lock its parent holds). A run alone on its process group (``world_size`` 1:
    ``kdlab leaderboard -w N`` trains each run in a torchrun process of its own) is built without a launcher, so
    without DDP: every ``-w`` builds a run the same way, in-process (``-w 1``) or not. Measured on a smoke
    RetinaNet-R50 <- X101 PKD plan (teacher, baseline, distilled student), trained in-process and in torchrun
    processes with DDP at world size 1: the epoch's weights were bitwise identical, so dropping DDP there
    changes no result. A run with split optimizers cannot have DDP at all: mmengine's DDP wrapper steps one
    optimizer (``MMDistributedDataParallel.train_step`` asks ``optim_context`` of an ``OptimWrapperDict``,
    which refuses), so on several processes it is refused, naming the fix."""
    if launcher == 'none':
        return None
    world = world_size if world_size is not None else int(os.environ.get('WORLD_SIZE', os.environ.get(
        'SLURM_NTASKS', '1')))
    if world == 1:
        return None
    if split_optimizers(cfg):
        raise KdlabError(f'this run trains with split optimizers ({cfg.optim_wrapper.get("constructor")}), '
                         f'which mmengine\'s DDP wrapper cannot step on {world} processes',
                         'train it on one process (--gpus 1)')
    return launcher


if __name__ == '__main__':
    sys.exit(main())
