"""Train and evaluate one mmengine config, and store the result with its provenance.

A run's identity (its *key*) is the hash of its resolved config with machine-specific paths normalised:
the same detector, data and seed give the same key on every machine, so a teacher or baseline shared by
several table rows is trained once. An interrupted run resumes from its last checkpoint.
"""
from __future__ import annotations

import contextlib
import copy
import datetime as _dt
import hashlib
import itertools
import logging
import os
import platform
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Dict, List, Optional

from kdlab.engine.store import RunStore, file_digest, repo_root

#: Config keys that change how a run is executed, not what it computes: left out of the key.
RUNTIME_KEYS = ('work_dir', 'resume', 'log_level', 'launcher')

#: Validate every epoch at run time (the run's learning curve, ``record['curve']``) whatever the config's
#: ``val_interval``; the weights do not change (tests/test_learning_curve.py), so neither does the key.
VALIDATE_EVERY_EPOCH = True

#: kdlab's metric names -> the keys mmdet's CocoMetric reports (bbox).
COCO_KEYS = {'mAP': 'bbox_mAP', 'AP50': 'bbox_mAP_50', 'AP75': 'bbox_mAP_75', 'APs': 'bbox_mAP_s',
             'APm': 'bbox_mAP_m', 'APl': 'bbox_mAP_l', 'mAR': 'bbox_AR@100', 'ARs': 'bbox_AR_s@1000',
             'ARm': 'bbox_AR_m@1000', 'ARl': 'bbox_AR_l@1000'}
METRICS = tuple(COCO_KEYS)


def _normalised_text(cfg) -> str:
    data = copy.deepcopy(cfg.to_dict())
    for k in RUNTIME_KEYS:
        data.pop(k, None)
    model = data.get('model', {})
    if isinstance(model, dict) and model.get('teacher_ckpt'):
        # a teacher checkpoint is identified by the run that made it, not by where it lies
        model['teacher_ckpt'] = data.get('teacher_run') or os.path.basename(str(model['teacher_ckpt']))
    if data.get('load_from'):    # a given checkpoint: by its file name (or URL's), not by its folder
        data['load_from'] = os.path.basename(str(data['load_from']))
    text = repr(sorted(_flatten(data).items()))
    root = data.get('data_root')
    if root:
        text = text.replace(str(root).rstrip('/'), '<data>/' + Path(str(root)).name)
    return text


def _flatten(node, prefix='') -> Dict[str, object]:
    if isinstance(node, dict):
        out = {}
        for k, v in node.items():
            out.update(_flatten(v, f'{prefix}{k}.'))
        return out
    if isinstance(node, (list, tuple)):
        out = {}
        for i, v in enumerate(node):
            out.update(_flatten(v, f'{prefix}{i}.'))
        return out or {prefix: '[]'}
    return {prefix: repr(node)}


def run_key(cfg) -> str:
    """Content address of a run: resolved config (machine paths normalised) + data + seed."""
    return hashlib.sha256(_normalised_text(cfg).encode()).hexdigest()[:16]


def _git_revision() -> Dict[str, object]:
    root = repo_root()
    try:
        rev = subprocess.run(['git', 'rev-parse', 'HEAD'], cwd=root, capture_output=True, text=True,
                             timeout=10).stdout.strip()
        # a notebook holds no logic (it calls kdlab): one opened or edited in JupyterLab does not make a run dirty
        dirty = bool(subprocess.run(['git', 'status', '--porcelain', '--untracked-files=no', '--', '.',
                                     ':(exclude)notebooks/*.ipynb'], cwd=root,
                                    capture_output=True, text=True, timeout=10).stdout.strip())
        return {'revision': rev or None, 'dirty': dirty}
    except (OSError, subprocess.SubprocessError):
        return {'revision': None, 'dirty': None}


