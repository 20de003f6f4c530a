"""FPN level pairing between a teacher and a student — written once, used by every feature method.

mmrazor's official configs pair neck outputs *by index*: ``loss_pkd_fpn{i}`` compares student output ``i``
with teacher output ``i`` for ``i in 0..3``. For a homogeneous pair that is the same pyramid level. For a
heterogeneous pair it is not: a Mask R-CNN teacher's neck starts at P2 and a RetinaNet student's at P3, so
index 0 pairs teacher P2 with student P3 (PKD's Swin -> RetinaNet row does exactly this; the student map
is resized to the teacher's). kdlab makes the choice explicit:

* ``'index'`` (what the official configs do): pair output ``i`` with output ``i``;
* ``'stride'``: pair the outputs with the same stride (P3 with P3, ...), dropping the unmatched ones.

:func:`default_pairing` chooses between them for a method and a pair, once for every caller: the planner's runs,
the loss-scale rule's measurement, the benchmarks.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import List, Sequence, Tuple

from kdlab.errors import UnknownNameError

PAIRINGS = ('index', 'stride')

#: Methods whose released code pairs neck outputs by index and resizes the student (PKD, DCSF-KD); the
#: masking methods compare maps of equal size and pair heterogeneous pyramids by stride.
INDEX_PAIRED = ('pkd', 'dcsf_kd')


def default_pairing(method: str, student: str, teacher: str) -> str:
    """How ``method`` pairs the zoo detectors' neck outputs unless told: ``'index'`` where the two pyramids have
    the same levels (the two pairings agree) or the method's released code pairs by index
    (:data:`INDEX_PAIRED`), else ``'stride'``."""
    if method in INDEX_PAIRED or levels_of(student) == levels_of(teacher):
        return 'index'
    return 'stride'


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


def fpn_conv_count(neck: dict) -> int:
    """How many of an mmdet ``FPN``'s outputs a conv makes (``neck.fpn_convs``), in output order.

    An FPN's outputs are its ``fpn_convs`` (one per used backbone level, then one per extra level when
    ``add_extra_convs``) and, past them, max-pools of the last one (a two-stage neck's P6). 0 for a neck of
    another type."""
    if (neck or {}).get('type', '').split('.')[-1] != 'FPN':
        return 0
    in_levels = len(neck['in_channels'])
    end = neck.get('end_level', -1)
    used = (in_levels if end == -1 else end + 1) - neck.get('start_level', 0)
    extra = max(neck['num_outs'] - used, 0) if neck.get('add_extra_convs', False) else 0
    return used + extra


def neck_output_source(neck: dict, index: int, record: str = 'neck') -> Tuple[str, object]:
    """(module to record, output index) of neck output ``index``.

    ``record='neck'``: the neck's output (``'neck'``, index); ``'fpn_convs'``: the conv of the FPN that makes
    it (``'neck.fpn_convs.i.conv'``, None), as MGD's and FGD's released configs hook it — before the
    GroupNorm of a GN neck (RepPoints); the same tensor for a neck without norm layers. A level no conv makes
    (a max-pool P6) is recorded at the neck's output, which is then the max-pool of the conv's output for a
    neck without norm layers."""
    if record == 'neck' or index >= fpn_conv_count(neck):
        return 'neck', index
    if record == 'fpn_convs':
        return f'neck.fpn_convs.{index}.conv', None
    raise UnknownNameError('neck recording', record, ('neck', 'fpn_convs'))
