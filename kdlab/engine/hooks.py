"""mmengine hooks kdlab adds at run time (not part of a run's config, so not of its key)."""
from __future__ import annotations

from mmengine.hooks import Hook


class ProgressBarHook(Hook):
    """A tqdm bar over all training iterations, with the current loss; a second bar while testing."""

    priority = 'VERY_LOW'

    def __init__(self, desc: str = 'train'):
        self.desc = desc
        self._bar = None

    def before_train(self, runner) -> None:
        from kdlab.progress import progress_bar
        self._bar = progress_bar(total=runner.max_iters, initial=runner.iter, desc=self.desc, unit='it',
                                 dynamic_ncols=True, leave=False)

    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None) -> None:
        if self._bar is not None:
            if outputs and 'loss' in outputs:      # shown at the next redraw (kdlab.progress: how often)
                loss = outputs['loss']
                loss = loss.detach() if hasattr(loss, 'detach') else loss   # a float, not a graph node
                self._bar.set_postfix(loss=f'{float(loss):.3f}', epoch=runner.epoch + 1, refresh=False)
            self._bar.update(1)

    def after_train(self, runner) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None

    def before_test(self, runner) -> None:
        from kdlab.progress import progress_bar
        self._bar = progress_bar(total=len(runner.test_dataloader), desc=f'{self.desc} eval', unit='batch',
                                 dynamic_ncols=True, leave=False)

    def after_test_iter(self, runner, batch_idx, data_batch=None, outputs=None) -> None:
        if self._bar is not None:
            self._bar.update(1)

    def after_test(self, runner) -> None:
        self.after_train(runner)


class EpochSeedHook(Hook):
    """Re-seed python, numpy and torch at the start of every epoch with ``seed + epoch``.

    mmengine seeds once, when the runner is built, and does not checkpoint the random state, so a run
    resumed at epoch k would draw different augmentations than the uninterrupted run. Seeding per epoch
    makes "interrupted + resumed" and "uninterrupted" the same computation (on CPU, deterministically).
    """

    priority = 'VERY_HIGH'

    def __init__(self, seed: int):
        self.seed = int(seed)

    def before_train_epoch(self, runner) -> None:
        from mmengine.runner.utils import set_random_seed
        set_random_seed(self.seed + runner.epoch)


class LearningCurveHook(Hook):
    """After every validation, append the epoch's COCO metrics (the student's and, in a distillation run, the
    teacher's: mmrazor's ``teacher.coco/...``) to ``<work_dir>/curve.json``.

    The file outlives an interruption: a resumed run keeps the epochs validated before (an epoch validated
    again replaces its entry). Validation does not change the trained weights (``EpochSeedHook`` re-seeds every
    epoch), so kdlab validates every epoch at run time without changing the run's config or key.
    """

    priority = 'LOW'

    def __init__(self, path):
        from pathlib import Path
        self.path = Path(path)
        self.last: dict = {}      # this process's latest validation: {'epoch': n, 'metrics': mmengine's dict}

    def read(self) -> list:
        import json
        return json.loads(self.path.read_text()) if self.path.is_file() else []

    def before_train(self, runner) -> None:
        """A run killed between its checkpoint and its validation resumes after that epoch: validate the
        resumed weights (those of the end of the epoch) so that the curve has no hole."""
        if runner.epoch > 0 and runner.epoch not in {e['epoch'] for e in self.read()}:
            if getattr(runner, '_val_loop', None) is not None:
                runner.val_loop.run()

    def after_val_epoch(self, runner, metrics=None) -> None:
        import json
        from kdlab.engine.runner import coco_metrics
        metrics = dict(metrics or {})     # none at all: no detection above the threshold (0, as the record says)
        self.last = {'epoch': int(runner.epoch), 'metrics': metrics}   # every rank: they decide alike to test or not
        if runner.rank != 0:
            return
        entry = {'epoch': int(runner.epoch), **coco_metrics(metrics)}
        teacher = {k[len('teacher.'):]: v for k, v in metrics.items() if k.startswith('teacher.')}
        if teacher:
            entry['teacher'] = coco_metrics(teacher)
        curve = [e for e in self.read() if e['epoch'] != entry['epoch']] + [entry]
        from kdlab.engine.store import atomic_write_text   # an interruption never leaves half a file
        atomic_write_text(self.path, json.dumps(sorted(curve, key=lambda e: e['epoch']), indent=1))


