"""Park an unfinished run in the run store, so that another machine resumes it: ``kdlab park``.

A run resumes from its last checkpoint, which lives in the work root (``~/.cache/kdlab/work/<key>``): on the
machine that trained it, and nowhere else. A mini-v2 run takes 1-2 hours on a core, a session less than three:
a run that is still training when the machine goes would start over on the next one. ``park(store, key)`` copies
what resuming needs into the store, beside the finished runs' records, small enough to commit:

``<store>/parked/<key>/``
    ``state.pth``  the last checkpoint, its model weights in float16 (as ``kdlab commit-weights`` keeps a
                   finished run's) and its optimizer state in bfloat16 (float32's range: Adam's second moments
                   are far below float16's smallest number); a distillation run without its frozen teacher,
                   which the run loads again from the teacher's own checkpoint when it is built;
    ``park.json``  the epoch and iteration, the file's sha256, when and where it was parked;
    ``curve.json``, ``checks.json``, ``logs/``: the epochs validated so far, the run checks' first readings, and
                   each earlier process's log (the record's wall time and ``train.log`` count them).

:func:`unpark` (called by :func:`kdlab.engine.runner.execute` where the work directory has no checkpoint) writes
it back as a full-precision checkpoint and resumes from it. The resumed run is not bit-equal to an
uninterrupted one (the weights and optimizer state were rounded once); its record says so (``parked``: each
park's epoch, time and precision), and the parked files are removed from the store when the run is stored.
The teacher is loaded again on the new machine, from its committed fp16 weights where its own checkpoint is not
there: the "teacher frozen" check covers the resumed part, the earlier part's digest is kept
(``checks.teacher_before_park``).
"""
from __future__ import annotations

import datetime as _dt
import json
import os
import shutil
import socket
import time
from pathlib import Path
from typing import List, Optional

from kdlab.engine.store import RunStore, _sha256, atomic_write_text, cast_floats, without_teacher
from kdlab.errors import KdlabError

STATE = 'state.pth'
META = 'park.json'
HISTORY = 'parked.json'           # in the work directory: the parks a resumed run came through
WEIGHTS_DTYPE = 'float16'         # the model's floating tensors (as committed weights)
OPTIMIZER_DTYPE = 'bfloat16'      # the optimizer's: float32's exponent range


def parked_dir(store: RunStore, key: str) -> Path:
    return store.root / 'parked' / key


def parked_keys(store: RunStore) -> List[str]:
    base = store.root / 'parked'
    return sorted(d.name for d in base.iterdir() if is_parked(store, d.name)) if base.is_dir() else []


def has_checkpoint(store: RunStore, key: str) -> bool:
    """Whether this machine's work root holds a checkpoint of run ``key`` (it resumes from that one)."""
    return (store.work_dir(key) / 'last_checkpoint').is_file()


def is_parked(store: RunStore, key: str) -> bool:
    return (parked_dir(store, key) / META).is_file()


def unfinished_keys(store: RunStore) -> List[str]:
    """The runs in the work root that have a checkpoint and no finished record: what :func:`park` can park."""
    if not store.work_root.is_dir():
        return []
    return sorted(d.name for d in store.work_root.iterdir()
                  if has_checkpoint(store, d.name) and store.load(d.name) is None)


def park(store: RunStore, key: str) -> dict:
    """Copy run ``key``'s last checkpoint and logs from the work root into ``<store>/parked/<key>/``; returns
    its ``park.json`` entry. Parking again replaces the earlier park of the same run."""
    import torch
    from kdlab.compat import load_local_checkpoint
    if store.load(key) is not None:
        raise KdlabError(f'run {key} is finished and stored', f'commit its weights instead: kdlab commit-weights {key}')
    work_dir = store.work_dir(key)
    last = work_dir / 'last_checkpoint'
    if not last.is_file():
        raise KdlabError(f'run {key} has no checkpoint in {work_dir}',
                         'park a run after its first epoch, on the machine that trains it')
    for attempt in range(5):       # a training process may replace its checkpoint meanwhile: read the new one
        source = Path(last.read_text().strip())
        try:
            ckpt, source_digest = load_local_checkpoint(str(source), 'cpu'), _sha256(source)
            break
        except FileNotFoundError:
            if attempt == 4:
                raise
            time.sleep(2)
    state, dropped = without_teacher(ckpt['state_dict'])
    ckpt['state_dict'] = cast_floats(state, torch.float16)
    if 'optimizer' in ckpt:
        ckpt['optimizer'] = cast_floats(ckpt['optimizer'], torch.bfloat16, keep_scalars=True)
    out = parked_dir(store, key)
    tmp = out.with_name(f'.{key}.{os.getpid()}.part')
    shutil.rmtree(tmp, ignore_errors=True)
    (tmp / 'logs').mkdir(parents=True)
    torch.save(ckpt, tmp / STATE)
    for name in ('curve.json', 'checks.json', HISTORY):
        if (work_dir / name).is_file():
            shutil.copy2(work_dir / name, tmp / name)
    from kdlab.engine.runner import machine, training_attempts
    for attempt in training_attempts(work_dir):
        shutil.copy2(attempt['log'], tmp / 'logs' / attempt['log'].name)
    meta = ckpt.get('meta') or {}
    entry = {'key': key, 'epoch': int(meta.get('epoch', 0)), 'iteration': int(meta.get('iter', 0)),
             'checkpoint': source.name, 'from_checkpoint_sha256': source_digest,
             'sha256': _sha256(tmp / STATE), 'bytes': (tmp / STATE).stat().st_size,
             'weights': WEIGHTS_DTYPE, 'optimizer': OPTIMIZER_DTYPE, 'teacher_dropped': dropped,
             'parked': _dt.datetime.now(_dt.timezone.utc).isoformat(timespec='seconds'),
             'host': socket.gethostname(),
             'machine': machine()}     # where the part before the park ran: the record says it (``parked``)
    atomic_write_text(tmp / META, json.dumps(entry, indent=2, sort_keys=True) + '\n')
    shutil.rmtree(out, ignore_errors=True)
    out.parent.mkdir(parents=True, exist_ok=True)
    os.replace(tmp, out)
    return entry


