"""The model a hook or an optimizer constructor works on, in one place."""
from __future__ import annotations


def unwrapped(model):
    """The model inside mmengine's distributed wrapper (DDP, FSDP: ``mmengine.model.is_model_wrapper``), or
    ``model`` itself when it runs in one process."""
    from mmengine.model import is_model_wrapper
    return model.module if is_model_wrapper(model) else model