class TeacherValidatedOnceHook(Hook):
    """A distillation run validates its frozen teacher once per process, not at every epoch.

    mmrazor's ``SingleTeacherDistillValLoop`` evaluates the student and then the teacher at every validation. A
    teacher that is not trainable (``teacher_trainable=False``, every method of kdlab; :class:`RunChecksHook`
    checks that its weights end as they started) scores the same at every epoch, so the loop's first teacher
    metrics are reported again at the later validations: the same curve (``teacher.coco/...`` at every epoch),
    and about a tenth of a mini-v2 PKD run's time less (per epoch: 80 s of training, 12 s for each model's
    validation, RetinaNet-R50 <- X101 on one core). A trainable teacher is evaluated every time, as mmrazor does.
    """

    priority = 'VERY_HIGH'

    def before_train(self, runner) -> None:
        import types
        from mmrazor.engine.runner.distill_val_loop import SingleTeacherDistillValLoop
        loop = getattr(runner, '_val_loop', None)
        if type(loop) is SingleTeacherDistillValLoop and not getattr(_unwrap(runner.model), 'teacher_trainable',
                                                                     True):
            loop.run = types.MethodType(_validate_teacher_once, loop)


def _validate_teacher_once(loop) -> None:
    """``SingleTeacherDistillValLoop.run`` (mmrazor 1.0.0) with the teacher's metrics computed at its first call."""
    runner = loop.runner
    runner.call_hook('before_val')
    runner.call_hook('before_val_epoch')
    runner.model.eval()
    for idx, data_batch in enumerate(loop.dataloader):
        loop.run_iter(idx, data_batch)
    metrics = loop.evaluator.evaluate(len(loop.dataloader.dataset))
    teacher = getattr(loop, 'kdlab_teacher_metrics', None)
    if teacher is None:
        runner.call_hook('before_val_epoch')
        for idx, data_batch in enumerate(loop.dataloader):
            loop.run_iter_teacher(idx, data_batch)
        teacher = loop.kdlab_teacher_metrics = dict(loop.evaluator.evaluate(len(loop.dataloader.dataset)))
    metrics.update({f'teacher.{k}': v for k, v in teacher.items()})
    runner.call_hook('after_val_epoch', metrics=metrics)
    runner.call_hook('after_val')


def _unwrap(model):
    from kdlab.models.wrapped import unwrapped
    return unwrapped(model)


def weights_digest(module) -> str:
    """sha256 of a module's parameters and buffers (names, shapes and values): equal digests, equal weights."""
    import hashlib
    import torch
    h = hashlib.sha256()
    for name, tensor in sorted(module.state_dict().items()):
        t = tensor.detach().cpu().contiguous()
        h.update(f'{name}:{tuple(t.shape)}:{t.dtype}'.encode())
        h.update((t.float() if t.dtype == torch.bfloat16 else t).numpy().tobytes())   # numpy has no bfloat16
    return h.hexdigest()


