"""The main job: one distillation end to end on the embedded data.

Train a teacher, a baseline student and the student distilled with PKD (mmrazor ``FpnTeacherDistill`` +
``PKDLoss``); evaluate all three with COCO metrics; store each run with its config and provenance; print
the table. Default pair: PKD's official RetinaNet-X101 -> RetinaNet-R50 row, at ``mini`` scale.
Runs already in the store are reused (content-addressed), so a second call prints the table at once.
"""
from __future__ import annotations

import time
from typing import Dict, List, Optional

from kdlab.engine.runner import METRICS, execute, run_key
from kdlab.engine.store import RunStore


def plan(scale: str = 'mini', *, teacher: str = 'retinanet_x101', student: str = 'retinanet_r50',
         schedule: str = '1x', method: str = 'pkd', data_root: Optional[str] = None, seed: int = 0,
         **method_params):
    """The demo's runs in dependency order: [(role, name, cfg)], the distilled one built once the teacher
    has a checkpoint (a callable taking the teacher's record)."""
    from kdlab.zoo import detector_config
    t_cfg = detector_config(teacher, scale, schedule=schedule, data_root=data_root, seed=seed)
    s_cfg = detector_config(student, scale, schedule=schedule, data_root=data_root, seed=seed)

    def distilled(teacher_record):
        from kdlab.engine.checkpoints import check_checkpoint
        from kdlab.methods import distill_config
        ckpt = teacher_record['checkpoint']
        check_checkpoint(t_cfg.model.to_dict(), ckpt, what=f'teacher checkpoint of {teacher}')
        return distill_config(s_cfg, t_cfg, student=student, teacher=teacher, teacher_ckpt=ckpt,
                              method=method, teacher_run=teacher_record['key'], **method_params)

    return [('teacher', f'{teacher} ({scale})', t_cfg), ('baseline', f'{student} ({scale})', s_cfg),
            (method, f'{student} <- {teacher} [{method}] ({scale})', distilled)]


def run(scale: str = 'mini', *, store: Optional[RunStore] = None, progress: bool = True,
        **kwargs) -> List[Dict[str, object]]:
    store = store or RunStore()
    rows, teacher_record = [], None
    for role, name, cfg in plan(scale, **kwargs):
        if callable(cfg):
            cfg = cfg(teacher_record)
        if progress:
            cached = store.load(run_key(cfg)) is not None
            print(f'[{role}] {name}: {"stored, reused" if cached else "training"}', flush=True)
        record = execute(cfg, name=name, store=store, progress=progress, extra={'role': role})
        if role == 'teacher':
            teacher_record = record
        rows.append({'role': role, 'model': name, **record['metrics'], 'key': record['key'],
                     'wall_time_s': record['wall_time_s']})
    return rows


def format_table(rows) -> str:
    cols = ['mAP', 'AP50', 'AP75', 'APs', 'APm', 'APl']
    head = f'{"role":<9} {"model":<46} ' + ' '.join(f'{c:>5}' for c in cols) + '   run'
    lines = [head, '-' * len(head)]
    for r in rows:
        vals = ' '.join(f'{r[c]:>5.1f}' if r.get(c) is not None else f'{"-":>5}' for c in cols)
        lines.append(f'{r["role"]:<9} {r["model"]:<46} {vals}   {r["key"]}')
    return '\n'.join(lines)


def main(args) -> int:
    t0 = time.time()
    store = RunStore(args.store) if args.store else RunStore()
    rows = run(args.scale, store=store, data_root=args.data_root, seed=args.seed, teacher=args.teacher,
               student=args.student, schedule=args.schedule)
    print()
    print(format_table(rows))
    t, b, d = (rows[0]['mAP'], rows[1]['mAP'], rows[2]['mAP'])
    print(f'\nteacher - baseline: {t - b:+.1f} mAP;  PKD - baseline: {d - b:+.1f} mAP   '
          f'({time.time() - t0:.0f} s; runs stored under {store.root})')
    return 0


def register(sub) -> None:
    p = sub.add_parser('demo', help='the main job: teacher / baseline / PKD-distilled student, end to end')
    p.add_argument('--scale', default='mini', choices=('smoke', 'mini', 'full'))
    p.add_argument('--teacher', default='retinanet_x101')
    p.add_argument('--student', default='retinanet_r50')
    p.add_argument('--schedule', default='1x')
    p.add_argument('--data-root', default=None, help='default: the embedded synthetic dataset (generated)')
    p.add_argument('--seed', type=int, default=0)
    p.add_argument('--store', default=None, help='run store (default: results/runs or $KDLAB_RESULTS)')
    p.set_defaults(func=main)
