"""The run store: one directory per run, keyed by the run's content, written atomically.

Layout (``results/runs`` by default, ``$KDLAB_RESULTS`` to move it)::

    <root>/<key>/config.py    the resolved mmengine config the run trained with
    <root>/<key>/run.json     name, status, metrics, checkpoint location, provenance
    <root>/<key>/train.log    mmengine's training log (copied when the run finishes)

    <root>/<key>/weights-fp16.pth   the run's weights in half precision, where committed (:meth:`RunStore.commit_weights`)

Checkpoints stay in the run's work directory (``$KDLAB_WORK``, default ``~/.cache/kdlab/work/<key>``),
outside the repository; ``run.json`` records where. That directory stays on the machine that trained the run;
a run whose weights a later run needs on another machine (a teacher, an earlier SAL stage, an analysis
notebook's model) has them committed beside its record: a few MB in half precision, with their sha256 in
``run.json``. Where the checkpoint is not on this machine, :meth:`RunStore.load` answers with those weights,
written once as a full-precision checkpoint into the run's work directory (``committed-<sha8>.pth``), so the
runs that need it start without training it again.
"""
from __future__ import annotations

import contextlib
import json
import os
import re
import tempfile
from pathlib import Path
from typing import Iterator, List, Optional, Sequence, Union

from kdlab.errors import KdlabError

#: The line above each attempt's log in a stored ``train.log`` of a run that was interrupted and resumed.
ATTEMPT_HEADER = '# ---- attempt {number} of {count}: {name}\n'
ATTEMPT_HEADER_LINE = re.compile(r'^# ---- attempt (\d+) of (\d+): (\S+)\n', re.M)


def repo_root() -> Path:
    return Path(__file__).resolve().parents[2]


def default_results_root() -> Path:
    return Path(os.environ.get('KDLAB_RESULTS') or repo_root() / 'results' / 'runs').expanduser()


def default_work_root() -> Path:
    env = os.environ.get('KDLAB_WORK')
    if env:
        return Path(env).expanduser()
    base = os.environ.get('XDG_CACHE_HOME') or os.path.join(os.path.expanduser('~'), '.cache')
    return Path(base) / 'kdlab' / 'work'


def _file_mode() -> int:
    """The mode ``open()`` gives a new file here (0o666 less the umask): a temporary file is made 0o600."""
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


FILE_MODE = _file_mode()