class RunChecksHook(Hook):
    """The safeguards every run performs, written to ``<work_dir>/checks.json`` (the record's ``checks``).

    * ``lr_batch`` (every run): the run's total batch (processes x images per process), the base batch its
      config's learning rate was set for (``auto_scale_lr.base_batch_size``), whether mmengine scaled it and
      the learning rate the optimizer started from;
    * ``teacher_frozen`` (a distillation run): the digest of the teacher's weights and buffers when training
      starts and when it ends; they must be equal (a teacher updated by the optimizer, or BatchNorm statistics
      drifting in train mode, are the silent failures this catches);
    * ``distillation_active`` (a distillation run, first iteration): every distillation loss is finite, their
      sum is not zero and its gradient reaches the student's parameters (on one process; with several, DDP
      owns the backward pass and the gradient part is not checked); for a distiller with a warm-up
      (``warmup_iters``) the gradient part at the warm-up's end (``gradient_checked_at``).

    The file outlives an interruption: a resumed run keeps the first process's teacher digest and first
    iteration.
    """

    priority = 'NORMAL'

    def __init__(self, path):
        from pathlib import Path
        self.path = Path(path)
        self.handle = None
        self.wait_until = 0          # a distiller's warm-up: the iteration the gradient part waits for
        self._memory: dict = {}      # the same, should the work directory be deleted during the run

    def read(self) -> dict:
        import json
        return json.loads(self.path.read_text()) if self.path.is_file() else dict(self._memory)

    def _write(self, checks: dict) -> None:
        import json
        from kdlab.engine.store import atomic_write_text
        self._memory = dict(checks)
        atomic_write_text(self.path, json.dumps(checks, indent=1))

    def before_train(self, runner) -> None:
        if runner.rank != 0:
            return
        checks = self.read()
        model = _unwrap(runner.model)
        cfg = runner.cfg
        scale = dict(cfg.get('auto_scale_lr') or {})
        images = cfg.train_dataloader.get('batch_size')
        wrapper = runner.optim_wrapper
        groups = wrapper.param_groups if hasattr(wrapper, 'param_groups') else None
        if isinstance(groups, dict) or groups is None:   # an OptimWrapperDict (ICD: one optimizer per part)
            groups = [g for w in wrapper.values() for g in w.param_groups]
        checks.setdefault('lr_batch', dict(
            batch=runner.world_size * images, processes=runner.world_size, images_per_process=images,
            base_batch=scale.get('base_batch_size'), auto_scale_lr=bool(scale.get('enable', False)),
            lr=float(groups[0].get('initial_lr', groups[0]['lr']))))
        teacher = getattr(model, 'teacher', None)
        if teacher is not None:
            frozen = checks.setdefault('teacher_frozen', {})
            frozen.setdefault('before', weights_digest(teacher))
            active = checks.get('distillation_active')
            pending = active is not None and active.get('gradient_pending')    # resumed within a warm-up
            if pending:
                self.wait_until = int(active['gradient_checked_at'])
            if (active is None or pending) and self.handle is None:
                self.handle = model.register_forward_hook(self._first_iteration(runner, model))
        self._write(checks)

    def _first_iteration(self, runner, model):
        """The check at the first iteration. A distiller whose loss reaches the student only after a warm-up
        (``distiller.warmup_iters``: ICD's 1000 iterations) has its losses checked at the first iteration (the
        loss-scale table reads them there) and the gradient part at the warm-up's end (``gradient_checked_at``;
        ``gradient_pending`` until then)."""
        def hook(module, args, output):
            import math
            import torch
            if not isinstance(output, dict) or not module.training:
                return output
            from kdlab.models.loss_scale import DISTILL_PREFIX, loss_terms
            if runner.iter < self.wait_until:
                return output                                  # still in a warm-up: the gradient part waits
            checks = self.read()
            active = checks.get('distillation_active')
            terms = loss_terms(output, DISTILL_PREFIX)
            total = sum(terms.values()) if terms else torch.tensor(0.0)
            if active is None:
                values = {k: float(v.detach()) for k, v in terms.items()}
                value = float(total.detach())
                active = dict(iteration=int(runner.iter), losses=values, total=value,
                              finite=all(math.isfinite(v) for v in values.values()), nonzero=value != 0.0)
                warmup = int(getattr(getattr(module, 'distiller', None), 'warmup_iters', 0) or 0)
                if runner.world_size == 1 and runner.iter < warmup:
                    active.update(gradient_reaches_student=None, gradient_pending=True, gradient_checked_at=warmup)
                    self.wait_until = warmup
            if runner.iter >= self.wait_until:                 # the gradient part (after the warm-up, if any)
                student = getattr(module, 'student', None)
                if runner.world_size == 1 and student is not None and torch.is_tensor(total) and total.requires_grad:
                    params = [p for p in student.parameters() if p.requires_grad]
                    grads = torch.autograd.grad(total, params, retain_graph=True, allow_unused=True)
                    reached = sum(1 for g in grads if g is not None and bool(g.abs().sum() > 0))
                    active.update(student_tensors=len(params), student_tensors_with_gradient=reached)
                    active['gradient_reaches_student'] = reached > 0
                elif runner.world_size > 1:
                    active['gradient_reaches_student'] = None  # not checked: DDP owns the backward pass
                else:
                    active['gradient_reaches_student'] = False
                self.handle.remove()
                self.handle = None
                if active.pop('gradient_pending', False):
                    active['gradient_checked_at'] = int(runner.iter)
            active['ok'] = bool(active['finite'] and active['nonzero'] and active['gradient_reaches_student'] is not False)
            checks['distillation_active'] = active
            self._write(checks)
            if not active['ok']:
                from mmengine.logging import print_log
                print_log(f'distillation is not active at iteration {runner.iter}: {active}', logger='current',
                          level=30)
            return output
        return hook

    def after_train(self, runner) -> None:
        if runner.rank != 0:
            return
        checks = self.read()
        teacher = getattr(_unwrap(runner.model), 'teacher', None)
        if teacher is not None and 'teacher_frozen' in checks:
            frozen = checks['teacher_frozen']
            frozen['after'] = weights_digest(teacher)
            frozen['ok'] = frozen['after'] == frozen['before']
        self._write(checks)


