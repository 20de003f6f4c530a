"""The main job: one distillation end to end on the embedded data.

Train a teacher, a baseline student and the student distilled with PKD (mmrazor ``FpnTeacherDistill`` +
``PKDLoss``, loss weight 10 as in mmrazor's official RetinaNet config); evaluate all three with COCO metrics;
store each run with its config and provenance; print the table. Default pair: PKD's RetinaNet-X101 ->
RetinaNet-R50, at ``mini`` scale, the student on the 1x schedule and the teacher on 3x (trained once, reused).
The runs are planned like any table row (:func:`kdlab.engine.planner.plan_pair`), so a second call finds
them stored. ``kdlab demo`` then trains the distilled student again on this machine (:func:`train_again`: the
same run, from the stored teacher or its committed weights, into a scratch store) and prints its mAP beside the
stored record's: real work on every call, and a check that the stored number is reproduced here.

Under mini v2 (``KDLAB_MINI=v2``) the demo's runs are the leaderboard cell's seed-2 teacher, baseline and PKD
student, planned as ``kdlab leaderboard`` plans them (:data:`PROTOCOL_RUNS`, :data:`SEEDS`). v2's 1x is 48 epochs, about 75
core-minutes for PKD, so the student is trained again for its first :data:`FIRST_EPOCHS` epochs only (the same
config, learning-rate steps and data order; training stops there) and compared with its record's learning curve
at that epoch, beside the baseline's record at the same epoch.
"""
from __future__ import annotations

import time
from typing import Dict, List, Optional

from kdlab.engine.planner import execute_plan, plan_pair
from kdlab.engine.store import RunStore, rebuilt_note

DEFAULTS = dict(teacher='retinanet_x101', student='retinanet_r50', method='pkd', schedule='1x')
#: What else the demo's runs are, per mini protocol (smoke and full scale: v1's). v1: PKD at mmrazor's loss
#: weight 10, from a teacher trained 3x. v2: what ``kdlab leaderboard`` plans (the registry's weight times the
#: loss-scale rule's factor, the teacher's 1x), so that the demo's records are the leaderboard cell's seed-0 runs.
PROTOCOL_RUNS = {'v1': dict(teacher_schedule='3x', loss_weight=10.0), 'v2': {}}
#: How many of its epochs the demo trains the distilled student again for (None: all of them). v2: 4 of 48, 309 s
#: measured on a clean clone (one thread, as ``make demo`` runs it; 6 min 52 s with the set-up); at epoch 4 the
#: stored PKD run of seed 2 leads its baseline by 8.4 mAP (14.7 against 6.3), and the student trained again from
#: the committed teacher weights gives its record's 14.7 on the record's machine (AMD EPYC, AVX2) and 17.7 on an
#: Intel Xeon (AVX512), with the same teacher score there (2026-12-07; :func:`against_record` says so).
FIRST_EPOCHS = {'v1': None, 'v2': 4}
#: The seed of the demo's runs, per protocol. v2: seed 2, whose PKD student was distilled from the teacher's
#: committed float16 weights, as a fresh clone's is; the cell's seeds 0-1 learnt from the teacher's float32
#: checkpoint, which stays on the machine that trained it, so a clone trained them again from other inputs (on a
#: clean clone, 2026-12-06: 13.3 mAP at epoch 4 against seed 0's record 16.9, the baseline bit for bit).
SEEDS = {'v1': 0, 'v2': 2}
_PROTOCOL = object()          # run(epochs=...) not given: the protocol's FIRST_EPOCHS


def protocol_of(scale: str) -> str:
    """The mini protocol the demo's runs follow: ``$KDLAB_MINI`` at mini scale, v1's choices elsewhere."""
    from kdlab.zoo import mini_protocol
    return mini_protocol() if scale == 'mini' else 'v1'


