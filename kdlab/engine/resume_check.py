"""Kill a run mid-training, start it again, and compare it with an uninterrupted run of the same key.

The claim checked: "an interrupted run resumes from its last checkpoint, and the stored result is the one an
uninterrupted run gives". Two stores, one key (a detector at a scale, a seed, CPU deterministic settings):

* *killed*: trained in a child process that gets SIGKILL as soon as its ``last_checkpoint`` names epoch
  ``kill_after_epoch``; then trained again in a new process, which resumes from that checkpoint;
* *uninterrupted*: trained once, in a child process started beside the killed one (one core each).

The result compares the two stored records' COCO metrics and the final weights tensor by tensor.
The test suite runs it at smoke scale; ``kdlab resume-check --scale mini`` runs it at mini scale and writes
``results/resume_check/<detector>_<scale>.json``.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Optional

from kdlab.engine.store import RunStore, atomic_write_text, repo_root
from kdlab.errors import KdlabError

NAME = 'resume-check'


def resume_config(detector: str, scale: str, *, seed: int = 0, epochs: Optional[int] = None):
    """The zoo config of ``detector`` at ``scale`` with ``epochs`` epochs (default: its schedule) and
    deterministic CPU settings, so two runs of it give the same weights."""
    from kdlab.zoo import detector_config, mini_schedule
    cfg = detector_config(detector, scale, seed=seed)
    if epochs is not None:
        cfg.merge_from_dict(mini_schedule(epochs))
    cfg.randomness = dict(seed=seed, deterministic=True)
    return cfg


def _stores(root: Path):
    return (RunStore(root / 'killed' / 'results', root / 'killed' / 'work'),
            RunStore(root / 'uninterrupted' / 'results', root / 'uninterrupted' / 'work'))


def _child(detector, scale, seed, epochs, store: RunStore, log: Path) -> subprocess.Popen:
    env = dict(os.environ)
    env.setdefault('OMP_NUM_THREADS', '1')
    args = [sys.executable, '-m', 'kdlab.engine.resume_check', detector, scale, str(seed),
            str(epochs if epochs is not None else ''), str(store.root), str(store.work_root)]
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, 'wb') as out:
        return subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT, env=env)


def _wait(proc: subprocess.Popen, what: str, log: Path) -> None:
    if proc.wait() != 0:
        raise KdlabError(f'the {what} run failed (exit {proc.returncode}); its output: {log}')


def _weights(path):
    from kdlab.compat import load_local_checkpoint
    return load_local_checkpoint(path, 'cpu')['state_dict']


def check_resume(detector: str = 'retinanet_r50', scale: str = 'mini', *, root: os.PathLike,
                 seed: int = 0, epochs: Optional[int] = None, kill_after_epoch: Optional[int] = None,
                 timeout_s: float = 3600.0, say=print) -> dict:
    """Run the check under ``root`` (two fresh stores) and return what it measured.

    ``kill_after_epoch``: the epoch whose checkpoint triggers the kill (default: half the schedule).
    Raises :class:`KdlabError` when the run finished before it could be killed or a run failed.
    """
    import torch
    from kdlab.engine.runner import run_key

    root = Path(root)
    cfg = resume_config(detector, scale, seed=seed, epochs=epochs)
    total = cfg.train_cfg.max_epochs
    kill_after_epoch = kill_after_epoch or max(1, total // 2)
    if not 1 <= kill_after_epoch < total:
        raise KdlabError(f'kill_after_epoch must lie in 1..{total - 1} (the schedule has {total} epochs)')
    key = run_key(cfg)
    killed, clean = _stores(root)
    for store in (killed, clean):
        if store.load(key) is not None or store.work_dir(key).is_dir():
            raise KdlabError(f'{store.root.parent} already holds run {key}: pass an empty root')

    t0 = time.time()
    say(f'{detector} at {scale}, seed {seed}, {total} epochs (run {key}): training twice, one core each; '
        f'the first is killed after epoch {kill_after_epoch}')
    first = _child(detector, scale, seed, epochs, killed, root / 'killed.log')
    other = _child(detector, scale, seed, epochs, clean, root / 'uninterrupted.log')
    marker = killed.work_dir(key) / 'last_checkpoint'
    while time.time() - t0 < timeout_s and first.poll() is None:
        if marker.is_file() and f'epoch_{kill_after_epoch}.pth' in marker.read_text():
            first.send_signal(signal.SIGKILL)
            break
        time.sleep(0.05)
    first.wait(timeout=60)
    killed_s = time.time() - t0
    if first.returncode != -signal.SIGKILL:
        other.kill()
        raise KdlabError(f'the first run ended (exit {first.returncode}) before epoch {kill_after_epoch} '
                         f'was checkpointed and it could be killed; its output: {root / "killed.log"}')
    stored_before = killed.load(key) is not None
    final_before = (killed.work_dir(key) / f'epoch_{total}.pth').exists()
    say(f'killed after epoch {kill_after_epoch} at {killed_s:.0f} s; stored: {stored_before}; '
        f'final checkpoint: {final_before}. Starting it again.')

    t1 = time.time()
    again = _child(detector, scale, seed, epochs, killed, root / 'resumed.log')
    _wait(again, 'resumed', root / 'resumed.log')
    resumed_s = time.time() - t1
    _wait(other, 'uninterrupted', root / 'uninterrupted.log')
    uninterrupted_s = time.time() - t0
    a, b = killed.load(key), clean.load(key)
    wa, wb = _weights(a['checkpoint']), _weights(b['checkpoint'])
    diffs = {k: float((wa[k].float() - wb[k].float()).abs().max()) for k in wa if k in wb}
    result = dict(
        detector=detector, scale=scale, seed=seed, epochs=total, key=key,
        kill_after_epoch=kill_after_epoch, killed_record_before_restart=stored_before,
        final_checkpoint_before_restart=final_before, resumed=a['resumed'], uninterrupted_resumed=b['resumed'],
        attempts=a.get('attempts', 1), log_attempts=len(killed.logged_attempts(key)),
        metrics_resumed=a['metrics'], metrics_uninterrupted=b['metrics'],
        metrics_equal=a['metrics'] == b['metrics'],
        curve_epochs_resumed=[e['epoch'] for e in a.get('curve', [])],
        curves_equal=a.get('curve') == b.get('curve'),
        same_tensors=wa.keys() == wb.keys(),
        max_weight_abs_diff=max(diffs.values()) if diffs else None,
        weights_equal=wa.keys() == wb.keys() and all(torch.allclose(wa[k].float(), wb[k].float(), atol=1e-6)
                                                       for k in wa),
        wall_s=dict(killed=round(killed_s, 1), resumed=round(resumed_s, 1),
                    uninterrupted=round(b.get('wall_time_s', uninterrupted_s), 1),
                    check=round(time.time() - t0, 1)),
        provenance=a['provenance'])
    result['passed'] = bool(result['resumed'] and not stored_before and not final_before
                            and result['metrics_equal'] and result['weights_equal'])
    return result


def _child_main(argv) -> int:
    detector, scale, seed, epochs, results, work = argv
    from kdlab.engine.runner import execute
    cfg = resume_config(detector, scale, seed=int(seed), epochs=int(epochs) if epochs else None)
    execute(cfg, name=NAME, store=RunStore(results, work), progress=False)
    return 0


def main(args) -> int:
    import tempfile
    root = Path(args.work_dir) if args.work_dir else Path(tempfile.mkdtemp(prefix='kdlab-resume-'))
    result = check_resume(args.detector, args.scale, root=root, seed=args.seed, epochs=args.epochs,
                          kill_after_epoch=args.kill_after_epoch)
    out = Path(args.out) if args.out else (repo_root() / 'results' / 'resume_check'
                                           / f'{args.detector}_{args.scale}.json')
    out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out, json.dumps(result, indent=1, sort_keys=True) + '\n')
    m, n = result['metrics_resumed'], result['metrics_uninterrupted']
    print(f"resumed: mAP {m.get('mAP')}  uninterrupted: mAP {n.get('mAP')}  metrics equal: "
          f"{result['metrics_equal']}  largest weight difference: {result['max_weight_abs_diff']:.3g}  "
          f"-> {'PASSED' if result['passed'] else 'FAILED'}  ({out})")
    return 0 if result['passed'] else 1


def register(sub) -> None:
    p = sub.add_parser('resume-check', help='kill a run mid-training, resume it, compare with an uninterrupted run')
    p.add_argument('detector', nargs='?', default='retinanet_r50', help='a zoo detector (default retinanet_r50)')
    p.add_argument('--scale', default='mini', choices=('smoke', 'mini'))
    p.add_argument('--seed', type=int, default=0)
    p.add_argument('--epochs', type=int, default=None, help="default: the detector's schedule at the scale")
    p.add_argument('--kill-after-epoch', type=int, default=None, help='default: half the epochs')
    p.add_argument('--work-dir', default=None, help='an empty folder for the two stores (default: a temp dir)')
    p.add_argument('--out', default=None, help='default: results/resume_check/<detector>_<scale>.json')
    p.set_defaults(func=main)


if __name__ == '__main__':
    sys.exit(_child_main(sys.argv[1:]))