def machine() -> dict:
    """What computes a run here, as its provenance says it (:data:`COMPUTE_FIELDS`): the package versions, which
    implementation serves mmcv's compiled ops, the device, the CPU and the vector kernels ATen chose. A park
    (:mod:`kdlab.engine.park`) stores it too, so a run resumed on another machine says where each part ran."""
    import mmcv
    import mmdet
    import mmengine
    import mmrazor
    import numpy
    import torch
    from kdlab import ops
    device = 'cuda' if torch.cuda.is_available() else 'cpu'
    return {
        'packages': {'torch': torch.__version__, 'mmcv': mmcv.__version__, 'mmengine': mmengine.__version__,
                     'mmdet': mmdet.__version__, 'mmrazor': mmrazor.__version__, 'numpy': numpy.__version__,
                     'python': platform.python_version()},
        'mmcv_ops': ops.backend(),   # which implementation served mmcv's compiled ops (kdlab.ops)
        'device': device,
        'device_name': torch.cuda.get_device_name(0) if device == 'cuda' else platform.processor() or 'cpu',
        'cpu': _cpu_model(),
        'cpu_capability': torch.backends.cpu.get_cpu_capability(),   # the vector kernels ATen chose
    }


def provenance(cfg, world_size: int = 1, git: Optional[dict] = None) -> dict:
    """What made the run: code revision, package versions, seed, device, GPUs x images per GPU (:func:`machine`).
    ``git``: the revision when the run started (:func:`_execute` reads it then); a revision committed while the
    run trained is said beside it (``revision_at_end``), since the code that ran is the one the run started with."""
    import torch
    return {
        'git': _revision_since(git),
        **machine(),
        'seed': cfg.get('randomness', {}).get('seed'),
        'cpu_threads': torch.get_num_threads(),
        'world_size': world_size,
        'images_per_gpu': cfg.train_dataloader.get('batch_size'),
        'host': platform.node(),
    }


#: The provenance fields that decide how a run computes on its machine (:func:`machine`): another CPU model or
#: another vector-kernel set (``cpu_capability``: AVX2, AVX512, ...) rounds differently, and the difference grows
#: during training; so do other package versions.
COMPUTE_FIELDS = ('cpu', 'cpu_capability', 'device_name', 'packages', 'mmcv_ops')


def machine_differences(stored: dict, here: dict) -> List[str]:
    """How the machine (and stack) of the run ``here`` differs from the one of ``stored``, both run provenances
    (:func:`provenance`) or :func:`machine`, one phrase per difference, e.g. ``'cpu_capability AVX2 -> AVX512'``;
    empty when they compute alike. Same config, same seed and same inputs give the same numbers only where this is
    empty (measured across two CPUs: README, ``make demo``; :data:`kdlab.demo.FIRST_EPOCHS`)."""
    out = []
    for field in COMPUTE_FIELDS:
        a, b = stored.get(field), here.get(field)
        if field == 'packages':
            out += [f'{name} {(a or {}).get(name)} -> {(b or {}).get(name)}'
                    for name in sorted(set(a or {}) | set(b or {})) if (a or {}).get(name) != (b or {}).get(name)]
        elif a != b:
            out.append(f'{field} {a} -> {b}')
    return out


def _revision_since(started: Optional[dict]) -> dict:
    now = _git_revision()
    if started is None:
        return now
    if now.get('revision') != started.get('revision'):
        return dict(started, revision_at_end=now.get('revision'))
    return started


