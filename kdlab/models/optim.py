"""One optimizer per part of a distillation model, as an mmengine ``OptimWrapperDict``.

mmengine's ``paramwise_cfg.custom_keys`` can change the lr / weight decay of a parameter group, not its
optimizer type or gradient clipping. ICD's released code trains the detector with its usual optimizer and
everything ICD adds (query encoder, decoder, auxiliary predictor, student value projection) with AdamW
(lr 1e-4, weight decay 1e-4) and a gradient-norm clip of 0.01 over those parameters only. This constructor
builds that::

    optim_wrapper = dict(
        constructor='SplitOptimWrapperConstructor',
        student=dict(type='OptimWrapper', optimizer=dict(type='SGD', lr=0.01, momentum=0.9,
                     weight_decay=1e-4)),                      # every parameter not claimed below
        decoder=dict(type='OptimWrapper', optimizer=dict(type='AdamW', lr=1e-4, weight_decay=1e-4),
                     clip_grad=dict(max_norm=0.01, norm_type=2),
                     prefixes=['distiller.']))                 # parameters whose names start so

Each entry is an ordinary mmengine optim-wrapper config (it may carry its own ``constructor`` and
``paramwise_cfg``), built on the whole model and then restricted to the parameters it owns. Exactly one entry
has no ``prefixes``: it owns the rest. A parameter claimed by two entries is an error. The model's
``train_step`` must handle an ``OptimWrapperDict`` (e.g. :meth:`kdlab.models.icd.ICDDistill.train_step`);
``param_scheduler`` may then be a dict keyed by the same names (mmengine's multi-optimizer convention).
"""
from __future__ import annotations

import copy
from typing import Dict, List, Optional

from mmengine.optim import OptimWrapperDict, build_optim_wrapper
from mmengine.registry import OPTIM_WRAPPER_CONSTRUCTORS
from torch import nn

from kdlab.errors import KdlabError
from kdlab.models.wrapped import unwrapped


def owned_parameters(model: nn.Module, cfgs: Dict[str, dict]) -> Dict[str, List[nn.Parameter]]:
    """Which entry of ``cfgs`` owns each parameter (by ``prefixes``; the entry without prefixes: the rest)."""
    rest = [name for name, c in cfgs.items() if not c.get('prefixes')]
    if len(rest) != 1:
        raise KdlabError(f'SplitOptimWrapperConstructor: exactly one optimizer entry must have no `prefixes` '
                         f'(it owns the remaining parameters); got {rest or "none"} among {list(cfgs)}',
                         'give every entry but one a list of parameter-name prefixes')
    owners: Dict[str, List[nn.Parameter]] = {name: [] for name in cfgs}
    for pname, p in model.named_parameters():
        claims = [name for name, c in cfgs.items() if any(pname.startswith(x) for x in c.get('prefixes') or ())]
        if len(claims) > 1:
            raise KdlabError(f'parameter {pname!r} is claimed by optimizer entries {claims}',
                             'make the `prefixes` of the entries disjoint')
        owners[claims[0] if claims else rest[0]].append(p)
    for name, c in cfgs.items():
        if c.get('prefixes') and not owners[name]:
            raise KdlabError(f'optimizer entry {name!r}: no parameter name starts with {list(c["prefixes"])}',
                             'check the prefixes against model.named_parameters()')
    return owners


@OPTIM_WRAPPER_CONSTRUCTORS.register_module()
class SplitOptimWrapperConstructor:
    """Build an ``OptimWrapperDict`` with one wrapper per entry of ``optim_wrapper_cfg`` (see module doc).

    Args:
        optim_wrapper_cfg (dict): ``{name: optim-wrapper config (+ optional 'prefixes')}``; the entry without
            prefixes comes first in the dict returned (it is the one whose ``optim_context`` is used).
        paramwise_cfg (dict, optional): must be None here; give each entry its own ``paramwise_cfg``.
    """

    def __init__(self, optim_wrapper_cfg: dict, paramwise_cfg: Optional[dict] = None) -> None:
        if paramwise_cfg:
            raise KdlabError('SplitOptimWrapperConstructor: put `paramwise_cfg` inside the optimizer entry it '
                             'belongs to, not at the top level')
        self.cfgs = {k: dict(copy.deepcopy(v)) for k, v in dict(optim_wrapper_cfg).items()}

    def __call__(self, model: nn.Module) -> OptimWrapperDict:
        model = unwrapped(model)
        owners = owned_parameters(model, self.cfgs)
        order = sorted(self.cfgs, key=lambda n: bool(self.cfgs[n].get('prefixes')))  # the rest first
        wrappers = {}
        for name in order:
            cfg = {k: v for k, v in self.cfgs[name].items() if k != 'prefixes'}
            wrapper = build_optim_wrapper(model, cfg)
            mine = {id(p) for p in owners[name]}
            groups = []
            for g in wrapper.optimizer.param_groups:
                g['params'] = [p for p in g['params'] if id(p) in mine]
                if g['params']:
                    groups.append(g)
            wrapper.optimizer.param_groups[:] = groups
            wrappers[name] = wrapper
        return OptimWrapperDict(**wrappers)
