"""``kdlab`` command line: one sub-command per module.

Each module listed in :data:`COMMANDS` exposes ``register(subparsers)``, which adds its sub-parser and sets
``func`` (called with the parsed ``argparse.Namespace``; its return value is the exit code). Adding a
command is adding a module and one line here.
"""
from __future__ import annotations

import argparse
import importlib
import sys
from typing import List, Optional

COMMANDS = (
    'kdlab.doctor',        # kdlab doctor       — versions, compiled ops, device, fixes
    'kdlab.data.cli',      # kdlab data         — generate / inspect the embedded synthetic dataset
    'kdlab.zoo.cli',       # kdlab zoo          — the detector zoo and its resolved configs
    'kdlab.zoo.pretrain',  # kdlab pretrain     — the mini backbones' pretraining (mini v2's ImageNet weights)
    'kdlab.methods.loss_scale',  # kdlab loss-scale — mini v2's loss-scale rule, measured per method and pair
    'kdlab.papers.cli',    # kdlab papers       — the registry of reported tables
    'kdlab.demo',          # kdlab demo         — teacher / baseline / PKD end to end (the main job)
    'kdlab.engine.cli',    # kdlab train, commit-weights — one config through kdlab; a run's weights committed
    'kdlab.engine.batch',  # kdlab reproduce    — a paper's tables re-run beside the reported ones (papermill)
    'kdlab.engine.leaderboard',  # kdlab leaderboard — every method on the same pairs, seeds as mean and spread
    'kdlab.engine.park',   # kdlab park         — unfinished runs' checkpoints into the store, resumed elsewhere
    'kdlab.engine.resume_check',  # kdlab resume-check — kill a run, resume it, compare with an uninterrupted one
    'kdlab.engine.calibration',   # kdlab calibrate   — the mini baselines' learning curves (protocol calibration)
    'kdlab.engine.slurm',  # kdlab status       — the runs submitted to Slurm: queued, running, finished, failed
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog='kdlab', description='Knowledge-distillation reproducibility workbench for object detection.')
    sub = parser.add_subparsers(dest='command', metavar='COMMAND')
    for name in COMMANDS:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as err:  # a command whose module is not written yet
            if err.name == name:
                continue
            raise
        module.register(sub)
    return parser


def _terminated(signum, frame):
    raise KeyboardInterrupt('terminated')


def main(argv: Optional[List[str]] = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, 'func', None):
        parser.print_help()
        return 2
    import signal
    import threading
    previous = None
    if threading.current_thread() is threading.main_thread():
        # `kill PID` (SIGTERM; a batch system's time limit) stops a command as Ctrl-C does: the trainings it
        # started are stopped too (kdlab.engine.launch.stop_children), each resumable from its last checkpoint.
        # A background job started by a shell script ignores SIGINT, so SIGTERM is the signal that reaches it.
        previous = signal.signal(signal.SIGTERM, _terminated)
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt as err:
        terminated = str(err) == 'terminated'
        print('\nterminated' if terminated else '\ninterrupted', file=sys.stderr)
        return 143 if terminated else 130
    except BrokenPipeError:  # `kdlab papers | head`
        sys.stderr.close()
        return 0
    except Exception as err:
        from kdlab.errors import KdlabError
        if isinstance(err, KdlabError):  # the researcher's mistake: the message, not a traceback
            print(f'kdlab: error: {err}', file=sys.stderr)
            return 2
        raise
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


if __name__ == '__main__':
    sys.exit(main())