def _cpu_model() -> str:
    """The CPU's model name (/proc/cpuinfo), or what platform says: CPU runs of one key can differ between
    machines (README), and this is where to look first."""
    try:
        for line in Path('/proc/cpuinfo').read_text().splitlines():
            if line.startswith('model name'):
                return line.split(':', 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def coco_metrics(raw: Dict[str, float]) -> Dict[str, Optional[float]]:
    """mmdet's ``coco/bbox_*`` fractions -> kdlab's metric names in percent, as papers print them.

    mmdet returns no metrics at all when a model makes no detection above its score threshold (an
    untrained smoke model): COCO's AP and AR of an empty result are 0, and that is what is recorded.
    """
    if not any(k.startswith('coco/') for k in raw):
        return {name: 0.0 for name in COCO_KEYS}
    out = {}
    for name, key in COCO_KEYS.items():
        v = raw.get(f'coco/{key}')
        out[name] = None if v is None or v < 0 else round(100.0 * float(v), 1)
    return out


#: What pycocotools prints to stdout whenever a dataset or an evaluation opens an annotation file.
COCO_API_NOISE = ('loading annotations into memory...', 'Done (t=', 'creating index...', 'index created!',
                  'Loading and preparing results...', 'DONE (t=', 'Running per image evaluation...',
                  'Evaluate annotation type', 'Accumulating evaluation results...')


class _Gate:
    """A stream that forwards to ``target`` only while ``open``, and then drops the lines that start with one of
    ``drop`` (with the newline print() writes after them); everything else passes through."""

    def __init__(self, target, drop=()):
        self.target, self.open, self.drop, self._dropped = target, False, tuple(drop), False

    def write(self, text):
        if not self.open:
            return len(text)
        if self.drop and (text.startswith(self.drop) or (self._dropped and text == '\n')):
            self._dropped = text != '\n'
            return len(text)
        self._dropped = False
        return self.target.write(text)

    def __getattr__(self, name):
        return getattr(self.target, name)


@contextlib.contextmanager
def without_coco_api_noise(enabled: bool = True):
    """Drop pycocotools' stdout lines (:data:`COCO_API_NOISE`) while the block runs; everything else passes."""
    if not enabled:
        yield
        return
    gate = _Gate(sys.stdout, COCO_API_NOISE)
    gate.open = True
    old, sys.stdout = sys.stdout, gate
    try:
        yield
    finally:
        sys.stdout = old


@contextlib.contextmanager
def _console_gate():
    """While mmengine builds a runner, the console logger it creates writes to a closed gate (its file log is
    untouched); the caller opens the gate once the console handler's level is WARNING, so warnings still show."""
    gate = _Gate(sys.stdout)
    old, sys.stdout = sys.stdout, gate
    try:
        yield gate
    finally:
        sys.stdout = old
        gate.open = True


#: mmengine's own deprecation notices about its internals (logged at WARNING on every run): not for the console.
MMENGINE_NOTICES = ('"FileClient" will be deprecated in future', '"HardDiskBackend" is the alias of "LocalBackend"')


def _not_a_notice(record) -> bool:
    return not any(n in record.getMessage() for n in MMENGINE_NOTICES)


def _quiet_console(runner) -> None:
    """The runner's console shows warnings and errors only (the log file keeps everything), without mmengine's
    notices about its own deprecated internals."""
    for h in runner.logger.handlers:
        if isinstance(h, logging.StreamHandler) and not isinstance(h, logging.FileHandler):
            h.setLevel(logging.WARNING)
            if _not_a_notice not in h.filters:
                h.addFilter(_not_a_notice)


def _rank() -> int:
    """This process's rank under torchrun / slurm (0 when not launched as one of several)."""
    return int(os.environ.get('RANK', os.environ.get('SLURM_PROCID', '0')) or 0)


def execute(cfg, *, name: str, store: Optional[RunStore] = None, progress: bool = True,
            overwrite: bool = False, extra: Optional[dict] = None, key: Optional[str] = None,
            resume: bool = True, launcher: Optional[str] = None, inputs: Optional[RunStore] = None) -> dict:
    """Train ``cfg``, evaluate it on its test split, store and return the run record.

    A finished run with the same key is returned from the store without training (unless ``overwrite``).
    An unfinished one resumes from the last checkpoint in its work directory (``resume=False``: its
    checkpoints are discarded and it starts again). ``key``: the run's key when the planner computed it on
    the config before its ``<run:KEY>`` references were resolved. ``inputs``: the store that holds the runs it
    was built from (its teacher's record, read by the teacher gate), where that is not ``store`` (``kdlab demo``
    trains a stored run again into a scratch store). ``launcher``: ``'pytorch'`` (torchrun) or
    ``'slurm'`` when this process is one of several; every process trains, rank 0 stores. Two processes that
    execute the same key (``kdlab reproduce -j N``) take turns: the second finds the run stored.
    """
    store = store or RunStore()
    key = key or run_key(cfg)
    if not overwrite:
        cached = store.load(key)
        if cached is not None:
            return cached
    if launcher not in (None, 'none') or _rank() != 0:   # ranks share one run: no lock across them
        return _execute(cfg, name=name, store=store, progress=progress, overwrite=overwrite, extra=extra,
                        key=key, resume=resume, launcher=launcher, inputs=inputs or store)
    with store.lock(key):
        if not overwrite:
            cached = store.load(key)              # finished by another process while this one waited
            if cached is not None:
                return cached
            if resume:                            # parked on another machine (kdlab park): resume from there
                from kdlab.engine.park import unpark
                unpark(store, key)
        return _execute(cfg, name=name, store=store, progress=progress, overwrite=overwrite, extra=extra,
                        key=key, resume=resume, launcher=launcher, inputs=inputs or store)


#: Runners built in this process (:func:`_execute`: each run's experiment name is its key and this count).
_RUNNERS = itertools.count(1)

#: A run's config is written (its stored copy, the work directory's dump, the checkpoint's meta) in mmengine's
#: unformatted layout, ``Config(format_python_code=False)``: the same content, one key per line, in 1 ms instead
#: of the 0.7 s yapf takes for a distillation config (a third of a smoke-scale run; ``python -m benchmarks
#: smoke_runs``). True: yapf's layout, as mmengine writes by default.
FORMAT_RUN_CONFIG = False


#: How mmengine names an attempt's log folder and file (``<start>/<start>.log``): its start, local time, to the second.
LOG_NAME_FORMAT = '%Y%m%d_%H%M%S'


def _new_log_second(work_dir: Path) -> None:
    """Wait until no log of an earlier attempt in ``work_dir`` carries this second's name. mmengine names an
    attempt's log by its start, to the second (``<start>/<start>.log``, local time, and opens it for writing):
    an attempt that started in the same second as the one before it (a smoke run stopped after its first epoch
    and resumed from its park at once) would overwrite that log, and :func:`training_attempts` would count one
    attempt where there were two."""
    while (Path(work_dir) / time.strftime(LOG_NAME_FORMAT, time.localtime())).exists():
        time.sleep(0.05)


def _execute(cfg, *, name, store, progress, overwrite, extra, key, resume, launcher, inputs) -> dict:
    from mmengine.runner import Runner
    from mmengine.utils import import_modules_from_strings
    import kdlab.models  # noqa: F401  (registers kdlab's mmrazor components for any config)
    from kdlab.engine.hooks import (DivergenceHook, EpochSeedHook, LearningCurveHook, ProgressBarHook,
                                    RunChecksHook, SafeCheckpointHook, StudentInitHook, TeacherValidatedOnceHook)
    from kdlab.errors import RunDivergedError

    cfg = copy.deepcopy(cfg)
    object.__setattr__(cfg, '_format_python_code', FORMAT_RUN_CONFIG)   # as Config.__init__ sets it
    if cfg.get('custom_imports'):
        import_modules_from_strings(**cfg.custom_imports)
    work_dir = store.work_dir(key)
    if (overwrite or not resume) and _rank() == 0 and work_dir.is_dir():
        import shutil
        shutil.rmtree(work_dir)              # start again: an old partial run's checkpoints would be resumed
    cfg.work_dir = str(work_dir)
    cfg.resume = (work_dir / 'last_checkpoint').is_file() and resume and not overwrite
    from kdlab.engine.launch import process_launcher
    if launcher not in (None, 'none') and process_launcher(cfg, launcher) is not None:
        cfg.launcher = launcher
        import torch
        if not torch.cuda.is_available():    # CPU processes talk over gloo (nccl needs GPUs)
            cfg.env_cfg['dist_cfg'] = dict(backend='gloo')
    stored_text = cfg.pretty_text            # the run's config as planned (its key), stored beside the record
    # mmengine names a runner's logger, message hub and visualizer by its start time, to the second: two runners
    # built in one process within a second (smoke runs take about one) would share them, the second writing its
    # log into the first's file and reading the first's message hub. A name of the run's own keeps them apart.
    cfg.experiment_name = f'{key}-{next(_RUNNERS)}'
    if cfg.get('kdlab_released') and cfg.get('load_from'):
        from kdlab.zoo.released import local_or_url
        cfg.load_from = local_or_url(cfg.load_from)    # a released checkpoint from the local mirror, if it has it
    from kdlab.zoo.released import checkpoint_dir, stage_backbone_weights
    if checkpoint_dir() is not None:                   # the ImageNet weights too, where mmengine looks for them
        stage_backbone_weights(cfg.model)
    if VALIDATE_EVERY_EPOCH and (cfg.get('train_cfg') or {}).get('type') == 'EpochBasedTrainLoop':
        cfg.train_cfg['val_interval'] = 1    # a learning curve: the weights do not change (LearningCurveHook)
    _new_log_second(work_dir)
    started = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec='seconds')
    revision = _git_revision()               # the code this run starts with (provenance)
    t0 = time.time()
    if progress:     # mmengine's environment and config dump go to the run's log file, not the console
        with _console_gate() as gate:
            runner = Runner.from_cfg(cfg)
            _quiet_console(runner)
            gate.open = True
    else:
        runner = Runner.from_cfg(cfg)
    runner.register_hook(EpochSeedHook(runner.seed), priority='VERY_HIGH')
    curve_hook = LearningCurveHook(work_dir / 'curve.json')
    runner.register_hook(curve_hook, priority='LOW')
    checks_hook = RunChecksHook(work_dir / 'checks.json')
    runner.register_hook(checks_hook)
    runner.register_hook(DivergenceHook())
    runner.register_hook(TeacherValidatedOnceHook())
    safe_checkpoints = SafeCheckpointHook()
    runner.register_hook(safe_checkpoints)
    gate = _teacher_gate(cfg, inputs)
    if gate is not None:
        runner.register_hook(gate, priority='VERY_HIGH')
    if cfg.get('kdlab_student_init') == 'baseline':
        runner.register_hook(StudentInitHook(runner.seed), priority='VERY_HIGH')
    if progress:     # the console was quieted when the runner was built (above)
        runner.register_hook(ProgressBarHook(desc=name), priority='VERY_LOW')
    provided = bool(cfg.get('kdlab_provided'))
    last = work_dir / 'last_checkpoint'
    if not provided:
        try:
            with without_coco_api_noise(progress):
                runner.train()
        except RunDivergedError as err:
            if runner.rank == 0:    # said in the store (never over a finished record: that one is returned first)
                store.save({'key': key, 'name': name, 'status': 'diverged', 'started': started,
                            'diverged': {'iteration': err.iteration, 'epoch': err.epoch, 'terms': err.terms},
                            'last_good_checkpoint': last.read_text().strip() if last.is_file() else None,
                            'work_dir': str(work_dir), 'wall_time_s': round(time.time() - t0, 1),
                            'checks': checks_hook.read(),
                            'provenance': provenance(cfg, runner.world_size, git=revision),
                            **(extra or {})}, stored_text, log_path=[a['log'] for a in training_attempts(work_dir)])
            raise
    raw = None if provided else final_validation(cfg, runner, curve_hook)
    if raw is None:
        with without_coco_api_noise(progress):
            raw = runner.test()      # a given checkpoint (``kdlab_provided``): mmengine loads ``load_from`` first
    released = cfg.get('kdlab_released')
    if provided and released and released.get('box_AP') is not None:
        _released_gate(released, coco_metrics(raw).get('mAP'), cfg.load_from)
    wall = time.time() - t0
    checkpoint = cfg.load_from if provided else (last.read_text().strip() if last.is_file() else None)
    record = {
        'key': key, 'name': name, 'status': 'finished',
        'metrics': coco_metrics(raw), 'no_detections': not raw, 'raw_metrics': {k: float(v) for k, v in raw.items()},
        'checkpoint': checkpoint, 'checkpoint_sha256': file_digest(checkpoint),
        'work_dir': str(work_dir), 'resumed': bool(cfg.resume),
        'started': started, 'wall_time_s': round(wall, 1),
        'provenance': provenance(cfg, world_size=runner.world_size, git=revision),
        **(extra or {}),
    }
    checks = checks_hook.read()
    if gate is not None and gate.result:
        checks['teacher_gate'] = gate.result
    if safe_checkpoints.recreated:
        checks['work_dir_recreated'] = safe_checkpoints.recreated
    if checks:                   # kdlab.engine.hooks.RunChecksHook: teacher frozen, distillation active, lr x batch
        record['checks'] = checks
        failed = [name for name, c in checks.items() if isinstance(c, dict) and c.get('ok') is False]
        if failed:
            record['checks_failed'] = failed
    curve = curve_hook.read()
    if curve:                    # per-epoch validation metrics (student; teacher in a distillation run)
        record['curve'] = curve
    teacher_input = (cfg.get('kdlab_method') or {}).get('teacher_input')
    if teacher_input:            # kdlab.methods.preprocessing: what the teacher saw
        record['notes'] = [teacher_input]
    attempts = training_attempts(work_dir)
    if len(attempts) > 1:        # interrupted before: the earlier processes' time counts too
        record['attempts'] = len(attempts)
        record['wall_time_total_s'] = round(sum(a['seconds'] for a in attempts[:-1]) + wall, 1)
    from kdlab.engine import park as parking
    parks = parking.history(work_dir)
    if parks:                    # resumed on another machine from a park (rounded once: kdlab.engine.park)
        record['parked'] = parks
    if runner.rank == 0:
        store.save(record, stored_text, log_path=[a['log'] for a in attempts], overwrite=overwrite)
        parking.discard(store, key)
    return record


