"""The mini scale's loss-scale rule applied to a run: every distillation loss multiplied by one factor.

A distillation algorithm's ``loss`` returns the student's detection losses (``student.*``) and the method's
losses (``distill.*``; every kdlab and mmrazor algorithm prefixes them so). :class:`DistillLossScaleHook`
multiplies each ``distill.*`` loss by ``scale`` after the algorithm computed it, whatever the method and
whichever of its parameters holds the paper's weight: the rule is one factor per (method, pair), measured by
:mod:`kdlab.methods.loss_scale`, never a change to a method's own weights.
"""
from __future__ import annotations

from typing import Dict

from mmengine.hooks import Hook
from mmengine.logging import print_log
from mmengine.registry import HOOKS
from kdlab.models.wrapped import unwrapped

DISTILL_PREFIX = 'distill.'


def loss_terms(losses: Dict[str, object], prefix: str) -> Dict[str, object]:
    """The entries of an algorithm's loss dict that mmengine sums (``BaseModel.parse_losses``: a name holding
    ``loss``) and whose name starts with ``prefix`` (``'distill.'``, ``'student.'``), each as one tensor (a list
    of tensors, one per level, summed)."""
    return {name: (sum(v.sum() for v in value) if isinstance(value, (list, tuple)) else value.sum())
            for name, value in losses.items() if name.startswith(prefix) and 'loss' in name}


def scale_distill_losses(losses: Dict[str, object], scale: float) -> Dict[str, object]:
    """``losses`` with every ``distill.*`` entry whose name holds ``loss`` multiplied by ``scale`` (in place);
    a list of tensors (one per level) is scaled element by element."""
    for name in loss_terms(losses, DISTILL_PREFIX):
        value = losses[name]
        losses[name] = [v * scale for v in value] if isinstance(value, (list, tuple)) else value * scale
    return losses


@HOOKS.register_module()
class DistillLossScaleHook(Hook):
    """Before training, make the distillation algorithm's loss dict carry ``scale`` x every distillation loss.

    Args:
        scale (float): the factor (the mini scale's rule, :func:`kdlab.methods.loss_scale.rule_factor`).
        source (str): where the factor comes from (written to the log).
    """

    priority = 'HIGH'

    def __init__(self, scale: float, source: str = '') -> None:
        self.scale, self.source = float(scale), source
        self.handle = None

    def before_train(self, runner) -> None:
        model = unwrapped(runner.model)
        if self.handle is None:
            # a forward hook sees what the algorithm returns for mode='loss' (a dict) before mmengine sums it;
            # predictions (a list) pass untouched
            self.handle = model.register_forward_hook(
                lambda module, args, output: scale_distill_losses(output, self.scale)
                if isinstance(output, dict) else output)
            print_log(f'distillation losses x {self.scale:.4g} ({self.source or "loss-scale rule"})',
                      logger='current')
