"""Does the teacher see its input as it was trained to?

Every distillation algorithm (mmrazor's ``FpnTeacherDistill`` and kdlab's) feeds the teacher the batch the
*student's* ``data_preprocessor`` made, and so does the DCSF-KD repository. Where the two detectors normalise
their input differently — a caffe-style student (FCOS-R50-caffe: BGR, mean subtracted, std 1) with a
PyTorch-style teacher (Swin, GFL-R101: RGB, ImageNet std) — the teacher sees its input scaled about 58x off and
with its colour channels swapped. That is faithful to the released code, so it is kdlab's default
(``teacher_input='student'``); it says so in the config (``kdlab_method['teacher_input']``), the run record
(``notes``) and the comparison's ``note`` column. ``teacher_input='own'`` feeds each model its own
preprocessing (:class:`kdlab.models.teacher_input.TeacherOwnInputHook`, added by :func:`teacher_input_hook`).
"""
from __future__ import annotations

from typing import Optional

from kdlab.errors import UnknownNameError

#: what the teacher is fed: the student's batch (the released code) or its own preprocessing
TEACHER_INPUTS = ('student', 'own')

def _normalisation(model: dict) -> dict:
    pre = dict(model.get('data_preprocessor') or {})
    return dict(mean=[float(v) for v in pre.get('mean') or (0.0, 0.0, 0.0)],
                std=[float(v) for v in pre.get('std') or (1.0, 1.0, 1.0)],
                bgr_to_rgb=bool(pre.get('bgr_to_rgb', False) or pre.get('rgb_to_bgr', False)))


def teacher_input_note(student_model: dict, teacher_model: dict) -> Optional[str]:
    """None when both detectors normalise their input alike; else what the teacher sees instead."""
    s, t = _normalisation(student_model), _normalisation(teacher_model)
    if s == t:
        return None
    scale = (sum(t['std']) / len(t['std'])) / (sum(s['std']) / len(s['std']))
    parts = []
    if abs(scale - 1) > 1e-3:
        parts.append(f'scaled {scale:.0f}x off' if scale >= 1 else f'scaled {1 / scale:.0f}x off')
    if s['bgr_to_rgb'] != t['bgr_to_rgb']:
        parts.append('with its colour channels in the other order')
    if s['mean'] != t['mean'] and not parts:
        parts.append('shifted by another mean')
    return ('the teacher is fed the student\'s preprocessed batch (as in the released code): it sees its input '
            + ' and '.join(parts) + f' (student mean/std {s["mean"]}/{s["std"]}, teacher {t["mean"]}/{t["std"]})')


def teacher_input_hook(student_model: dict, teacher_model: dict, mode: str = 'student'):
    """(the ``TeacherOwnInputHook`` config or None, the note for the run record or None) for ``mode``.

    ``'student'``: no hook; the note says what the teacher sees instead, where the two normalisations differ.
    ``'own'``: the hook, where they differ (nothing to convert otherwise)."""
    if mode not in TEACHER_INPUTS:
        raise UnknownNameError('teacher input', mode, TEACHER_INPUTS)
    mismatch = teacher_input_note(student_model, teacher_model)
    if mismatch is None or mode == 'student':
        return None, mismatch
    s, t = _normalisation(student_model), _normalisation(teacher_model)
    return (dict(type='TeacherOwnInputHook', student=s, teacher=t),
            f"the teacher is fed its own preprocessing (teacher_input='own'; the released code feeds it the "
            f"student's batch): student mean/std {s['mean']}/{s['std']}, teacher {t['mean']}/{t['std']}")