class DivergenceHook(Hook):
    """Stop a run at the first iteration whose loss is NaN or infinite, naming the iteration and the terms.

    mmengine's own check (``CheckInvalidLossHook``) looks every 50 iterations and raises a bare assertion;
    this one looks at every iteration's logged losses (no extra computation) and raises
    :class:`kdlab.errors.RunDivergedError`. The checkpoint of the last finished epoch is untouched, so a run
    stopped here resumes from it (the runner stores a ``diverged`` record; a finished one is never replaced).
    """

    priority = 'HIGH'

    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None) -> None:
        import math
        bad = {}
        for name, value in (outputs or {}).items():
            if 'loss' not in name:
                continue
            try:
                v = float(value.detach() if hasattr(value, 'detach') else value)
            except (TypeError, ValueError):
                continue
            if not math.isfinite(v):
                bad[name] = v
        if bad:
            from kdlab.errors import RunDivergedError
            terms = ', '.join(f'{k} = {v}' for k, v in bad.items())
            raise RunDivergedError(
                f'the run diverged at iteration {runner.iter} (epoch {runner.epoch + 1}): {terms}',
                'lower the learning rate or the loss weight named above (a new run); running the same config '
                "again resumes from the last finished epoch's checkpoint, which helps only if the divergence "
                'was not deterministic', iteration=int(runner.iter), epoch=int(runner.epoch) + 1, terms=bad)


class StudentInitHook(Hook):
    """Start a distilled student from exactly the weights its baseline run starts from.

    mmrazor builds the student, then the teacher (and the distiller), and only then initialises the weights,
    so the random initialisation of the student's neck and head is drawn after the teacher's construction
    consumed random numbers: with the same seed, a distilled student does not start where its baseline does,
    and "distilled minus baseline" includes that difference. With ``kdlab_student_init = 'baseline'`` in a
    run's config (:func:`kdlab.methods.distill_config`'s ``student_init``) this hook, before any other
    before-train hook (e.g. inheriting the teacher's neck), re-draws the student's initial weights as the
    baseline run does: the run's seed, the student's detector config built alone, ``init_weights`` (which loads
    a pretrained backbone as the baseline does). A resumed run keeps its checkpoint's weights.
    """

    priority = 'VERY_HIGH'

    def __init__(self, seed: int):
        self.seed = int(seed)

    def before_train(self, runner) -> None:
        if runner.iter > 0:
            return
        from mmengine.registry import DefaultScope
        from mmengine.runner.utils import set_random_seed
        from mmrazor.registry import MODELS
        model = _unwrap(runner.model)
        student_cfg = runner.cfg.model['architecture']
        state = torch_rng_state()
        set_random_seed(self.seed)
        with DefaultScope.overwrite_default_scope('mmdet'):
            baseline = MODELS.build(student_cfg.to_dict() if hasattr(student_cfg, 'to_dict') else dict(student_cfg))
        baseline.init_weights()
        model.student.load_state_dict(baseline.state_dict())
        restore_rng_state(state)


def torch_rng_state():
    import random
    import numpy as np
    import torch
    return random.getstate(), np.random.get_state(), torch.get_rng_state()


def restore_rng_state(state) -> None:
    import random
    import numpy as np
    import torch
    random.setstate(state[0])
    np.random.set_state(state[1])
    torch.set_rng_state(state[2])


class _DeferredRemoval:
    """A file backend whose ``remove`` waits until the new checkpoint is safely written (every other call
    passes through)."""

    def __init__(self, backend):
        self._backend, self.pending = backend, []

    def remove(self, path) -> None:
        self.pending.append(path)

    def flush(self) -> None:
        for path in self.pending:
            if self._backend.isfile(path):
                self._backend.remove(path)
        self.pending = []

    def __getattr__(self, name):
        return getattr(self._backend, name)