def final_validation(cfg, runner, curve_hook) -> Optional[dict]:
    """The student's metrics of the validation this process ran after the last epoch, where the test split is the
    validation split (the same dataloader and evaluator config, as in the mini configs and COCO's val2017):
    the trained weights evaluated on the same data as :meth:`Runner.test` would, so the run is not evaluated
    twice. None where the test differs, or this process did not validate the final weights (a run resumed
    after its last validation): then the run is tested."""
    last = curve_hook.last
    if not last or last['epoch'] != runner.max_epochs or runner.epoch != runner.max_epochs:
        return None
    if cfg.get('val_dataloader') != cfg.get('test_dataloader') or cfg.get('val_evaluator') != cfg.get('test_evaluator'):
        return None
    return {k: v for k, v in last['metrics'].items() if not k.startswith('teacher.')}


#: mAP a distillation run's teacher may score away from its reference when its weights had to be evaluated
TEACHER_GATE_TOLERANCE = 0.5


def _released_gate(released: dict, measured: Optional[float], where: str) -> None:
    """A released teacher must score its model zoo's box AP on the data it is evaluated on (nothing is stored
    otherwise): a wrong data root or split, or a damaged download, would make every row distil from another
    teacher than the paper's."""
    from kdlab.errors import TeacherGateError
    zoo = float(released['box_AP'])
    if measured is None or abs(measured - zoo) > TEACHER_GATE_TOLERANCE:
        raise TeacherGateError(
            f"the released teacher {released['name']} ({where}) scores {measured} mAP here; the model zoo reports "
            f"{zoo} ({released.get('metafile')}), tolerance {TEACHER_GATE_TOLERANCE}",
            'evaluate it on COCO val2017 (check --data-root: annotations/instances_val2017.json and val2017/), and '
            f"check the file against its hash prefix {released.get('hash')} (sha256sum); nothing was stored")


