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

from kdlab.errors import KdlabError


def launch(cfg, *, name: str, store, key: str, extra: Optional[dict] = None, gpus: int = 1, device: str = 'auto',
           resume: bool = True, progress: bool = True, threads: Optional[int] = None,
           console: Optional[str] = None) -> dict:
    """Execute ``cfg`` (references resolved) on ``gpus`` processes; return the stored record. ``threads``:
    CPU threads per process (default: ``$OMP_NUM_THREADS``, else 1). ``console``: a file name in the run's work
    dir that takes the processes' console output (appended), instead of this process's stdout."""
    with store.lock(key):
        if store.load(key) is not None:            # another process finished it meanwhile
            return store.load(key)
        work = store.work_dir(key)
        if not resume and work.is_dir():
            shutil.rmtree(work)                    # start again (before any child could resume from it)
        return _launch(cfg, name=name, store=store, key=key, extra=extra, gpus=gpus, device=device,
                       progress=progress, work=work, port=_free_port(), threads=threads,
                       console=console)


def _free_port() -> int:
    with socket.socket() as s:                     # a free port for the rendezvous
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def _launch(cfg, *, name, store, key, extra, gpus, device, progress, work, port, threads, console) -> dict:
    work.mkdir(parents=True, exist_ok=True)
    path = work / 'launch_config.py'
    cfg.dump(str(path))
    cmd = [sys.executable, '-m', 'torch.distributed.run', f'--nproc_per_node={gpus}', '--master_addr=127.0.0.1',
           f'--master_port={port}', '-m', 'kdlab.engine.launch', str(path), '--name', name, '--key', key,
           '--results', str(store.root), '--work', str(store.work_root), '--extra', json.dumps(extra or {})]
    if not progress:
        cmd.append('--quiet')
    env = dict(os.environ)
    if device == 'cpu':
        env['CUDA_VISIBLE_DEVICES'] = ''
    if threads:
        env['OMP_NUM_THREADS'] = env['MKL_NUM_THREADS'] = str(threads)
    env.setdefault('OMP_NUM_THREADS', '1')
    if console:
        with open(work / console, 'a') as out:
            done = subprocess.run(cmd, env=env, stdout=out, stderr=subprocess.STDOUT)
    else:
        done = subprocess.run(cmd, env=env)
    record = store.load(key)
    if done.returncode != 0 or record is None:
        raise KdlabError(f'run {key} ({name}) failed on {gpus} process(es) (exit {done.returncode})',
                         f'see the log under {work}; rerun to resume from its last checkpoint')
    return record


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
    args = ap.parse_args(argv)
    import kdlab  # noqa: F401  (compat fixes)
    from mmengine.config import Config
    from kdlab.engine.runner import execute
    from kdlab.engine.store import RunStore
    cfg = Config.fromfile(args.config)
    rank = int(os.environ.get('RANK', '0'))
    execute(cfg, name=args.name, store=RunStore(args.results, args.work), key=args.key,
            extra=json.loads(args.extra), progress=not args.quiet and rank == 0,
            launcher='pytorch')
    return 0


if __name__ == '__main__':
    sys.exit(main())
