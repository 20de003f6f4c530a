"""Checkpoint checks: a checkpoint must exist and match the model its config builds."""
from __future__ import annotations

import os
from typing import List

from kdlab.errors import CheckpointError


def check_checkpoint(model_cfg: dict, path: str, *, what: str = 'checkpoint', scope: str = 'mmdet') -> None:
    """Raise :class:`CheckpointError` naming the mismatch if ``path`` cannot initialise ``model_cfg``.

    Every parameter and buffer of the model must be in the checkpoint with the same shape (extra keys
    in the checkpoint are allowed, as mmengine allows them).
    """
    import torch
    from mmengine.registry import DefaultScope, MODELS
    from mmengine.runner.checkpoint import _load_checkpoint
    if path and '://' in str(path):
        return      # a URL: mmengine fetches it when the run starts; checked then, not downloaded twice

    if not path or not os.path.isfile(path):
        raise CheckpointError(f'{what} {path!r} does not exist',
                              'train it first (kdlab trains teachers on demand) or pass the right path')
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
    from mmengine.config import ConfigDict
    # a ConfigDict: two-stage detectors read their train_cfg / test_cfg by attribute (train_cfg.rpn)
    cfg = ConfigDict({k: v for k, v in dict(model_cfg).items() if k != '_scope_'})
    import mmdet.models  # noqa: F401  (registers mmdet's models)
    with DefaultScope.overwrite_default_scope(scope):
        from mmdet.registry import MODELS as DET_MODELS
        model = DET_MODELS.build(cfg)
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
