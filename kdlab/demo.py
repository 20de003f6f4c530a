"""The main job: one distillation end to end on the embedded data.

Train a teacher, a baseline student and the student distilled with PKD (mmrazor ``FpnTeacherDistill`` +
``PKDLoss``, loss weight 10 as in mmrazor's official RetinaNet config); evaluate all three with COCO metrics;
store each run with its config and provenance; print the table. Default pair: PKD's RetinaNet-X101 ->
RetinaNet-R50, at ``mini`` scale, the student on the 1x schedule and the teacher on 3x (trained once, reused).
The runs are planned like any table row (:func:`kdlab.engine.planner.plan_pair`), so a second call finds
them stored and prints the table at once.
"""
from __future__ import annotations

import time
from typing import Dict, List, Optional

from kdlab.engine.planner import execute_plan, plan_pair
from kdlab.engine.store import RunStore, rebuilt_note

DEFAULTS = dict(teacher='retinanet_x101', student='retinanet_r50', method='pkd', schedule='1x',
                teacher_schedule='3x', loss_weight=10.0)


def run(scale: str = 'mini', *, store: Optional[RunStore] = None, progress: bool = True,
        data_root: Optional[str] = None, seed: int = 0, **overrides) -> List[Dict[str, object]]:
    """Plan, train what is not stored, and return one row per run: role, model, metrics, key, wall time."""
    opts = {**DEFAULTS, **overrides}
    teacher, student, method = opts.pop('teacher'), opts.pop('student'), opts.pop('method')
    store = store or RunStore()
    plan = plan_pair(student, [teacher], method, scale, seed=seed, data_root=data_root, **opts)
    if progress:
        for r in plan.ordered():
            state = 'stored, reused' if store.load(r.key) else 'to train'
            print(f'[{r.role}] {r.name}: {state}', flush=True)
    records = execute_plan(plan, store, progress=progress)
    rows = []
    for role, ref in (('teacher', f'teacher:{teacher}'), ('baseline', 'baseline'), (method, 'distilled')):
        rec = records[plan.rows[ref]]
        rows.append({'role': role, 'model': plan.runs[rec['key']].name, **rec['metrics'], 'key': rec['key'],
                     'wall_time_s': rec['wall_time_s'], 'note': rebuilt_note(store.rebuilt_inputs(rec))})
    return rows


def format_table(rows) -> str:
    cols = ['mAP', 'AP50', 'AP75', 'APs', 'APm', 'APl']
    width = max(len(r['model']) for r in rows)
    head = f'{"role":<9} {"model":<{width}} ' + ' '.join(f'{c:>5}' for c in cols) + '   run'
    lines = [head, '-' * len(head)]
    for r in rows:
        vals = ' '.join(f'{r[c]:>5.1f}' if r.get(c) is not None else f'{"-":>5}' for c in cols)
        lines.append(f'{r["role"]:<9} {r["model"]:<{width}} {vals}   {r["key"]}')
    return '\n'.join(lines)


def main(args) -> int:
    t0 = time.time()
    store = RunStore(args.store) if args.store else RunStore()
    rows = run(args.scale, store=store, data_root=args.data_root, seed=args.seed, teacher=args.teacher,
               student=args.student, schedule=args.schedule, teacher_schedule=args.teacher_schedule)
    print()
    print(format_table(rows))
    t, b, d = (rows[0]['mAP'], rows[1]['mAP'], rows[2]['mAP'])
    print(f'\nteacher - baseline: {t - b:+.1f} mAP;  PKD - baseline: {d - b:+.1f} mAP   '
          f'({time.time() - t0:.0f} s; runs stored under {store.root})')
    for r in rows:
        if r['note']:
            print(f'note, {r["role"]}: {r["note"]}')
    return 0


def register(sub) -> None:
    p = sub.add_parser('demo', help='the main job: teacher / baseline / PKD-distilled student, end to end')
    p.add_argument('--scale', default='mini', choices=('smoke', 'mini', 'full'))
    p.add_argument('--teacher', default=DEFAULTS['teacher'])
    p.add_argument('--student', default=DEFAULTS['student'])
    p.add_argument('--schedule', default=DEFAULTS['schedule'], help='student schedule (default 1x)')
    p.add_argument('--teacher-schedule', default=DEFAULTS['teacher_schedule'], help='teacher schedule (default 3x)')
    p.add_argument('--data-root', default=None, help='default: the embedded synthetic dataset (generated)')
    p.add_argument('--seed', type=int, default=0)
    p.add_argument('--store', default=None, help='run store (default: results/runs or $KDLAB_RESULTS)')
    p.set_defaults(func=main)
