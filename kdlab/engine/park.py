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

A backbone's pretraining (``kdlab pretrain``) is parked the same way (:func:`park_pretraining`), into
``<store>/parked/pretrain/<backbone>-<recipe digest>/``, and resumed by ``kdlab.zoo.pretrain.pretrain`` where its
cache has no state (:func:`unpark_pretraining`); the weights' index entry lists the parks (``parks``).
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


#: Calibration trials (``kdlab calibrate --trial``) keep their records in ``~/.cache/kdlab/trials``; their parks go to
#: ``<store>/parked/trials/<key>/``, beside the runs', to be committed (:func:`kdlab.engine.calibration.trial_store`).
TRIALS = 'trials'


def parked_dir(store: RunStore, key: str) -> Path:
    return store.parked_root / key


def parked_keys(store: RunStore) -> List[str]:
    base = store.parked_root
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


def _cast_state(state: dict, weights: str, optimizer: str, *, parked: bool) -> dict:
    """``state`` with ``state[weights]`` and ``state[optimizer]`` (where present) in the parks' precision
    (:data:`WEIGHTS_DTYPE`, :data:`OPTIMIZER_DTYPE`; the optimizer's one-element tensors, Adam's ``step``, kept), or
    back in float32 (``parked=False``): one rule for a run's checkpoint and a pretraining's state."""
    import torch
    to = (getattr(torch, WEIGHTS_DTYPE), getattr(torch, OPTIMIZER_DTYPE)) if parked else (torch.float32,) * 2
    state[weights] = cast_floats(state[weights], to[0])
    if optimizer in state:
        state[optimizer] = cast_floats(state[optimizer], to[1], keep_scalars=True)
    return state


def _staging(out: Path) -> Path:
    """An empty folder beside ``out`` to write a park into, moved over ``out`` by :func:`_publish`."""
    tmp = out.with_name(f'.{out.name}.{os.getpid()}.part')
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    return tmp


def _publish(tmp: Path, out: Path) -> None:
    shutil.rmtree(out, ignore_errors=True)
    out.parent.mkdir(parents=True, exist_ok=True)
    os.replace(tmp, out)


def _parked_state(src: Path, entry: dict, subject: str, restart: str) -> Path:
    """``src``'s parked state file, checked against its ``park.json`` sha256; raises naming the fix if it fails."""
    from kdlab.errors import CheckpointError
    if not (src / STATE).is_file() or _sha256(src / STATE) != entry['sha256']:
        raise CheckpointError(f'the parked state of {subject} ({src / STATE}) is missing or does not match its '
                              f'sha256 {entry["sha256"][:16]}...',
                              f'restore it from git (git checkout -- {src}), or delete {src} to {restart}')
    return src / STATE


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
    ckpt['state_dict'], dropped = without_teacher(ckpt['state_dict'])
    _cast_state(ckpt, 'state_dict', 'optimizer', parked=True)
    out = parked_dir(store, key)
    tmp = _staging(out)
    (tmp / 'logs').mkdir()
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
    _publish(tmp, out)
    return entry


def unpark(store: RunStore, key: str) -> Optional[dict]:
    """Where run ``key`` is parked in the store and its work directory has no checkpoint: write the parked state
    there as a full-precision checkpoint (named as the one it came from, ``last_checkpoint`` naming it), with its
    curve, checks and earlier logs, and return the park entry; else None."""
    import torch
    from kdlab.compat import load_local_checkpoint
    src = parked_dir(store, key)
    work_dir = store.work_dir(key)
    if not is_parked(store, key) or has_checkpoint(store, key):
        return None
    entry = json.loads((src / META).read_text())
    state_file = _parked_state(src, entry, f'run {key}', 'train the run from the start')
    ckpt = _cast_state(load_local_checkpoint(str(state_file), 'cpu'), 'state_dict', 'optimizer', parked=False)
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