class SafeCheckpointHook(Hook):
    """Checkpoints that survive a full disk and a deleted work directory.

    mmengine's ``CheckpointHook`` deletes the checkpoint beyond ``max_keep_ckpts`` *before* it writes the new
    one, and writes in place: with ``max_keep_ckpts=1`` (kdlab's mini configs) a write that fails (disk full)
    leaves no usable checkpoint while ``last_checkpoint`` still names the deleted one. This hook, at run time
    (not part of the config or the run key):

    * defers that deletion until the new checkpoint is written, writes it to ``<name>.part`` and renames it
      (atomic), so a failed write leaves the previous checkpoint and ``last_checkpoint`` as they were, deletes
      the partial file and raises :class:`kdlab.errors.CheckpointWriteError` naming the checkpoint to resume from;
    * re-creates the work directory (and the log and visualisation folders under it) when it was deleted
      during the run, before the next iteration writes there, and notes it in the run's checks
      (``work_dir_recreated``): the training state in memory is kept; what the folder held before is gone.
    """

    priority = 'LOWEST'      # after CheckpointHook.before_train has made its file backend

    def __init__(self):
        self._deferred = None
        self.recreated = []

    def before_train(self, runner) -> None:
        from mmengine.hooks import CheckpointHook
        for hook in runner.hooks:
            if isinstance(hook, CheckpointHook) and getattr(hook, 'file_backend', None) is not None:
                if not isinstance(hook.file_backend, _DeferredRemoval):
                    hook.file_backend = _DeferredRemoval(hook.file_backend)
                self._deferred = hook.file_backend
        original = runner.save_checkpoint
        if getattr(original, '_kdlab_safe', False):
            return

        def save_checkpoint(out_dir, filename, *args, **kwargs):
            import os
            from mmengine.dist import is_main_process
            from kdlab.errors import CheckpointWriteError
            if not is_main_process():      # only the main process writes (mmengine's save is master-only)
                result = original(out_dir, filename, *args, **kwargs)
                if self._deferred is not None:
                    self._deferred.pending = []     # the main process deletes, after its write
                return result
            self.guard(runner)
            os.makedirs(out_dir, exist_ok=True)
            final, part = os.path.join(out_dir, filename), os.path.join(out_dir, filename + '.part')
            try:
                original(out_dir, filename + '.part', *args, **kwargs)
                os.replace(part, final)
            except OSError as err:
                if os.path.exists(part):
                    os.remove(part)           # give the space back
                if self._deferred is not None:
                    self._deferred.pending = []      # the previous checkpoint stays
                last = os.path.join(runner.work_dir, 'last_checkpoint')
                previous = open(last).read().strip() if os.path.isfile(last) else None
                raise CheckpointWriteError(
                    f'writing the checkpoint {final} failed: {err.strerror or err}',
                    (f'free space (or fix the error above) and run again: it resumes from {previous}, which is '
                     'intact' if previous else 'free space (or fix the error above) and run again; no earlier '
                     'checkpoint exists, so the run starts over')) from err
            if self._deferred is not None:
                self._deferred.flush()

        save_checkpoint._kdlab_safe = True
        runner.save_checkpoint = save_checkpoint

    def guard(self, runner) -> None:
        import os
        if os.path.isdir(runner.work_dir) and os.path.isdir(runner.log_dir):
            return
        for d in (runner.work_dir, runner.log_dir, os.path.join(runner.log_dir, 'vis_data')):
            os.makedirs(d, exist_ok=True)
        from mmengine.logging import print_log
        where = dict(epoch=int(runner.epoch) + 1, iteration=int(runner.iter))
        self.recreated.append(where)
        print_log(f'the work directory {runner.work_dir} was deleted during the run; re-created at {where} '
                  '(the training state is kept; the checkpoints and logs written before are gone)',
                  logger='current', level=30)

    def before_train_iter(self, runner, batch_idx, data_batch=None) -> None:
        self.guard(runner)

    def before_val_epoch(self, runner) -> None:
        self.guard(runner)

    def before_test_epoch(self, runner) -> None:
        self.guard(runner)


def _state_of(checkpoint: str) -> dict:
    from mmengine.runner.checkpoint import _load_checkpoint
    ckpt = _load_checkpoint(checkpoint, map_location='cpu')
    return ckpt.get('state_dict', ckpt) if isinstance(ckpt, dict) else {}


