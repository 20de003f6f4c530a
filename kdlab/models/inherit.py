"""Inheriting: initialise the student's neck / heads from the teacher's before distillation starts.

Several headline numbers depend on it: MGD and FGD (and mmrazor's official MGD config) and ICD (default of its
released code: ``PRELOAD_FPN`` / ``PRELOAD_HEAD``) start the student's FPN and detection head from the teacher's
weights. kdlab makes it a switch usable with any method: ``distill_config(..., inherit=('neck', 'bbox_head'))``
adds :class:`InheritTeacherHook` to the config's ``custom_hooks`` (:func:`add_inherit_hook`). A method's default
(``register_method(..., inherit=...)``) applies to a teacher of the student's own detector family only and keeps the
modules both detectors have with the same type (``kdlab.methods.distill_config``); an explicit
request naming a module of another type in the teacher is refused when the config is made.

The copy (:func:`inherit_from_teacher`) takes, for each named module, every parameter and buffer of the
teacher's module whose name and shape exist in the student's module, and reports what it copied and skipped
(shape mismatch, or missing on one side). It copies from the in-memory teacher, i.e. from ``teacher_ckpt`` as
loaded by the algorithm (released ICD: teacher state dict into the student). It runs once, before the first
iteration of a fresh run (released ICD: ``if start_iter == 0``): on resume, or when ``load_from`` gives the
student's weights, the checkpoint wins and nothing is copied.

mmrazor's MGD config does the same with ``init_cfg=dict(type='Pretrained', prefix='neck.', checkpoint=...)``
on the student's modules; kdlab does not, because heads that override ``init_weights`` (e.g. TOOD) silently
ignore ``init_cfg``, and because the copy must work (and be testable) with a teacher built in memory.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import List, Sequence, Tuple

import torch
from mmengine.hooks import Hook
from mmengine.logging import print_log
from mmengine.registry import HOOKS
from torch import nn

from kdlab.errors import KdlabError
from kdlab.models.wrapped import unwrapped

#: What the switch inherits by default: the FPN and whatever detection heads the student has.
DEFAULT_INHERIT = ('neck', 'bbox_head', 'rpn_head', 'roi_head')


@dataclass
class InheritReport:
    """What :func:`inherit_from_teacher` did: tensor names (``module.sub.name``) per outcome."""

    copied: List[str] = field(default_factory=list)
    shape_mismatch: List[Tuple[str, tuple, tuple]] = field(default_factory=list)  # name, student, teacher
    missing_in_teacher: List[str] = field(default_factory=list)
    absent_modules: List[str] = field(default_factory=list)   # named module not in student or teacher
    type_mismatch: List[str] = field(default_factory=list)    # named module of another type (strict=False)

    def summary(self) -> str:
        lines = [f'inherit: copied {len(self.copied)} tensor(s) from the teacher']
        if self.shape_mismatch:
            eg = ', '.join(f'{n} {s} vs {t}' for n, s, t in self.shape_mismatch[:3])
            lines.append(f'skipped {len(self.shape_mismatch)} with another shape (student vs teacher), e.g. {eg}')
        if self.missing_in_teacher:
            lines.append(f'kept {len(self.missing_in_teacher)} the teacher lacks, e.g. {self.missing_in_teacher[:3]}')
        if self.absent_modules:
            lines.append(f'modules absent from student or teacher: {self.absent_modules}')
        if self.type_mismatch:
            lines.append(f'modules of another type, not inherited: {self.type_mismatch}')
        return '; '.join(lines)


def _tensors(module: nn.Module) -> dict:
    return dict(module.state_dict(keep_vars=True))


@torch.no_grad()
def inherit_from_teacher(student: nn.Module, teacher: nn.Module, modules: Sequence[str] = DEFAULT_INHERIT, *,
                         strict: bool = True) -> InheritReport:
    """Copy the teacher's ``modules`` (e.g. ``'neck'``, ``'bbox_head'``) into the student, matching shapes only.

    A named module of another type in the teacher (e.g. an FCOS head for a RetinaNet head) raises
    :class:`KdlabError` (``strict``) or is skipped and reported. Raises if none of ``modules`` exists in both.
    """
    report = InheritReport()
    for name in modules:
        s_mod, t_mod = getattr(student, name, None), getattr(teacher, name, None)
        if not isinstance(s_mod, nn.Module) or not isinstance(t_mod, nn.Module):
            report.absent_modules.append(name)
            continue
        if type(s_mod) is not type(t_mod):
            if not strict:
                report.type_mismatch.append(name)
                continue
            raise KdlabError(f'inherit: the student\'s {name} is a {type(s_mod).__name__}, the teacher\'s a '
                             f'{type(t_mod).__name__}; inheriting needs the same module type',
                             f'drop {name!r} from inherit (or use a teacher of the student\'s family)')
        s_state, t_state = _tensors(s_mod), _tensors(t_mod)
        for key, s_val in s_state.items():
            full = f'{name}.{key}'
            t_val = t_state.get(key)
            if t_val is None:
                report.missing_in_teacher.append(full)
            elif tuple(t_val.shape) != tuple(s_val.shape):
                report.shape_mismatch.append((full, tuple(s_val.shape), tuple(t_val.shape)))
            else:
                s_val.data.copy_(t_val.data)
                report.copied.append(full)
    if len(report.absent_modules) == len(tuple(modules)):
        raise KdlabError(f'inherit: none of {list(modules)} exists in both the student and the teacher',
                         f'name modules of the detectors, e.g. {list(DEFAULT_INHERIT)}')
    return report


@HOOKS.register_module()
class InheritTeacherHook(Hook):
    """Copy the teacher's ``modules`` into the student before the first training iteration of a fresh run.

    Args:
        modules (Sequence[str]): detector attributes to inherit. Defaults to ``DEFAULT_INHERIT``.
        strict (bool): raise (True) or skip (False) a named module whose type differs in the teacher.
    """

    priority = 'HIGH'   # before hooks that snapshot the weights (e.g. EMA)

    def __init__(self, modules: Sequence[str] = DEFAULT_INHERIT, strict: bool = True) -> None:
        self.modules = tuple(modules)
        self.strict = strict
        self.report = None

    def before_train(self, runner) -> None:
        model = unwrapped(runner.model)
        if not (hasattr(model, 'student') and hasattr(model, 'teacher')):
            raise KdlabError(f'InheritTeacherHook needs a distillation model with .student and .teacher, got '
                             f'{type(model).__name__}', 'remove the hook or use an mmrazor distill algorithm')
        if runner.iter > 0:
            print_log('inherit: resumed run, the student keeps its checkpoint weights', logger='current')
            return
        if getattr(runner, '_load_from', None):
            print_log(f'inherit: student loaded from {runner._load_from}; not inheriting', logger='current')
            return
        self.report = inherit_from_teacher(model.student, model.teacher, self.modules, strict=self.strict)
        print_log(self.report.summary(), logger='current')


def add_inherit_hook(cfg, modules: Sequence[str], *, strict: bool = True) -> Tuple[str, ...]:
    """Add (or replace) the :class:`InheritTeacherHook` of an mmengine distillation config; return its modules.

    The config is checked first. ``strict`` (the modules were asked for): a named module that both detectors
    have must be of the same type in both. Not ``strict`` (a method's default): modules that are missing from
    either detector or of another type are dropped; with none left no hook is added and ``()`` is returned.
    """
    student, teacher = cfg.model.get('architecture') or {}, cfg.model.get('teacher') or {}
    kept = []
    for name in modules:
        s, t = student.get(name), teacher.get(name)
        both = isinstance(s, dict) and isinstance(t, dict)
        if both and s.get('type') != t.get('type'):
            if strict:
                raise KdlabError(f'inherit: the student\'s {name} is a {s.get("type")}, the teacher\'s a '
                                 f'{t.get("type")}; inheriting needs the same module type',
                                 f'pass inherit=() (or inherit without {name!r}) for this pair')
            continue
        if both or strict:
            kept.append(name)
    hooks = [h for h in (cfg.get('custom_hooks') or []) if h.get('type') != 'InheritTeacherHook']
    if kept:
        hooks.append(dict(type='InheritTeacherHook', modules=kept))
    cfg.custom_hooks = hooks
    return tuple(kept)
