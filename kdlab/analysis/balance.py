"""The balance a distillation run met: its distillation loss over its student's detection loss, through training.

The one loss-scale rule (:mod:`kdlab.methods.loss_scale`) sets a method's factor so that

    r = L_distill / L_det   at the first iteration, every weight at initialisation,

is the same at mini and at full shapes. A run starts elsewhere: from a trained teacher and a pretrained student,
whose features are larger than initial ones, and the balance moves as the student learns. This module reads what
a stored run met, from its record alone (``results/runs/<key>/``: ``run.json``'s first-iteration check and
``train.log``, mmengine's text log), so the numbers can be rebuilt on any machine:

* the ratio at iteration 0: the distillation losses the run's check read before the first step
  (``checks['distillation_active']``, after the rule's factor) over the detection losses of the first logged
  window (mmengine logs the mean of the last ``interval`` iterations; the check does not read them);
* the ratio at every logged iteration after it (:func:`run_balance`), and a summary per run
  (:func:`balance_summary`): iteration 0, the end of epoch 1, the last logged iteration.

Which losses are which: an algorithm's ``distill.*`` terms (:data:`kdlab.models.loss_scale.DISTILL_PREFIX`) against
its ``student.*`` terms, the names mmrazor and kdlab give them and the rule scales by.
"""
from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Iterable, Optional

import pandas as pd

from kdlab.models.loss_scale import DISTILL_PREFIX

STUDENT_PREFIX = 'student.'

# mmengine's text log has no reader of its own (its JSON scalars stay in the work directory, which a record does
# not keep), so its training lines are parsed here: "Epoch(train) [e][ i/n]  name: value  name: value ..."
_LINE = re.compile(r'Epoch\(train\)\s*\[(\d+)\]\[\s*(\d+)/(\d+)\]\s+(.*)$')
_PAIR = re.compile(r'([\w.]+):\s+(-?\d+(?:\.\d+)?(?:e[-+]?\d+)?)')


def training_losses(log: Path) -> pd.DataFrame:
    """One row per logged training iteration of an mmengine text log: ``epoch``, ``iter`` (within the epoch),
    ``step`` (global) and every logged term whose name holds ``loss``. A resumed run's log repeats what it
    redid; the last reading of each (epoch, iter) is kept."""
    rows = []
    for line in Path(log).read_text(errors='replace').splitlines():
        m = _LINE.search(line)
        if not m:
            continue
        epoch, it, per_epoch = (int(g) for g in m.groups()[:3])
        terms = {k: float(v) for k, v in _PAIR.findall(m.group(4)) if 'loss' in k}
        rows.append({'epoch': epoch, 'iter': it, 'step': (epoch - 1) * per_epoch + it, **terms})
    if not rows:
        raise ValueError(f'{log}: no training iterations logged (mmengine "Epoch(train)" lines)')
    frame = pd.DataFrame(rows).drop_duplicates(['epoch', 'iter'], keep='last')
    return frame.sort_values('step').reset_index(drop=True)


def _sum(frame: pd.DataFrame, prefix: str) -> pd.Series:
    cols = [c for c in frame.columns if c.startswith(prefix)]
    if not cols:
        raise ValueError(f'no "{prefix}*" losses logged (columns: {", ".join(frame.columns)})')
    return frame[cols].sum(axis=1)


def run_balance(key: str, results_root: Optional[Path] = None) -> pd.DataFrame:
    """Run ``key``'s balance through training: ``step``, ``epoch``, ``detection`` (its ``student.*`` losses),
    ``distillation`` (its ``distill.*`` losses, as trained: after the rule's factor) and ``ratio``; the first row,
    step 0, is the run's first-iteration check (its detection losses those of the first logged window)."""
    from kdlab.engine.store import default_results_root
    run_dir = Path(results_root or default_results_root()) / key
    return _balance(run_dir, json.loads((run_dir / 'run.json').read_text()))


def _balance(run_dir: Path, record: dict) -> pd.DataFrame:
    losses = training_losses(run_dir / 'train.log')
    frame = pd.DataFrame({'step': losses['step'], 'epoch': losses['epoch'],
                          'detection': _sum(losses, STUDENT_PREFIX), 'distillation': _sum(losses, DISTILL_PREFIX)})
    check = (record.get('checks') or {}).get('distillation_active') or {}
    if 'total' in check:
        first = pd.DataFrame([{'step': 0, 'epoch': 1, 'detection': frame['detection'].iloc[0],
                               'distillation': float(check['total'])}])
        frame = pd.concat([first, frame], ignore_index=True)
    frame['ratio'] = frame['distillation'] / frame['detection']
    return frame


def balance_summary(keys: Iterable[str], results_root: Optional[Path] = None) -> pd.DataFrame:
    """One row per run: its name; its method, student, teacher and rule factor (``kdlab_method`` of its stored
    config; a DFMSD stage's teacher is that stage's); its ratio at iteration 0, at the end of epoch 1 and at the
    last logged iteration."""
    from mmengine.config import Config
    from kdlab.engine.store import default_results_root
    root = Path(results_root or default_results_root())
    rows = []
    for key in keys:
        record = json.loads((root / key / 'run.json').read_text())
        frame = _balance(root / key, record)
        method = Config.fromfile(str(root / key / 'config.py')).get('kdlab_method', {})
        epoch_1 = frame[frame['epoch'] == 1]
        rows.append({'key': key, 'name': record.get('name'), 'method': method.get('method'),
                     'student': method.get('student'), 'teacher': method.get('teacher'),
                     'factor': method.get('loss_scale', 1.0),
                     'ratio_start': frame['ratio'].iloc[0], 'ratio_epoch_1': epoch_1['ratio'].iloc[-1],
                     'ratio_end': frame['ratio'].iloc[-1], 'last_step': int(frame['step'].iloc[-1])})
    return pd.DataFrame(rows)
