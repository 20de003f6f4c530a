"""The main job: one distillation end to end on the embedded data.

Train a teacher, a baseline student and the student distilled with PKD (mmrazor ``FpnTeacherDistill`` +
``PKDLoss``, loss weight 10 as in mmrazor's official RetinaNet config); evaluate all three with COCO metrics;
store each run with its config and provenance; print the table. Default pair: PKD's RetinaNet-X101 ->
RetinaNet-R50, at ``mini`` scale, the student on the 1x schedule and the teacher on 3x (trained once, reused).
The runs are planned like any table row (:func:`kdlab.engine.planner.plan_pair`), so a second call finds
them stored. ``kdlab demo`` then trains the distilled student again on this machine (:func:`train_again`: the
same run, from the stored teacher or its committed weights, into a scratch store) and prints its mAP beside the
stored record's: real work on every call, and a check that the stored number is reproduced here.
"""
from __future__ import annotations

import time
from typing import Dict, List, Optional

from kdlab.engine.planner import execute_plan, plan_pair
from kdlab.engine.store import RunStore, rebuilt_note

DEFAULTS = dict(teacher='retinanet_x101', student='retinanet_r50', method='pkd', schedule='1x',
                teacher_schedule='3x', loss_weight=10.0)


def run(scale: str = 'mini', *, store: Optional[RunStore] = None, progress: bool = True,
        data_root: Optional[str] = None, seed: int = 0, again: bool = False,
        **overrides) -> List[Dict[str, object]]:
    """Plan, train what is not stored, and return one row per run: role, model, metrics, key, wall time.
    ``again``: the distilled student is also trained again here (:func:`train_again`), a fourth row."""
    opts = {**DEFAULTS, **overrides}
    teacher, student, method = opts.pop('teacher'), opts.pop('student'), opts.pop('method')
    store = store or RunStore()
    plan = plan_pair(student, [teacher], method, scale, seed=seed, data_root=data_root, **opts)
    from kdlab.engine.store import checkpoint_present
    if progress:
        for r in plan.ordered():
            rec = store.load(r.key)
            state = 'to train' if rec is None else 'stored, reused'
            if rec is not None and again and r.key in plan.runs[plan.rows['distilled']].needs \
                    and not checkpoint_present(rec):
                state = 'stored; its checkpoint is not on this machine: trained again first'
            print(f'[{r.role}] {r.name}: {state}', flush=True)
    records = execute_plan(plan, store, progress=progress)
    here = None
    if again:
        key = plan.rows['distilled']
        if progress:
            print(f'[{method}] {plan.runs[key].name}: trained again here, beside its stored record', flush=True)
        here = train_again(plan, key, store, progress=progress)
        records = {k: store.load(k) or v for k, v in records.items()}      # a teacher trained again meanwhile
    rows = []
    for role, ref in (('teacher', f'teacher:{teacher}'), ('baseline', 'baseline'), (method, 'distilled')):
        rec = records[plan.rows[ref]]
        rows.append({'role': role, 'model': plan.runs[rec['key']].name, **rec['metrics'], 'key': rec['key'],
                     'wall_time_s': rec['wall_time_s'], 'note': rebuilt_note(store.rebuilt_inputs(rec))})
    if here is not None:
        rows.append({'role': f'{method} here', 'model': plan.runs[here['key']].name, **here['metrics'],
                     'key': here['key'], 'wall_time_s': here['wall_time_s'],
                     'note': f'trained again on this machine (not stored in {store.root}); its teacher from '
                             f'{here.get("teacher_source")}'})
    return rows


def train_again(plan, key: str, store: RunStore, *, progress: bool = True) -> dict:
    """Run ``key`` of ``plan`` trained again on this machine from its stored inputs (its teacher's checkpoint, or
    the teacher's committed weights where the checkpoint is elsewhere), into a scratch store
    (``~/.cache/kdlab/demo``) so that its stored record stays as it is; returns the new record. Same config, same
    key, same seed: on the CPU it is the same computation, so its mAP is the stored one unless an input differs
    (a teacher from its half-precision committed weights) or the machine computes differently."""
    import shutil
    from kdlab.engine.planner import _prepare
    from kdlab.engine.runner import execute
    from kdlab.engine.store import default_work_root
    base = default_work_root().parent / 'demo'
    scratch = RunStore(base / 'runs', base / 'work')
    run = plan.runs[key]
    # its config with the teacher's checkpoint filled in; a teacher stored without its checkpoint here (nor
    # committed weights) is trained again first, as for any run that needs it
    cfg, extra = _prepare(plan, run, store, {}, progress=progress)
    sources = [store.load(need).get('checkpoint_source') or 'its checkpoint' for need in run.needs]
    if scratch.work_dir(key).exists():
        shutil.rmtree(scratch.work_dir(key))  # from the start, not resumed
    record = execute(cfg, name=run.name, store=scratch, progress=progress, key=key, overwrite=True, resume=False,
                     extra=extra, inputs=store)       # the teacher gate reads the teacher's record where it is
    return dict(record, teacher_source=', '.join(sorted(set(sources))) or 'no teacher')


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
               student=args.student, schedule=args.schedule, teacher_schedule=args.teacher_schedule,
               again=not args.stored_only)
    print()
    print(format_table(rows))
    t, b, d = (rows[0]['mAP'], rows[1]['mAP'], rows[2]['mAP'])
    print(f'\nteacher - baseline: {t - b:+.1f} mAP;  PKD - baseline: {d - b:+.1f} mAP   '
          f'({time.time() - t0:.0f} s; runs stored under {store.root})')
    if len(rows) > 3:
        h = rows[3]['mAP']
        print(f'the PKD student trained again here: {h} mAP, its stored record {d} ({h - d:+.1f}; '
              f'{rows[3]["wall_time_s"]:.0f} s; {rows[3]["note"]})')
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
    p.add_argument('--stored-only', action='store_true',
                   help='show the stored runs; do not train the distilled student again here')
    p.set_defaults(func=main)
