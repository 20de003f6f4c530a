"""Helpers shared by the feature methods' builders: level extension, student/teacher kind, distiller dicts.

A builder receives the level pairs that :func:`kdlab.methods.distill_config` made (``num_levels`` of the
method's registration: 4 for PKD/DCSF-KD, 5 — every FPN output, as MGD's and FGD's official configs — for
the masking methods) and the method's parameters. One fact it cannot get otherwise is read from the pairs:

* **one- or two-stage student** — several defaults depend on it (MGD's alpha/lambda, FGD's preset, DCSF-KD's
  paper alpha). In the zoo exactly the two-stage families (Faster/Mask/Cascade R-CNN) have a P2-P6 neck, so
  the kind follows from the first neck level of the student (``student_kind='auto'``); pass the kind
  explicitly to override.
"""
from __future__ import annotations

import copy
from typing import Callable, Dict, Optional, Sequence

from kdlab.core.levels import LevelPair, neck_output_source
from kdlab.errors import KdlabError, UnknownNameError

KINDS = ('one_stage', 'two_stage')

KDLAB_IMPORTS = 'kdlab.models'


def add_custom_imports(cfg, module: str = KDLAB_IMPORTS) -> None:
    """Make the config import ``module`` (kdlab's mmrazor components) before building the model."""
    ci = dict(cfg.get('custom_imports') or {})
    imports = list(ci.get('imports') or [])
    if module not in imports:
        imports.append(module)
    cfg.custom_imports = dict(imports=imports, allow_failed_imports=bool(ci.get('allow_failed_imports', False)))


def _level_number(level: str) -> int:
    if not (level.startswith('P') and level[1:].isdigit()):
        raise KdlabError(f'cannot read the pyramid level {level!r}', "levels are named 'P2' ... 'P7'")
    return int(level[1:])


def _first_level(pairs: Sequence[LevelPair], student: bool) -> int:
    p = pairs[0]
    level, index = (p.student_level, p.student_index) if student else (p.teacher_level, p.teacher_index)
    return _level_number(level) - index


def detector_kind(pairs: Sequence[LevelPair], kind: str = 'auto', *, student: bool = True) -> str:
    """``'one_stage'`` or ``'two_stage'``: ``kind`` itself, or (``'auto'``) from the first neck level
    (P2: two-stage). ``student=False`` reads the teacher's."""
    if kind != 'auto':
        if kind not in KINDS:
            raise UnknownNameError('detector kind', kind, KINDS + ('auto',))
        return kind
    if not pairs:
        raise KdlabError('no level pairs to distil', 'check the pairing of the student and teacher necks')
    return 'two_stage' if _first_level(pairs, student) <= 2 else 'one_stage'


def by_kind(value, kind: str, one_stage, two_stage):
    """``value`` unless it is None, else the one-/two-stage default."""
    if value is not None:
        return value
    return two_stage if kind == 'two_stage' else one_stage


def same_level_pairs(pairs: Sequence[LevelPair], method: str) -> None:
    """Raise when a pair joins different pyramid levels (maps of different sizes) for a loss that needs equal sizes."""
    bad = [p.name for p in pairs if p.student_level != p.teacher_level]
    if bad:
        raise KdlabError(f'{method} compares maps of equal size, but the pairing joins different levels '
                         f'({", ".join(bad)})', "use pairing='stride' (same-stride levels)")


def level_distiller(pairs: Sequence[LevelPair], loss: dict, *, prefix: str,
                    distiller: str = 'AutoChannelDistiller',
                    per_level: Optional[Callable[[int, LevelPair], dict]] = None,
                    inputs: Optional[Callable[[int, LevelPair], Dict[str, dict]]] = None,
                    student_recorders: Optional[dict] = None, teacher_recorders: Optional[dict] = None,
                    connectors: Optional[Callable[[int, LevelPair], Optional[dict]]] = None,
                    **distiller_kwargs) -> dict:
    """:func:`kdlab.methods.fpn_distiller` (one ``loss`` per pair on the necks' outputs, same names) with
    kdlab's extras: the distiller type, per-level loss overrides, extra forward inputs per level, extra
    recorders, a connector per level on the student input, and distiller arguments."""
    from kdlab.methods import fpn_distiller
    d = fpn_distiller(list(pairs), loss, prefix=prefix)
    d['type'] = distiller
    d['student_recorders'].update(copy.deepcopy(student_recorders or {}))
    d['teacher_recorders'].update(copy.deepcopy(teacher_recorders or {}))
    conns = {}
    for i, (name, p) in enumerate(zip(list(d['distill_losses']), pairs)):
        if per_level is not None:
            d['distill_losses'][name].update(per_level(i, p))
        if inputs is not None:
            d['loss_forward_mappings'][name].update(copy.deepcopy(inputs(i, p)))
        if connectors is not None:
            conn = connectors(i, p)
            if conn is not None:
                cname = f's_{name[len("loss_"):]}_connector'
                conns[cname] = conn
                d['loss_forward_mappings'][name]['preds_S']['connector'] = cname
    if conns:
        d['connectors'] = conns
    d.update(distiller_kwargs)
    return d


def record_neck_at(distiller: dict, student_neck: dict, teacher_neck: dict, record: str) -> dict:
    """``distiller`` (a :func:`kdlab.methods.fpn_distiller`) with every neck output it compares recorded where
    ``record`` says (:func:`kdlab.core.levels.neck_output_source`): ``'fpn_convs'`` hooks each level's FPN
    conv (MGD's and FGD's released configs: ``neck.fpn_convs.i.conv``), one recorder per conv."""
    if record == 'neck':
        return distiller
    d = copy.deepcopy(distiller)
    for mapping in d['loss_forward_mappings'].values():
        for key, neck, recorders in (('preds_S', student_neck, d['student_recorders']),
                                     ('preds_T', teacher_neck, d['teacher_recorders'])):
            m = mapping.get(key)
            if not m or m.get('recorder') != 'fpn':
                continue
            source, idx = neck_output_source(neck, m['data_idx'], record)
            if idx is None:
                name = f'fpn{m["data_idx"]}'      # mmrazor's MGD config's names
                recorders[name] = dict(type='ModuleOutputs', source=source)
                m['recorder'] = name
                m.pop('data_idx')
    for key, recorders in (('preds_S', d['student_recorders']), ('preds_T', d['teacher_recorders'])):
        if not any(m.get(key, {}).get('recorder') == 'fpn' for m in d['loss_forward_mappings'].values()):
            recorders.pop('fpn', None)      # every level now has its own conv recorder
    return d