def _teacher_gate(cfg, store):
    """The teacher gate of a distillation run whose teacher is a stored run (``teacher_run``), else None: the
    teacher must be that run's checkpoint (its stored evaluation reused when the file's digest is the one stored
    with it), or score that run's mAP."""
    from kdlab.engine.hooks import TeacherGateHook
    key = cfg.get('teacher_run')
    record = store.load(key) if key else None
    ref = ((record or {}).get('metrics') or {}).get('mAP')
    if ref is None or not record.get('checkpoint'):
        return None
    return TeacherGateHook(record.get('name', key), str(record['checkpoint']), ref, TEACHER_GATE_TOLERANCE,
                           digest=record.get('checkpoint_sha256'))


#: The time an mmengine log line starts with (local time, as the log's name): ``2026/12/06 19:52:21 - mmengine``.
LOG_LINE_TIME = re.compile(rb'^(\d{4}/\d\d/\d\d \d\d:\d\d:\d\d) - ', re.M)


def last_logged(log: Path) -> float:
    """When ``log`` was last written to, from the time of its last line. A log restored from a park
    (:mod:`kdlab.engine.park`) or checked out by git has the copy's modification time, not the process's: an
    attempt parked at 19:52 and restored the next morning would count the night. The file's modification time
    only where no line carries a time."""
    with open(log, 'rb') as f:
        f.seek(max(0, f.seek(0, os.SEEK_END) - 65536))
        last = last_line_time(f.read())
    return log.stat().st_mtime if last is None else last


