"""FPN level pairing between a teacher and a student — written once, used by every feature method.

mmrazor's official configs pair neck outputs *by index*: ``loss_pkd_fpn{i}`` compares student output ``i``
with teacher output ``i`` for ``i in 0..3``. For a homogeneous pair that is the same pyramid level. For a
heterogeneous pair it is not: a Mask R-CNN teacher's neck starts at P2 and a RetinaNet student's at P3, so
index 0 pairs teacher P2 with student P3 (PKD's Swin -> RetinaNet row does exactly this; the student map
is resized to the teacher's). kdlab makes the choice explicit:

* ``'index'`` (default; what the official configs do): pair output ``i`` with output ``i``;
* ``'stride'``: pair the outputs with the same stride (P3 with P3, ...), dropping the unmatched ones.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import List, Sequence, Tuple

from kdlab.errors import UnknownNameError

PAIRINGS = ('index', 'stride')


@dataclass(frozen=True)
class LevelPair:
    """One distilled level: which neck output of each model, and the pyramid level it is."""

    student_index: int
    teacher_index: int
    student_level: str
    teacher_level: str

    @property
    def name(self) -> str:
        return (self.student_level if self.student_level == self.teacher_level
                else f'{self.student_level}<-{self.teacher_level}')


def pair_levels(student_levels: Sequence[str], teacher_levels: Sequence[str], *, pairing: str = 'index',
                num_levels: int = 4) -> List[LevelPair]:
    """Pairs of neck outputs to distil, at most ``num_levels`` (official configs: 4).

    ``student_levels`` / ``teacher_levels`` name each neck output in order, e.g. ``('P3', ..., 'P7')``.
    """
    if pairing == 'index':
        n = min(num_levels, len(student_levels), len(teacher_levels))
        return [LevelPair(i, i, student_levels[i], teacher_levels[i]) for i in range(n)]
    if pairing == 'stride':
        pairs = [LevelPair(i, teacher_levels.index(lv), lv, lv)
                 for i, lv in enumerate(student_levels) if lv in teacher_levels]
        return pairs[:num_levels]
    raise UnknownNameError('level pairing', pairing, PAIRINGS)


def levels_of(detector: str) -> Tuple[str, ...]:
    """The pyramid levels of a zoo detector's neck outputs, in order."""
    from kdlab.zoo import parse_detector
    family, _ = parse_detector(detector)
    return family.levels