# ------------------------------------------------------------------------- a backbone's pretraining
#: Pretraining states are parked under ``<store>/parked/pretrain/<backbone>-<recipe digest>/``: a Swin stand-in's
#: longer recipe is hours of one core, more than a session, and its state lives in ``~/.cache`` like a run's.
PRETRAIN = 'pretrain'


def recipe_digest(resume_key: dict) -> str:
    """Eight hex digits naming a pretraining recipe (``kdlab.zoo.pretrain``'s resume key: settings and stand-in)."""
    import hashlib
    return hashlib.sha256(json.dumps(resume_key, sort_keys=True).encode()).hexdigest()[:8]


def pretraining_dir(store: RunStore, backbone: str, resume_key: dict) -> Path:
    return store.parked_root / PRETRAIN / f'{backbone}-{recipe_digest(resume_key)}'


def park_pretraining(store: RunStore, backbone: str, state_file: Path) -> dict:
    """Copy the pretraining state ``state_file`` (``kdlab.zoo.pretrain``'s ``last.pth``) into the store: model
    weights in float16, AdamW's state in bfloat16, as :func:`park` keeps a run's; returns its ``park.json`` entry."""
    import torch
    state = torch.load(state_file, map_location='cpu', weights_only=False)
    if state['epoch'] >= state['settings']['epochs']:
        raise KdlabError(f'the pretraining of {backbone} in {state_file} is finished ({state["epoch"]} epochs)',
                         f'run `kdlab pretrain {backbone}` with the same arguments to write its weights; '
                         'commit those instead')
    _cast_state(state, 'model', 'opt', parked=True)
    out = pretraining_dir(store, backbone, state['resume_key'])
    tmp = _staging(out)
    torch.save(state, tmp / STATE)
    from kdlab.engine.runner import machine
    entry = {'backbone': backbone, 'epoch': int(state['epoch']), 'epochs': int(state['settings']['epochs']),
             'top1': state['history'][-1]['top1'] if state['history'] else None, 'seconds': state['seconds'],
             'sha256': _sha256(tmp / STATE), 'bytes': (tmp / STATE).stat().st_size, 'weights': WEIGHTS_DTYPE,
             'optimizer': OPTIMIZER_DTYPE, 'recipe': recipe_digest(state['resume_key']),
             'settings': state['settings'],
             'parked': _dt.datetime.now(_dt.timezone.utc).isoformat(timespec='seconds'),
             'host': socket.gethostname(), 'machine': machine()}
    atomic_write_text(tmp / META, json.dumps(entry, indent=2, sort_keys=True) + '\n')
    _publish(tmp, out)
    return entry


def unpark_pretraining(store: RunStore, backbone: str, resume_key: dict, state_file: Path) -> Optional[dict]:
    """Where ``state_file`` is missing and the store holds a parked state of the same recipe on the same stand-in,
    write it there in float32 (the earlier parks, with their machines, in its ``parks``); returns the entry."""
    import torch
    src = pretraining_dir(store, backbone, resume_key)
    if Path(state_file).is_file() or not (src / META).is_file():
        return None
    entry = json.loads((src / META).read_text())
    parked_file = _parked_state(src, entry, f'the pretraining of {backbone}', f'pretrain {backbone} from the start')
    state = torch.load(parked_file, map_location='cpu', weights_only=False)
    if state.get('resume_key') != resume_key:        # the digest's 32 bits named it; the key itself decides
        return None
    _cast_state(state, 'model', 'opt', parked=False)
    state['parks'] = list(state.get('parks', [])) + [{k: entry[k] for k in ('epoch', 'parked', 'host', 'machine',
                                                                            'sha256')}]
    Path(state_file).parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(state_file).with_suffix('.tmp')
    torch.save(state, tmp)
    tmp.replace(state_file)
    return entry


def discard_pretraining(store: RunStore, backbone: str, resume_key: dict) -> None:
    """Remove a parked pretraining state (its weights are written now)."""
    shutil.rmtree(pretraining_dir(store, backbone, resume_key), ignore_errors=True)