def last_line_time(text: bytes) -> Optional[float]:
    """The time of the last line of an mmengine log that carries one (:data:`LOG_LINE_TIME`), None if none does."""
    stamps = LOG_LINE_TIME.findall(text)
    return time.mktime(time.strptime(stamps[-1].decode(), '%Y/%m/%d %H:%M:%S')) if stamps else None


def log_started(name: str) -> Optional[float]:
    """When the process that wrote the mmengine log ``name`` (``<start>.log``, local time) started."""
    try:
        return time.mktime(time.strptime(Path(name).stem, LOG_NAME_FORMAT))
    except ValueError:
        return None


def stored_attempts(store: RunStore, key: str) -> List[dict]:
    """:func:`training_attempts` of a stored run, read from its stored ``train.log``
    (:meth:`RunStore.logged_attempts`) where its work directory is not on this machine: each attempt's log name,
    start and seconds to its last timed line."""
    out = []
    for name, text in store.logged_attempts(key):
        start = log_started(name)
        end = last_line_time(text.encode())
        if start is not None:
            out.append(dict(log=name, started=start, seconds=max(0.0, (end or start) - start)))
    return out


def training_attempts(work_dir: Path) -> List[dict]:
    """Every process that trained in ``work_dir``, oldest first: its mmengine log (``<start>/<start>.log``,
    the start in local time), the start and the seconds to the log's last line (the end, or the kill)."""
    out = []
    for log in work_dir.glob('*/*.log'):
        start = log_started(log.name)
        if start is None:
            continue
        out.append(dict(log=log, started=start, seconds=max(0.0, last_logged(log) - start)))
    return sorted(out, key=lambda a: a['started'])


