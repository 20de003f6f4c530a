"""Checkpoint checks: a checkpoint must exist and match the model its config builds."""
from __future__ import annotations

import os
from typing import List

from kdlab.errors import CheckpointError

#: Checkpoints that passed :func:`check_checkpoint` in this process, by (file identity, model config): a table's
#: teacher serves many students, and one check loads the whole file and builds the model (0.3-0.5 s at smoke
#: scale). A file replaced, cut or rewritten since has another identity (:func:`kdlab.engine.store.file_identity`)
#: and is checked again.
_PASSED: set = set()


def _identity(path: str, model_cfg: dict, scope: str) -> tuple:
    from kdlab.engine.store import file_identity
    return (*file_identity(path), repr(dict(model_cfg)), scope)


def check_checkpoint(model_cfg: dict, path: str, *, what: str = 'checkpoint', scope: str = 'mmdet') -> None:
    """Raise :class:`CheckpointError` naming the mismatch if ``path`` cannot initialise ``model_cfg``.

    Every parameter and buffer of the model must be in the checkpoint with the same shape (extra keys
    in the checkpoint are allowed, as mmengine allows them). A file that passed for the same config in this
    process, unchanged since (:data:`_PASSED`), is not read again.
    """
    if path and '://' in str(path):
        return      # a URL: mmengine fetches it when the run starts; checked then, not downloaded twice

    if not path or not os.path.isfile(path):
        raise CheckpointError(f'{what} {path!r} does not exist',
                              'train it first (kdlab trains teachers on demand) or pass the right path')
    identity = _identity(path, model_cfg, scope)
    if identity in _PASSED:
        return
    _check(model_cfg, path, what=what, scope=scope)
    _PASSED.add(identity)


def _check(model_cfg: dict, path: str, *, what: str, scope: str) -> None:
    import torch
    from mmengine.runner.checkpoint import _load_checkpoint
    try:
        ckpt = _load_checkpoint(path, map_location='cpu')
    except Exception as err:         # torch raises several kinds for a cut or damaged file (zip, pickle, EOF)
        raise CheckpointError(f'{what} {path!r} cannot be read: it is truncated or corrupted '
                              f'({type(err).__name__}: {str(err).splitlines()[0][:160]})',
                              'train it again (delete the file, or its run directory, and run again) or copy an '
                              'intact one') from err
    if not isinstance(ckpt, dict):
        raise CheckpointError(f'{what} {path!r} holds a {type(ckpt).__name__}, not a checkpoint (a dict with '
                              'a state_dict)', 'pass a checkpoint saved by mmengine or torch.save(state_dict)')
    state = ckpt.get('state_dict', ckpt)
    from kdlab.models import build_model
    model = build_model(model_cfg, init=False, scope=scope)
    expected = model.state_dict()
    missing: List[str] = [k for k in expected if k not in state]
    wrong = [f'{k}: checkpoint {tuple(state[k].shape)} vs model {tuple(v.shape)}'
             for k, v in expected.items() if k in state and isinstance(state[k], torch.Tensor)
             and tuple(state[k].shape) != tuple(v.shape)]
    if missing or wrong:
        lines = [f'{len(missing)} missing key(s), e.g. {missing[:3]}'] if missing else []
        lines += [f'{len(wrong)} shape mismatch(es), e.g. {wrong[:3]}'] if wrong else []
        raise CheckpointError(f'{what} {path!r} does not match its config: ' + '; '.join(lines),
                              'pass the checkpoint trained with this config (same detector, backbone, widths '
                              'and scale), or retrain it')