def atomic_write_text(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` so that a reader sees the old file or the new one, never half of one (with
    the permissions of a file written directly, not the temporary file's owner-only ones)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f'.{path.name}.', dir=path.parent)
    try:
        os.fchmod(fd, FILE_MODE)
        with os.fdopen(fd, 'w') as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def file_identity(path) -> tuple:
    """What tells a file apart from the same path rewritten, cut or replaced since, as git's index does: its real
    path, inode, size and modification time. Work done on a file (a digest, a check) is remembered by it."""
    st = os.stat(path)
    return (os.path.realpath(path), st.st_ino, st.st_size, st.st_mtime_ns)


#: Digests computed in this process, by :func:`file_identity`: a teacher's or baseline's checkpoint is hashed
#: once, not for every run that records or gates on it.
_DIGESTS: dict = {}


def file_digest(path: Optional[str]) -> Optional[str]:
    """The first 16 hex digits of the SHA-256 of a local file (None for a missing file or a URL). A file hashed
    before in this process and unchanged since (same path, inode, size and modification time) is not read again."""
    if not path or '://' in str(path) or not os.path.isfile(path):
        return None
    identity = file_identity(path)
    if identity not in _DIGESTS:
        _DIGESTS[identity] = _sha256(Path(path))[:16]
    return _DIGESTS[identity]


#: The file name of a run's committed half-precision weights, beside its ``run.json``.
COMMITTED_WEIGHTS = 'weights-fp16.pth'


def _sha256(path: Path) -> str:
    import hashlib
    h = hashlib.sha256()
    with open(path, 'rb') as f:
        for block in iter(lambda: f.read(1 << 20), b''):
            h.update(block)
    return h.hexdigest()


def cast_floats(obj, dtype, keep_scalars: bool = False):
    """``obj`` (a state dict, an optimizer state: tensors in dicts, lists and tuples) with every floating tensor
    cast to ``dtype``; ``keep_scalars``: one-element tensors (Adam's ``step``) kept as they are."""
    import torch
    if isinstance(obj, torch.Tensor):
        return obj.to(dtype) if obj.is_floating_point() and not (keep_scalars and obj.numel() == 1) else obj
    if isinstance(obj, dict):
        return type(obj)((k, cast_floats(v, dtype, keep_scalars)) for k, v in obj.items())
    if isinstance(obj, (list, tuple)):
        return type(obj)(cast_floats(v, dtype, keep_scalars) for v in obj)
    return obj


#: the state-dict prefixes of a distillation's frozen teachers: mmrazor's teacher, DFMSD's box teacher
FROZEN_TEACHERS = ('teacher.', 'box_teacher.')


def without_teacher(state: dict):
    """A training state dict without a distillation run's frozen teachers (its ``teacher.*`` keys and a DFMSD
    stage's ``box_teacher.*``, when the student's are ``architecture.*``: each teacher's weights are its own
    run's, loaded again whenever the distiller is built), and how many keys were dropped."""
    distiller = any(k.startswith('architecture.') for k in state)
    kept = {k: v for k, v in state.items() if not (distiller and k.startswith(FROZEN_TEACHERS))}
    return kept, len(state) - len(kept)


def checkpoint_present(record) -> bool:
    """Whether a stored run's checkpoint is on this machine (or is a URL)."""
    ckpt = record.get('checkpoint')
    return bool(ckpt) and ('://' in str(ckpt) or os.path.isfile(ckpt))


def rebuilt_note(rebuilt: Sequence[dict]) -> str:
    """What :meth:`RunStore.rebuilt_inputs` found, in words (empty when nothing was rebuilt)."""
    def fmt(v):
        return '?' if v is None else f'{v:.1f}'
    return '; '.join(f'distilled from an earlier build of {r["name"]} ({fmt(r["mAP_then"])} mAP then, '
                     f'{fmt(r["mAP_now"])} now)' for r in rebuilt)


class RunExistsError(KdlabError):
    """A finished run would be overwritten."""


class RunStore:
    """Finished runs by key. A finished run is never overwritten unless asked to."""

    def __init__(self, root: Optional[os.PathLike] = None, work_root: Optional[os.PathLike] = None,
                 parked_root: Optional[os.PathLike] = None):
        self.root = Path(root).expanduser() if root else default_results_root()
        self.work_root = Path(work_root).expanduser() if work_root else default_work_root()
        #: where ``kdlab park`` copies unfinished runs (``<root>/parked``; a store outside the repository, as the
        #: calibration trials', names a folder inside it, so that its parks can be committed)
        self.parked_root = Path(parked_root).expanduser() if parked_root else self.root / 'parked'

    def run_dir(self, key: str) -> Path:
        return self.root / key

    def work_dir(self, key: str) -> Path:
        return self.work_root / key

    @contextlib.contextmanager
    def lock(self, key: str):
        """Hold run ``key`` for this process (an advisory file lock in the work root; released when the
        process ends, so a killed run never leaves it held)."""
        import fcntl
        self.work_root.mkdir(parents=True, exist_ok=True)
        with open(self.work_root / f'.{key}.lock', 'w') as f:
            fcntl.flock(f, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(f, fcntl.LOCK_UN)

    def load(self, key: str) -> Optional[dict]:
        """The record of run ``key`` if it finished, else None. Where its checkpoint is not on this machine and
        its weights are committed, ``checkpoint`` is their full-precision copy here (``checkpoint_source`` says
        so; the record on disk keeps the original path)."""
        path = self.run_dir(key) / 'run.json'
        if not path.is_file():
            return None
        record = json.loads(path.read_text())
        if record.get('status') != 'finished':
            return None
        if record.get('committed_weights') and not checkpoint_present(record):
            record['checkpoint'] = str(self._materialize(key, record['committed_weights']))
            record['checkpoint_source'] = 'committed fp16 weights'
        return record

    def commit_weights(self, key: str) -> dict:
        """Write run ``key``'s weights beside its record in half precision (``weights-fp16.pth``: the model's
        state dict, floating tensors as float16, others as they are; no optimizer state; a distillation run
        without its frozen teacher, :func:`without_teacher`) and record them in its ``run.json`` as
        ``committed_weights`` (file, sha256, the digest of the checkpoint they came from). Returns that entry."""
        import torch
        from mmengine.runner.checkpoint import _load_checkpoint
        record = self.load(key)
        if record is None:
            raise KdlabError(f'run {key} is not stored', 'commit the weights of a finished run')
        if record.get('checkpoint_source') or not checkpoint_present(record) or '://' in str(record['checkpoint']):
            raise KdlabError(f'run {key} ({record.get("name")}): its checkpoint {record.get("checkpoint")} is not a '
                             'file this machine trained', 'commit weights on the machine that trained the run')
        ckpt = _load_checkpoint(record['checkpoint'], map_location='cpu')
        state = ckpt.get('state_dict', ckpt) if isinstance(ckpt, dict) else ckpt
        state, dropped = without_teacher(dict(state))
        half = cast_floats(state, torch.float16)
        path = self.run_dir(key) / COMMITTED_WEIGHTS
        tmp = path.with_suffix('.part')
        torch.save({'state_dict': half, 'meta': {'kdlab_run': key, 'name': record.get('name'),
                                                 'from_checkpoint_sha256': record.get('checkpoint_sha256')}}, tmp)
        os.replace(tmp, path)
        entry = {'file': COMMITTED_WEIGHTS, 'sha256': _sha256(path), 'dtype': 'float16',
                 'from_checkpoint_sha256': record.get('checkpoint_sha256'), 'bytes': path.stat().st_size,
                 'teacher_dropped': dropped}
        on_disk = json.loads((self.run_dir(key) / 'run.json').read_text())
        on_disk['committed_weights'] = entry
        atomic_write_text(self.run_dir(key) / 'run.json', json.dumps(on_disk, indent=2, sort_keys=True) + '\n')
        return entry

    def _materialize(self, key: str, entry: dict) -> Path:
        """The committed weights of run ``key`` as a full-precision mmengine checkpoint in its work directory
        (written once; their sha256 checked first)."""
        import torch
        out = self.work_dir(key) / f'committed-{entry["sha256"][:8]}.pth'
        if out.is_file():
            return out
        src = self.run_dir(key) / entry['file']
        if not src.is_file() or _sha256(src) != entry['sha256']:
            from kdlab.errors import CheckpointError
            raise CheckpointError(f'the committed weights of run {key} ({src}) are missing or do not match their '
                                  f'sha256 {entry["sha256"][:16]}...',
                                  'restore the file from git (git checkout -- <file>; git lfs pull where it is '
                                  'stored with LFS) or train the run again (--overwrite)')
        ckpt = torch.load(src, map_location='cpu', weights_only=True)
        full = cast_floats(dict(ckpt['state_dict']), torch.float32)
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = out.with_suffix(f'.{os.getpid()}.part')
        torch.save({'state_dict': full, 'meta': dict(ckpt.get('meta') or {}, committed_weights=entry['sha256'])},
                   tmp)
        os.replace(tmp, out)
        return out

    def save(self, record: dict, config_text: str, log_path: Union[None, Path, Sequence[Path]] = None,
             overwrite: bool = False) -> Path:
        key = record['key']
        if self.load(key) is not None and not overwrite:
            raise RunExistsError(f'run {key} ({record.get("name")}) is already stored in {self.run_dir(key)}',
                                 'pass overwrite=True (CLI: --overwrite) to replace it, or delete that directory')
        d = self.run_dir(key)
        atomic_write_text(d / 'config.py', config_text)
        logs = [Path(p) for p in ([log_path] if isinstance(log_path, (str, os.PathLike)) else log_path or [])
                if Path(p).is_file()]
        if logs:                  # an interrupted run: each attempt's log, oldest first, under a header
            atomic_write_text(d / 'train.log', ''.join(
                (ATTEMPT_HEADER.format(number=i + 1, count=len(logs), name=p.name) if len(logs) > 1 else '')
                + p.read_text(errors='replace') for i, p in enumerate(logs)))
        atomic_write_text(d / 'run.json', json.dumps(record, indent=2, sort_keys=True) + '\n')
        return d

    def logged_attempts(self, key: str) -> List[tuple]:
        """The stored ``train.log`` of run ``key`` as ``(log name, text)`` per training process, oldest first
        (:meth:`save` writes each attempt's log under :data:`ATTEMPT_HEADER`); one entry, named ``train.log``,
        for a run that trained in one go; none where no log is stored."""
        path = self.run_dir(key) / 'train.log'
        if not path.is_file():
            return []
        text = path.read_text(errors='replace')
        heads = list(ATTEMPT_HEADER_LINE.finditer(text))
        if not heads:
            return [('train.log', text)]
        return [(h.group(3), text[h.end():heads[i + 1].start() if i + 1 < len(heads) else len(text)])
                for i, h in enumerate(heads)]

    def inputs(self, keys: Sequence[str]) -> dict:
        """The stored runs ``keys`` (a run's teachers, its earlier stage) as they are now: name, when they were
        trained, mAP and a digest of their checkpoint. A run records this of its inputs when it starts
        (``built_from`` in its record), so that it still says which build it was distilled from when one of them
        is trained again later (:meth:`rebuilt_inputs`)."""
        out = {}
        for key in keys:
            rec = self.load(key)
            if rec is not None:
                out[key] = {'name': rec.get('name'), 'started': rec.get('started'),
                            'mAP': (rec.get('metrics') or {}).get('mAP'),
                            'checkpoint_sha256': file_digest(rec.get('checkpoint'))}
        return out

    def rebuilt_inputs(self, record: dict) -> List[dict]:
        """The inputs of ``record`` (its ``needs``) that were trained again after it used them: each as
        ``{key, name, mAP_then, mAP_now}``. A run records its inputs when it starts (``built_from``); for a
        run stored before that, an input whose record started after the run did was rebuilt, and its
        ``previous_metrics`` are the build the run saw."""
        out = []
        for key in record.get('needs') or ():
            now = self.load(key)
            if now is None:
                continue
            then = (record.get('built_from') or {}).get(key)
            if then is not None:
                rebuilt, mAP_then = then.get('started') != now.get('started'), then.get('mAP')
            else:
                rebuilt = str(now.get('started') or '') > str(record.get('started') or '')
                mAP_then = (now.get('previous_metrics') or {}).get('mAP')
            if rebuilt:
                out.append({'key': key, 'name': now.get('name'), 'mAP_then': mAP_then,
                            'mAP_now': (now.get('metrics') or {}).get('mAP')})
        return out

    def __iter__(self) -> Iterator[dict]:
        if not self.root.is_dir():
            return
        for d in sorted(self.root.iterdir()):
            rec = self.load(d.name)
            if rec is not None:
                yield rec