def unpark(store: RunStore, key: str) -> Optional[dict]:
    """Where run ``key`` is parked in the store and its work directory has no checkpoint: write the parked state
    there as a full-precision checkpoint (named as the one it came from, ``last_checkpoint`` naming it), with its
    curve, checks and earlier logs, and return the park entry; else None."""
    import torch
    from kdlab.compat import load_local_checkpoint
    from kdlab.errors import CheckpointError
    src = parked_dir(store, key)
    work_dir = store.work_dir(key)
    if not is_parked(store, key) or has_checkpoint(store, key):
        return None
    entry = json.loads((src / META).read_text())
    if not (src / STATE).is_file() or _sha256(src / STATE) != entry['sha256']:
        raise CheckpointError(f'the parked state of run {key} ({src / STATE}) is missing or does not match its '
                              f'sha256 {entry["sha256"][:16]}...',
                              f'restore it from git (git checkout -- {src}), or delete {src} to train the run '
                              'from the start')
    ckpt = load_local_checkpoint(str(src / STATE), 'cpu')
    ckpt['state_dict'] = cast_floats(ckpt['state_dict'], torch.float32)
    if 'optimizer' in ckpt:
        ckpt['optimizer'] = cast_floats(ckpt['optimizer'], torch.float32, keep_scalars=True)
    work_dir.mkdir(parents=True, exist_ok=True)
    if (src / 'curve.json').is_file():
        shutil.copy2(src / 'curve.json', work_dir / 'curve.json')
    if (src / 'checks.json').is_file():
        checks = json.loads((src / 'checks.json').read_text())
        if 'teacher_frozen' in checks:
            # the teacher is loaded again here, perhaps from its committed fp16 weights rather than the file the
            # first part read: "frozen" is checked over the resumed part (RunChecksHook takes a new digest at its
            # start); the digest the earlier part started with is kept beside it
            checks.setdefault('teacher_before_park', []).append(checks.pop('teacher_frozen'))
        atomic_write_text(work_dir / 'checks.json', json.dumps(checks, indent=1))
    for log in sorted((src / 'logs').glob('*.log')):
        (work_dir / log.stem).mkdir(exist_ok=True)
        shutil.copy2(log, work_dir / log.stem / log.name)
    history = json.loads((src / HISTORY).read_text()) if (src / HISTORY).is_file() else []
    history.append({k: entry[k] for k in ('epoch', 'iteration', 'parked', 'host', 'machine', 'weights',
                                         'optimizer', 'sha256') if k in entry})   # parks before 'machine' lack it
    atomic_write_text(work_dir / HISTORY, json.dumps(history, indent=2) + '\n')
    target = work_dir / entry['checkpoint']
    tmp = target.with_name(target.name + '.part')
    torch.save(ckpt, tmp)
    os.replace(tmp, target)
    atomic_write_text(work_dir / 'last_checkpoint', str(target))
    return entry


def history(work_dir: Path) -> List[dict]:
    """The parks run ``work_dir`` resumed through (for its record), oldest first."""
    path = Path(work_dir) / HISTORY
    return json.loads(path.read_text()) if path.is_file() else []


def discard(store: RunStore, key: str) -> None:
    """Remove run ``key``'s parked state (it is stored now)."""
    shutil.rmtree(parked_dir(store, key), ignore_errors=True)


def parked(store: RunStore) -> List[dict]:
    """Every park in the store, each ``park.json`` entry with ``here``: this work root has a checkpoint of the
    run (it resumes from that one, not from the park)."""
    return [dict(json.loads((parked_dir(store, key) / META).read_text()), here=has_checkpoint(store, key))
            for key in parked_keys(store)]


def main(args) -> int:
    store = RunStore(args.store) if args.store else RunStore()
    if args.list:
        entries = parked(store)
        for e in entries:
            here = '; this machine holds a checkpoint of its own, resumed instead' if e['here'] else ''
            print(f'{e["key"]}: epoch {e["epoch"]} (iteration {e["iteration"]}), parked {e["parked"]} on {e["host"]}, '
                  f'{e["bytes"] / 1e6:.1f} MB{here}')
        print(f'{len(entries)} parked run(s) in {store.root / "parked"}')
        return 0
    keys = args.keys or unfinished_keys(store)
    if not keys:
        print(f'nothing to park: no unfinished run with a checkpoint in {store.work_root}')
        return 0
    for key in keys:
        entry = park(store, key)
        print(f'{key}: epoch {entry["epoch"]} (iteration {entry["iteration"]}) parked in '
              f'{parked_dir(store, key)} ({entry["bytes"] / 1e6:.1f} MB)')
    print('commit the parked folders; on another machine the same command (kdlab calibrate, reproduce, '
          'leaderboard, train) resumes each run from its parked epoch')
    return 0


def register(sub) -> None:
    p = sub.add_parser('park', help='copy unfinished runs\' last checkpoints into the run store (float16 weights, '
                       'bfloat16 optimizer state), so that another machine resumes them; commit them')
    p.add_argument('keys', nargs='*', help='run keys (default: every unfinished run in the work root)')
    p.add_argument('--store', default=None, help='run store (default: results/runs)')
    p.add_argument('--list', action='store_true', help='list the parked runs instead')
    p.set_defaults(func=main)
