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
        from tqdm.auto import tqdm
        self._bar = tqdm(total=runner.max_iters, initial=runner.iter, desc=self.desc, unit='it',
                         dynamic_ncols=True, leave=False)

    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None) -> None:
        if self._bar is not None:
            self._bar.update(1)
            if outputs and 'loss' in outputs:
                loss = outputs['loss']
                loss = loss.detach() if hasattr(loss, 'detach') else loss   # a float, not a graph node
                self._bar.set_postfix(loss=f'{float(loss):.3f}', epoch=runner.epoch + 1)

    def after_train(self, runner) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None

    def before_test(self, runner) -> None:
        from tqdm.auto import tqdm
        self._bar = tqdm(total=len(runner.test_dataloader), desc=f'{self.desc} eval', unit='batch',
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
        if runner.rank != 0:
            return
        metrics = dict(metrics or {})     # none at all: no detection above the threshold (0, as the record says)
        entry = {'epoch': int(runner.epoch), **coco_metrics(metrics)}
        teacher = {k[len('teacher.'):]: v for k, v in metrics.items() if k.startswith('teacher.')}
        if teacher:
            entry['teacher'] = coco_metrics(teacher)
        curve = [e for e in self.read() if e['epoch'] != entry['epoch']] + [entry]
        from kdlab.engine.store import atomic_write_text   # an interruption never leaves half a file
        atomic_write_text(self.path, json.dumps(sorted(curve, key=lambda e: e['epoch']), indent=1))