def run(scale: str = 'mini', *, store: Optional[RunStore] = None, progress: bool = True,
        data_root: Optional[str] = None, seed: Optional[int] = None, again: bool = False, epochs=_PROTOCOL,
        **overrides) -> List[Dict[str, object]]:
    """Plan, train what is not stored, and return one row per run: role, model, metrics, key, wall time.
    ``again``: the distilled student is also trained again here (:func:`train_again`), a fourth row; with
    ``epochs`` (default: the protocol's :data:`FIRST_EPOCHS`) only its first ``epochs`` epochs, and the rows
    then also give both records' learning curves at that epoch (``'<role>, epoch N'``). ``seed``: default the
    protocol's (:data:`SEEDS`)."""
    protocol = protocol_of(scale)
    if seed is None:
        seed = SEEDS[protocol]
    if epochs is _PROTOCOL:
        epochs = FIRST_EPOCHS[protocol]
    opts = {**DEFAULTS, **PROTOCOL_RUNS[protocol],
            **{k: v for k, v in overrides.items() if v is not None}}
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
        here = train_again(plan, key, store, progress=progress, epochs=epochs)
        records = {k: store.load(k) or v for k, v in records.items()}      # a teacher trained again meanwhile
    rows = []
    for role, ref in (('teacher', f'teacher:{teacher}'), ('baseline', 'baseline'), (method, 'distilled')):
        rec = records[plan.rows[ref]]
        rows.append({'role': role, 'model': plan.runs[rec['key']].name, **rec['metrics'], 'key': rec['key'],
                     'wall_time_s': rec['wall_time_s'], 'note': rebuilt_note(store.rebuilt_inputs(rec))})
    if here is not None:
        note = (f'trained again on this machine (not stored in {store.root}); its teacher from '
                f'{here.get("teacher_source")}; {against_record(records[plan.rows["distilled"]], here)}')
        if here.get('first_epochs'):
            n, of = here['first_epochs'], here['of_epochs']
            for role, ref in (('baseline', 'baseline'), (method, 'distilled')):
                rec = records[plan.rows[ref]]
                rows.append({'role': f'{role}, epoch {n}', 'model': plan.runs[rec['key']].name,
                             **at_epoch(rec, n), 'key': rec['key'], 'wall_time_s': None, 'from_curve': True,
                             'note': f'its record\'s learning curve at epoch {n} of {of}'})
            rows.append({'role': f'{method} here, epoch {n}', 'model': plan.runs[here['key']].name,
                         **here['metrics'], 'key': here['key'], 'wall_time_s': here['wall_time_s'],
                         'note': f'its first {n} of {of} epochs {note}'})
        else:
            rows.append({'role': f'{method} here', 'model': plan.runs[here['key']].name, **here['metrics'],
                         'key': here['key'], 'wall_time_s': here['wall_time_s'], 'note': note})
    return rows


def against_record(stored: dict, here: dict) -> str:
    """What may make the run trained again here differ from its stored record: its inputs (the teacher gate's
    evaluation of the teacher here against the teacher's record) and the machine
    (:func:`kdlab.engine.runner.machine_differences`)."""
    from kdlab.engine.runner import machine_differences
    parts = []
    gate = (here.get('checks') or {}).get('teacher_gate') or {}
    if gate.get('evaluated'):
        parts.append(f'its teacher scored {gate["mAP"]} mAP here, {gate["reference_mAP"]} in its record')
    diffs = machine_differences(stored.get('provenance') or {}, here.get('provenance') or {})
    parts.append('this machine computes differently from the record\'s (' + ', '.join(diffs) + '), so the same '
                 'run need not give the same numbers' if diffs else 'the same CPU and packages as its record')
    return '; '.join(parts)


def at_epoch(record: dict, epoch: int) -> Dict[str, float]:
    """A run record's validation metrics after ``epoch`` (its learning curve, ``record['curve']``)."""
    for point in record.get('curve') or ():
        if point.get('epoch') == epoch:
            return {k: v for k, v in point.items() if k not in ('epoch', 'teacher')}
    from kdlab.errors import KdlabError
    raise KdlabError(f'run {record["key"]} ({record["name"]}) has no learning-curve point at epoch {epoch}',
                     'its record predates learning curves: train it again (kdlab train ... --overwrite) or '
                     'run the demo with --epochs 0 (the whole run)')


def first_epochs(cfg, epochs: int):
    """``cfg`` trained for its first ``epochs`` epochs only: the same learning-rate schedule, data order and
    seed, the loop stopped early. An mmengine config states its schedulers' milestones and ends as numbers (a
    config computed from ``max_epochs`` holds the result), and nothing else reads ``max_epochs`` before the
    loop's end, so these epochs are the whole run's first epochs."""
    from kdlab.errors import KdlabError
    total = cfg.train_cfg['max_epochs']
    if not 1 <= epochs <= total:
        raise KdlabError(f'cannot train the first {epochs} epochs of a {total}-epoch run', f'choose 1 to {total}')
    import copy
    cfg = copy.deepcopy(cfg)
    cfg.train_cfg['max_epochs'] = epochs
    return cfg