#: An mmengine training log line: ``Epoch(train)  [8][20/60]  lr: ...  eta: 3:15:50  time: ...``.
TRAIN_LOG_LINE = re.compile(r'Epoch\(train\)\s*\[(\d+)\]\[\s*(\d+)/(\d+)\].*?eta: ((?:\d+ days?, )?\S+)')


def training_progress(work_dir: Path) -> Optional[dict]:
    """Where the run training in ``work_dir`` is, from its latest attempt's mmengine log (:func:`training_attempts`):
    ``epoch``, ``iter``, ``iters`` (per epoch), ``eta`` (mmengine's estimate) and ``updated`` (the log's
    mtime); None before its first logged iteration."""
    attempts = training_attempts(Path(work_dir))
    if not attempts:
        return None
    log = attempts[-1]['log']
    stat = log.stat()
    with open(log, 'rb') as f:
        f.seek(max(0, stat.st_size - 16384))
        hits = TRAIN_LOG_LINE.findall(f.read().decode(errors='replace'))
    if not hits:
        return None
    epoch, it, iters, eta = hits[-1]
    return dict(epoch=int(epoch), iter=int(it), iters=int(iters), eta=eta, updated=stat.st_mtime)


def wall_time(record: dict) -> float:
    """Seconds a stored run took, every attempt of an interrupted run included."""
    return float(record.get('wall_time_total_s', record.get('wall_time_s') or 0.0))
