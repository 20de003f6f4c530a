"""Feed the teacher its own preprocessing (``distill_config(..., teacher_input='own')``).

Every distillation algorithm hands the teacher the batch the *student's* ``data_preprocessor`` made
(:mod:`kdlab.methods.preprocessing`). With ``teacher_input='own'`` :class:`TeacherOwnInputHook` puts
:func:`to_teacher_input` in front of the teacher's backbone, so every teacher pass (features, heads, a
DFMSD box teacher's predictions come from another model and are untouched) sees its input normalised as it
was trained:

``x_T = (flip(x_S * std_S + mean_S) - mean_T) / std_T``

where ``flip`` reverses the colour channels when one preprocessor converts BGR to RGB and the other does not.
Padding (zeros after the student's normalisation) becomes the student's mean in pixels, i.e.
``(flip(mean_S) - mean_T) / std_T`` for the teacher: 0 for the usual caffe/PyTorch pair, whose means are the
same pixel values in opposite channel orders.
"""
from __future__ import annotations

from typing import Mapping

import torch
from mmengine.hooks import Hook
from mmengine.logging import print_log
from mmengine.registry import HOOKS

from kdlab.errors import KdlabError
from kdlab.models.wrapped import unwrapped


def _per_channel(values, like: torch.Tensor) -> torch.Tensor:
    return torch.as_tensor(values, dtype=like.dtype, device=like.device).reshape(1, -1, 1, 1)


def to_teacher_input(x: torch.Tensor, student: Mapping, teacher: Mapping) -> torch.Tensor:
    """The student's normalised batch ``x`` (N, C, H, W) as the teacher's preprocessor would have made it.

    ``student`` / ``teacher``: ``mean``, ``std`` (in each one's output channel order) and ``bgr_to_rgb``."""
    pixels = x * _per_channel(student['std'], x) + _per_channel(student['mean'], x)
    if bool(student['bgr_to_rgb']) != bool(teacher['bgr_to_rgb']):
        pixels = pixels.flip(1)
    return (pixels - _per_channel(teacher['mean'], x)) / _per_channel(teacher['std'], x)


@HOOKS.register_module()
class TeacherOwnInputHook(Hook):
    """Before training, make the teacher's backbone convert its input with :func:`to_teacher_input`.

    Args:
        student (dict): the student's ``mean``, ``std``, ``bgr_to_rgb``.
        teacher (dict): the teacher's.
    """

    priority = 'HIGH'

    def __init__(self, student: Mapping, teacher: Mapping) -> None:
        self.student, self.teacher = dict(student), dict(teacher)
        self.handle = None

    def before_train(self, runner) -> None:
        model = unwrapped(runner.model)
        backbone = getattr(getattr(model, 'teacher', None), 'backbone', None)
        if backbone is None:
            raise KdlabError(f'TeacherOwnInputHook needs a distillation model whose teacher has a backbone, got '
                             f'{type(model).__name__}', "remove the hook (teacher_input='student')")
        if self.handle is None:
            self.handle = backbone.register_forward_pre_hook(
                lambda module, args: (to_teacher_input(args[0], self.student, self.teacher),) + tuple(args[1:]))
            print_log(f'teacher input: converted from the student\'s preprocessing {self.student} to the '
                      f'teacher\'s {self.teacher}', logger='current')