def train_again(plan, key: str, store: RunStore, *, progress: bool = True, epochs: Optional[int] = None) -> dict:
    """Run ``key`` of ``plan`` trained again on this machine from its stored inputs (its teacher's checkpoint, or
    the teacher's committed weights where the checkpoint is elsewhere), into a scratch store
    (``~/.cache/kdlab/demo``) so that its stored record stays as it is; returns the new record. Same config, same
    key, same seed: on the CPU it is the same computation, so its mAP is the stored one unless an input differs
    (a teacher from its half-precision committed weights) or the machine computes differently. ``epochs``: only
    its first ``epochs`` epochs (:func:`first_epochs`); the record says so (``first_epochs``, ``of_epochs``)."""
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
    if epochs:
        extra = dict(extra, first_epochs=epochs, of_epochs=cfg.train_cfg['max_epochs'])
        cfg = first_epochs(cfg, epochs)
    sources = [store.load(need).get('checkpoint_source') or 'its checkpoint' for need in run.needs]
    if scratch.work_dir(key).exists():
        shutil.rmtree(scratch.work_dir(key))  # from the start, not resumed
    record = execute(cfg, name=run.name, store=scratch, progress=progress, key=key, overwrite=True, resume=False,
                     extra=extra, inputs=store)       # the teacher gate reads the teacher's record where it is
    return dict(record, teacher_source=', '.join(sorted(set(sources))) or 'no teacher')


def format_table(rows) -> str:
    cols = ['mAP', 'AP50', 'AP75', 'APs', 'APm', 'APl']
    width = max(len(r['model']) for r in rows)
    role = max(9, *(len(r['role']) for r in rows))
    head = f'{"role":<{role}} {"model":<{width}} ' + ' '.join(f'{c:>5}' for c in cols) + '   run'
    lines = [head, '-' * len(head)]
    for r in rows:
        vals = ' '.join(f'{r[c]:>5.1f}' if r.get(c) is not None else f'{"-":>5}' for c in cols)
        lines.append(f'{r["role"]:<{role}} {r["model"]:<{width}} {vals}   {r["key"]}')
    return '\n'.join(lines)


def main(args) -> int:
    t0 = time.time()
    store = RunStore(args.store) if args.store else RunStore()
    rows = run(args.scale, store=store, data_root=args.data_root, seed=args.seed, teacher=args.teacher,
               student=args.student, schedule=args.schedule, teacher_schedule=args.teacher_schedule,
               again=not args.stored_only, **({} if args.epochs is None else {'epochs': args.epochs or None}))
    print()
    print(format_table(rows))
    t, b, d = (rows[0]['mAP'], rows[1]['mAP'], rows[2]['mAP'])
    method = rows[2]['role']
    print(f'\nteacher - baseline: {t - b:+.1f} mAP;  {method} - baseline: {d - b:+.1f} mAP   '
          f'({time.time() - t0:.0f} s; runs stored under {store.root})')
    if len(rows) == 4:
        h = rows[3]['mAP']
        print(f'the {method} student trained again here: {h} mAP, its stored record {d} ({h - d:+.1f}; '
              f'{rows[3]["wall_time_s"]:.0f} s; {rows[3]["note"]})')
    elif len(rows) > 4:
        base, rec, here = rows[3], rows[4], rows[5]
        n = here['role'].rsplit(' ', 1)[-1]
        print(f'the {method} student trained again here for its first {n} epochs: {here["mAP"]} mAP at epoch {n}, '
              f'its record {rec["mAP"]} ({here["mAP"] - rec["mAP"]:+.1f}); the baseline\'s record at epoch {n}: '
              f'{base["mAP"]} ({method} leads by {here["mAP"] - base["mAP"]:+.1f} here, '
              f'{rec["mAP"] - base["mAP"]:+.1f} in the records; {here["wall_time_s"]:.0f} s)')
    for r in rows:
        if r['note'] and not r.get('from_curve'):
            print(f'note, {r["role"]}: {r["note"]}')
    return 0


def register(sub) -> None:
    p = sub.add_parser('demo', help='the main job: teacher / baseline / PKD-distilled student, end to end')
    p.add_argument('--scale', default='mini', choices=('smoke', 'mini', 'full'))
    p.add_argument('--teacher', default=DEFAULTS['teacher'])
    p.add_argument('--student', default=DEFAULTS['student'])
    p.add_argument('--schedule', default=DEFAULTS['schedule'], help='student schedule (default 1x)')
    p.add_argument('--teacher-schedule', default=None,
                   help="teacher schedule (default: the protocol's; v1 3x, v2 the teacher's 1x)")
    p.add_argument('--epochs', type=int, default=None,
                   help='train the distilled student again for its first N epochs only and compare with its '
                        "record's learning curve there (default: mini v2 4, else the whole run; 0: the whole run)")
    p.add_argument('--data-root', default=None, help='default: the embedded synthetic dataset (generated)')
    p.add_argument('--seed', type=int, default=None,
                   help="the runs' seed (default: the protocol's; v1 0, v2 2, the seed distilled from the "
                        "teacher's committed weights)")
    p.add_argument('--store', default=None, help='run store (default: results/runs or $KDLAB_RESULTS)')
    p.add_argument('--stored-only', action='store_true',
                   help='show the stored runs; do not train the distilled student again here')
    p.set_defaults(func=main)