def same_weights(module, checkpoint: str) -> dict:
    """Whether every parameter and buffer of ``module`` equals the checkpoint's (keys as saved, or under the
    ``architecture.`` prefix of a distillation checkpoint): ``{'equal', 'tensors', 'differ', 'missing'}``."""
    import torch
    state = _state_of(checkpoint)
    if state and not any(k in state for k in module.state_dict()):
        state = {k[len('architecture.'):]: v for k, v in state.items() if k.startswith('architecture.')}
    own = module.state_dict()
    missing = [k for k in own if k not in state]
    differ = [k for k in own if k in state and not (
        tuple(state[k].shape) == tuple(own[k].shape) and torch.equal(state[k].to(own[k].dtype).cpu(), own[k].cpu()))]
    return dict(equal=not missing and not differ, tensors=len(own), differ=differ[:5], n_differ=len(differ),
                missing=missing[:5], n_missing=len(missing))


def evaluate_teacher(runner) -> dict:
    """The teacher of a distillation run on the run's validation data, fed as it is in training (mmrazor's
    ``SingleTeacherDistillValLoop`` hands it the student's preprocessor): COCO metrics in %."""
    import torch
    from kdlab.engine.runner import coco_metrics
    model = _unwrap(runner.model)
    loop = runner.val_loop
    teacher = model.teacher
    teacher.data_preprocessor = model.data_preprocessor
    was = teacher.training
    teacher.eval()
    with torch.no_grad():
        for batch in loop.dataloader:
            loop.evaluator.process(data_samples=teacher.val_step(batch), data_batch=batch)
    metrics = loop.evaluator.evaluate(len(loop.dataloader.dataset))
    teacher.train(was)
    return coco_metrics(metrics)


class TeacherGateHook(Hook):
    """Before a distillation run trains, its teacher must be the teacher it names.

    The teacher's weights as the algorithm holds them are compared tensor by tensor with the checkpoint of the
    teacher's run (mmrazor loads ``teacher_ckpt`` when it builds the algorithm; the silent failures this
    catches: a checkpoint that never loaded, or a student initialisation that overwrote it). Equal, and the
    file's digest the one stored with the teacher's evaluation (``checkpoint_sha256``): that evaluation (the
    teacher run's mAP) stands. Otherwise the teacher is evaluated on the run's validation data and must score
    within ``tolerance`` mAP of the reference, else
    :class:`kdlab.errors.TeacherGateError` names the teacher, both numbers and the fix. The result is the
    run's ``checks['teacher_gate']``.
    """

    priority = 'VERY_HIGH'

    def __init__(self, teacher: str, checkpoint: str, reference_map: float, tolerance: float = 0.5,
                 digest: str = None):
        self.teacher, self.checkpoint, self.digest = teacher, checkpoint, digest
        self.reference, self.tolerance = float(reference_map), float(tolerance)
        self.result: dict = {}

    def before_train(self, runner) -> None:
        from kdlab.engine.store import file_digest
        from kdlab.errors import TeacherGateError
        model = _unwrap(runner.model)
        weights = same_weights(model.teacher, self.checkpoint)
        same_file = self.digest is not None and file_digest(self.checkpoint) == self.digest
        result = dict(teacher=self.teacher, checkpoint=self.checkpoint, reference_mAP=self.reference,
                      tolerance=self.tolerance, weights_equal=weights['equal'], tensors=weights['tensors'],
                      checkpoint_digest_matches=same_file)
        if weights['equal'] and same_file:
            result.update(mAP=self.reference, evaluated=False, ok=True)
        else:
            result.update(differ=weights['n_differ'], missing=weights['n_missing'],
                          examples=weights['differ'] + weights['missing'])
            measured = evaluate_teacher(runner)['mAP']
            ok = measured is not None and abs(measured - self.reference) <= self.tolerance
            result.update(mAP=measured, evaluated=True, ok=ok)
            if not ok:
                self.result = result
                raise TeacherGateError(
                    f'the teacher {self.teacher} of this run scores {measured} mAP on the validation data, its '
                    f'reference is {self.reference} (tolerance {self.tolerance}); its weights differ from '
                    f'{self.checkpoint} in {weights["n_differ"]} tensor(s) and {weights["n_missing"]} are missing '
                    f'(e.g. {(weights["differ"] + weights["missing"])[:3]})',
                    'the teacher checkpoint did not load into the algorithm, or something overwrote it: check '
                    "model.teacher_ckpt and that no init_cfg / inherit hook writes the teacher's modules; a teacher "
                    'trained again since: train this run again (its key changes with the teacher)')
        self.result = result