def parked_pretrainings(store: RunStore) -> List[dict]:
    base = store.parked_root / PRETRAIN
    return [json.loads((d / META).read_text()) for d in sorted(base.iterdir()) if (d / META).is_file()] \
        if base.is_dir() else []


def unfinished_pretrainings(cache_root: Path) -> List[tuple]:
    """``(backbone, state file)`` of each unfinished pretraining under ``cache_root`` (``~/.cache/kdlab/pretrain``:
    a folder per backbone, a trial's under ``trials/``): what ``kdlab park`` parks beside the runs."""
    import torch
    found = []
    for state_file in sorted(Path(cache_root).glob('**/last.pth')):      # a trial's under trials/<out-dir>/
        state = torch.load(state_file, map_location='cpu', weights_only=False)
        if state['epoch'] < state['settings']['epochs']:
            found.append((state_file.parent.name, state_file))
    return found


def main(args) -> int:
    store = RunStore(args.store) if args.store else RunStore()
    from kdlab.engine.calibration import trial_store
    trials = trial_store(parked_root=store.parked_root / TRIALS)
    if args.list:
        entries = [('run', e) for e in parked(store)] + [('trial', e) for e in parked(trials)]
        for label, e in entries:
            here = '; this machine holds a checkpoint of its own, resumed instead' if e['here'] else ''
            print(f'{label} {e["key"]}: epoch {e["epoch"]} (iteration {e["iteration"]}), parked {e["parked"]} '
                  f'on {e["host"]}, {e["bytes"] / 1e6:.1f} MB{here}')
        print(f'{len(entries)} parked run(s) in {store.parked_root}')
        for e in parked_pretrainings(store):
            print(f'pretraining of {e["backbone"]} (recipe {e["recipe"]}): epoch {e["epoch"]} of {e["epochs"]}, '
                  f'top-1 {e["top1"]} %, parked {e["parked"]} on {e["host"]}, {e["bytes"] / 1e6:.1f} MB')
        return 0
    # named keys are the store's runs; with none, every unfinished run, calibration trial and pretraining
    found = [(store, key) for key in args.keys] if args.keys else \
        [(store, key) for key in unfinished_keys(store)] + [(trials, key) for key in unfinished_keys(trials)]
    pretrainings = [] if args.keys else unfinished_pretrainings(_pretraining_cache())
    for backbone, state_file in pretrainings:
        entry = park_pretraining(store, backbone, state_file)
        print(f'pretraining of {backbone}: epoch {entry["epoch"]} of {entry["epochs"]} parked in '
              f'{store.parked_root / PRETRAIN} ({entry["bytes"] / 1e6:.1f} MB)')
    if not found and not pretrainings:
        print(f'nothing to park: no unfinished run with a checkpoint in {store.work_root} or {trials.work_root}, '
              f'no unfinished pretraining in {_pretraining_cache()}')
        return 0
    for where, key in found:
        entry = park(where, key)
        print(f'{key}: epoch {entry["epoch"]} (iteration {entry["iteration"]}) parked in '
              f'{parked_dir(where, key)} ({entry["bytes"] / 1e6:.1f} MB)')
    print('commit the parked folders; on another machine the same command (kdlab calibrate, reproduce, '
          'leaderboard, train; kdlab calibrate --trial for a trial; kdlab pretrain for a pretraining) resumes each '
          'from its parked epoch')
    return 0


def _pretraining_cache() -> Path:
    from kdlab.zoo.pretrain import _cache_root
    return _cache_root()


def register(sub) -> None:
    p = sub.add_parser('park', help='copy unfinished runs\' last checkpoints into the run store (float16 weights, '
                       'bfloat16 optimizer state), so that another machine resumes them; commit them')
    p.add_argument('keys', nargs='*', help='run keys (default: every unfinished run in the work root, and every '
                   'unfinished backbone pretraining of `kdlab pretrain`)')
    p.add_argument('--store', default=None, help='run store (default: results/runs)')
    p.add_argument('--list', action='store_true', help='list the parked runs instead')
    p.set_defaults(func=main)
