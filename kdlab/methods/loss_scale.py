"""The mini scale's one loss-scale rule: a method's published weight carried from COCO shapes to mini shapes.

The rule (issue "Mini scale v2", item 5), the same for every method::

    r(scale)  = L_distill / L_det            at the first iteration, for one (method, student, teacher)
    factor    = r(full) / r(mini)            every distillation loss of a mini run is multiplied by it

so that at its first iteration a mini run weighs distillation against detection as the paper's run did. Why a
rule is needed: the sum-reduced losses (MGD, FGD, AMD, DMKD, DSAMKD, DFMSD: ``alpha * sum / N``) grow with
channels x height x width, which are about 170x smaller at mini scale (64 channels at 160 px against 256 at
1333 x 800), while the mean-reduced ones (PKD, DCSF-KD) keep their balance; detection losses, normalised per
positive sample, keep theirs at both scales.

How ``r`` is measured (kdlab's choices, each a parameter of :func:`loss_ratio`):

* both scales build the method's config for the pair (:func:`kdlab.methods.distill_config` on
  :func:`kdlab.zoo.detector_config` at that scale) with **every weight at its initialisation**: no teacher
  checkpoint, no ImageNet / mini-pretrained backbone (``Pretrained`` init_cfgs dropped). A full-scale trained
  teacher cannot be loaded offline, and the same initial state at both scales leaves the shapes (channels,
  map sizes, level count) as the only difference, which is what the rule is for;
* inputs at the scale the initialisation expects (``unit_inputs``, default True): a config whose pretrained
  backbone is caffe-style (FCOS-R50/R101: BGR pixels minus their mean, std 1; the caffe weights absorb the pixel
  scale) is fed pixels divided by ImageNet's std when its weights are dropped, as every other config is. Fed
  std-1 pixels, a randomly initialised backbone's features are about 58x larger, the sum-reduced losses about
  58^2 larger: the FCOS students' full-scale ratios measured 342 to 1,942 that way (0.11 with unit inputs for
  MGD), an artefact of dropping the weights, not of the shapes the rule carries;
* the same images at both scales: ``images`` training images of the mini-v2 scenes
  (:mod:`kdlab.data.scenes`), each through its scale's own training pipeline (the full configs resize them to
  1333 x 800 as they resize COCO images), random flips off, one seed;
* ``L_det``: the sum of the student's losses (``student.*``), ``L_distill``: the sum of the method's
  (``distill.*``), as mmengine sums them (entries whose name holds ``loss``), in train mode, after one
  forward, as the first iteration computes them.

The measured table is committed (``kdlab/methods/loss_scale.csv``: both ratios, the factor, how many images,
the git revision); ``distill_config`` reads a mini-v2 pair's factor from it (:func:`rule_factor`) and adds
:class:`kdlab.models.loss_scale.DistillLossScaleHook`; ``kdlab loss-scale`` measures missing pairs.

The rule's open question: a run starts from a trained teacher and a pretrained student, not from initialisation.
``loss_ratio(..., state='trained')`` (:func:`trained_config`; ``kdlab loss-scale --state trained``) measures the
same ratio in that state, at mini shapes from the stored mini teacher and at full shapes from the released one
where its weights can be loaded, into ``results/mini_v2/loss_scale_trained.csv``; the factors stay this table's.
"""
from __future__ import annotations

import copy
import csv
import math
from pathlib import Path
from typing import Dict, Iterable, List, Optional, Sequence, Tuple

from kdlab.core.levels import default_pairing
from kdlab.errors import KdlabError

#: the committed table of measured ratios (one row per method, student, teacher)
TABLE = Path(__file__).resolve().parent / 'loss_scale.csv'
COLUMNS = ('method', 'student', 'teacher', 'ratio_full', 'ratio_mini', 'factor', 'applicable', 'det_full',
           'distill_full', 'det_mini', 'distill_mini', 'images', 'seed', 'revision', 'stand_ins', 'pairing')
IMAGES, SEED = 2, 0
#: ImageNet's pixel std (RGB), which every pytorch-style config divides by (``unit_inputs`` in :func:`initial_config`)
IMAGENET_STD_RGB = (58.395, 57.12, 57.375)


def _without_pretrained(node):
    """``node`` with every ``Pretrained`` init_cfg removed (recursively): weights at their initialisation."""
    if isinstance(node, dict):
        out = {}
        for k, v in node.items():
            if k == 'init_cfg' and isinstance(v, dict) and v.get('type') == 'Pretrained':
                out[k] = None
            else:
                out[k] = _without_pretrained(v)
        return out
    if isinstance(node, list):
        return [_without_pretrained(v) for v in node]
    return node


def _unit_inputs(node):
    """``node`` with every data preprocessor that keeps std-1 pixels (caffe-style) dividing by ImageNet's std in
    its channel order instead (recursively; in place)."""
    if isinstance(node, dict):
        std = node.get('std')
        if 'mean' in node and std is not None and all(float(v) == 1.0 for v in std):
            node['std'] = list(IMAGENET_STD_RGB if node.get('bgr_to_rgb') else IMAGENET_STD_RGB[::-1])
        for v in node.values():
            _unit_inputs(v)
    elif isinstance(node, list):
        for v in node:
            _unit_inputs(v)
    return node


def initial_config(method: str, student: str, teacher: str, scale: str, *, data_root: Optional[str] = None,
                   unit_inputs: bool = True, **params):
    """The distillation config of the pair at ``scale`` with every weight at its initialisation (mini v2 data
    at mini scale; ``data_root``: a mini-v2 scene set other than the cached default; ``unit_inputs``: caffe-style
    std-1 pixels divided by ImageNet's std, see the module's docstring)."""
    from kdlab.methods import distill_config
    from kdlab.zoo import detector_config
    root = data_root if scale == 'mini' else None
    s = detector_config(student, scale, protocol='v2', data_root=root)
    t = detector_config(teacher, scale, protocol='v2', data_root=root)
    cfg = distill_config(s, t, student=student, teacher=teacher, teacher_ckpt=None, method=method,
                         loss_scale=1.0, **params)
    cfg.model = _without_pretrained(cfg.model.to_dict() if hasattr(cfg.model, 'to_dict') else dict(cfg.model))
    for key in ('teacher_ckpt', 'box_teacher_ckpt'):
        if key in cfg.model:
            cfg.model[key] = None
    if unit_inputs:
        _unit_inputs(cfg.model)
    cfg.custom_hooks = [h for h in (cfg.get('custom_hooks') or []) if h.get('type') != 'InheritTeacherHook']
    return cfg


def scene_batch(cfg, *, images: int = IMAGES, data_root: Optional[str] = None) -> dict:
    """``images`` mini-v2 training scenes through ``cfg``'s training pipeline (flips off), collated as a
    dataloader would (``data_root``: the scene set; default the cached mini-v2 one)."""
    from mmengine.dataset import pseudo_collate
    from mmengine.registry import init_default_scope
    from mmdet.registry import DATASETS
    from kdlab.data import coco_data_config
    init_default_scope('mmdet')
    steps = [dict(step) for step in cfg.train_dataloader.dataset.pipeline]
    with_mask = any(step.get('with_mask') for step in steps)
    for step in steps:
        if str(step.get('type', '')).split('.')[-1] == 'RandomFlip':
            step['prob'] = 0.0
    dataset = coco_data_config(data_root, scale='mini', with_mask=with_mask,
                               protocol='v2')['train_dataloader']['dataset']
    dataset = dict(copy.deepcopy(dataset), pipeline=steps)
    dataset.pop('filter_cfg', None)
    from kdlab.engine.runner import without_coco_api_noise
    with without_coco_api_noise():      # pycocotools' "loading annotations" lines
        ds = DATASETS.build(dataset)
    return pseudo_collate([ds[i] for i in range(images)])


def _sum(losses: Dict[str, object], prefix: str) -> Tuple[float, Dict[str, float]]:
    from kdlab.models.loss_scale import loss_terms
    terms = {name: float(v) for name, v in loss_terms(losses, prefix).items()}
    return sum(terms.values()), terms


def first_iteration_losses(cfg, *, images: int = IMAGES, seed: int = SEED, data_root: Optional[str] = None) -> dict:
    """The detection and distillation losses of ``cfg``'s model at its first iteration on ``images`` scenes (its
    weights initialised as a runner's are: a pretrained backbone its config names is loaded,
    :func:`kdlab.models.build_model`)."""
    import torch
    from mmengine.logging import MessageHub, MMLogger
    from mmengine.runner import set_random_seed
    from kdlab.models import build_model
    MMLogger.get_current_instance().setLevel('WARNING')
    set_random_seed(seed)
    batch = scene_batch(cfg, images=images, data_root=data_root)
    model = build_model(cfg.model)
    model.train()
    hub = MessageHub.get_current_instance()     # what a runner's first iteration has set (TOOD's head reads the
    hub.update_info('iter', 0)                  # epoch there to choose its initial assigner)
    hub.update_info('epoch', 0)
    with torch.no_grad():
        data = model.data_preprocessor(batch, True)
        losses = model(**data, mode='loss')
    det, det_terms = _sum(losses, 'student.')
    distill, distill_terms = _sum(losses, 'distill.')
    shape = tuple(data['inputs'].shape[-2:])
    return dict(det=det, distill=distill, ratio=distill / det if det else math.nan, input_hw=shape,
                terms={**det_terms, **distill_terms})


#: the states a ratio is measured in: the rule's (every weight at its initialisation) and a run's first
#: iteration (:func:`trained_config`)
STATES = ('initial', 'trained')


def trained_config(method: str, student: str, teacher: str, scale: str, *, store=None, **params):
    """The pair's distillation config in the state a run of it starts from: the teacher's trained weights and the
    student's pretrained backbone. Full scale: the mmdet model zoo's released teacher
    (:func:`kdlab.zoo.released.released`, the papers' teachers) and the config's ImageNet backbone weights, both
    served offline by the local mirror (``KDLAB_CHECKPOINTS``), else downloaded; mini: the stored mini teacher
    run of the pair (the one a leaderboard run distils from) and the committed stand-in weights. As in
    :func:`initial_config`, an inherit hook is left out (the rule measures the loss as the algorithm computes it).
    The mini config carries the rule's factor as a hook (``DistillLossScaleHook``), which a measurement does not
    run: its ratio is before the factor, as :func:`initial_config`'s. Not for DFMSD, whose chain starts its last
    stage from the first stage's student: read its runs' own balance (:mod:`kdlab.analysis.balance`)."""
    from kdlab.engine.planner import plan_pair, resolve_refs
    from kdlab.engine.store import RunStore
    from kdlab.zoo import under_protocol
    from kdlab.zoo.released import checkpoint_dir, local_or_url, stage_backbone_weights
    if method == 'dfmsd':
        raise KdlabError('a DFMSD chain is not measured in the trained state (its last stage starts from its '
                         'first stage\'s trained student)', 'read its runs\' balance: kdlab.analysis.balance')
    store = store or RunStore()
    with under_protocol('v2'):      # the teacher a mini-v2 run distils from, planned on the default scenes (its
        plan = plan_pair(student, [teacher], method, scale, **params)      # key); data_root gives the images only
    t_run = plan.runs[plan.rows[f'teacher:{teacher}']]
    cfg = copy.deepcopy(plan.runs[plan.rows['distilled']].cfg)
    if scale == 'full':
        url = t_run.cfg.get('load_from') if t_run.cfg.get('kdlab_released') else None
        if not url:
            raise KdlabError(f'{teacher} has no released checkpoint in the mmdet model zoo (kdlab.zoo.released)',
                             'the trained state at full scale needs the papers\' released teacher')
        cfg.model['teacher_ckpt'] = local_or_url(url)
        if checkpoint_dir() is not None:
            stage_backbone_weights(cfg.model)
    elif store.load(t_run.key) is None:
        raise KdlabError(f'the mini teacher {t_run.name} (run {t_run.key}) is not stored',
                         f'train it first: kdlab leaderboard --pairs {student}:{teacher} (or its committed weights)')
    cfg = resolve_refs(cfg, store)          # mini: the teacher's <run:KEY> becomes its stored checkpoint
    cfg.custom_hooks = [h for h in (cfg.get('custom_hooks') or []) if h.get('type') != 'InheritTeacherHook']
    return cfg


def loss_ratio(method: str, student: str, teacher: str, scale: str, *, images: int = IMAGES,
               seed: int = SEED, data_root: Optional[str] = None, state: str = 'initial', store=None,
               **params) -> dict:
    """``L_distill / L_det`` of the pair at ``scale``'s shapes (see the module's docstring), in ``state``:
    ``'initial'``, the rule's (:func:`initial_config`), or ``'trained'``, the state a run starts from
    (:func:`trained_config`; the question the rule leaves open: docs/mini_v2.md)."""
    if state not in STATES:
        raise KdlabError(f'unknown state {state!r}', f'one of: {", ".join(STATES)}')
    if state == 'initial':
        cfg = initial_config(method, student, teacher, scale, data_root=data_root, **params)
    else:
        cfg = trained_config(method, student, teacher, scale, store=store, **params)
    try:
        return first_iteration_losses(cfg, images=images, seed=seed, data_root=data_root)
    except (OSError, RuntimeError) as err:
        if state == 'trained' and scale == 'full' and any(w in str(err).lower() for w in ('http', 'url', 'download')):
            raise KdlabError(f'{method} {student} <- {teacher}: a released checkpoint could not be loaded ({err})',
                             'put the released teacher and the ImageNet weights in a folder and set '
                             'KDLAB_CHECKPOINTS=DIR (served by file name), or measure where they can be '
                             'downloaded') from err
        raise


def applies(method: str) -> bool:
    """Whether the rule carries ``method``'s weight: its losses compare feature maps (``Method.compares``). A
    method whose losses compare head outputs (CrossKD: the teacher's head on the student's features against the
    teacher's predictions, normalised per sample like the detection losses) keeps its balance across scales by
    construction, and at initialisation an untrained head gives both sides the same prior, so its measured
    ratio (0.0135 full, 0.00004 mini on RetinaNet) says nothing about shapes: factor 1."""
    from kdlab.methods import get_method
    return get_method(method).compares == 'features'


def measure(method: str, student: str, teacher: str, *, images: int = IMAGES, seed: int = SEED) -> dict:
    """One row of the rule's table: both ratios and the factor (1 where the rule does not apply to the
    method, :func:`applies`)."""
    from kdlab.engine.runner import _git_revision
    full = loss_ratio(method, student, teacher, 'full', images=images, seed=seed)
    mini = loss_ratio(method, student, teacher, 'mini', images=images, seed=seed)
    if not (mini['distill'] > 0 and full['distill'] > 0):
        raise KdlabError(f'{method} {student} <- {teacher}: a distillation loss of 0 at the first iteration '
                         f'(full {full["distill"]:.4g}, mini {mini["distill"]:.4g}); no ratio to carry',
                         'check that the method records the levels it distils (kdlab.core.levels)')
    applicable = applies(method)
    return dict(method=method, student=student, teacher=teacher, ratio_full=full['ratio'],
                ratio_mini=mini['ratio'], factor=full['ratio'] / mini['ratio'] if applicable else 1.0,
                applicable=applicable, det_full=full['det'],
                distill_full=full['distill'], det_mini=mini['det'], distill_mini=mini['distill'],
                images=images, seed=seed, revision=(_git_revision()['revision'] or '')[:12],
                stand_ins=stand_ins(student, teacher), pairing=default_pairing(method, student, teacher))


def trained_table_path() -> Path:
    """Where the trained-state ratios are kept: ``results/mini_v2/loss_scale_trained.csv`` (a measurement beside
    the rule, not the rule's table: the factors stay :data:`TABLE`'s)."""
    from kdlab.engine.report import results_dir
    return results_dir('mini_v2') / 'loss_scale_trained.csv'


def measure_trained(method: str, student: str, teacher: str, *, images: int = IMAGES, seed: int = SEED,
                    store=None) -> dict:
    """The pair's ratio in the trained state (:func:`trained_config`) at mini shapes and, where the released
    weights can be loaded, at full shapes (else NaN and why), beside the rule's initial-state ratios of the same
    pair (:data:`TABLE`): the question the rule leaves open (docs/mini_v2.md), measured as far as this machine
    can."""
    from kdlab.engine.runner import _git_revision
    mini = loss_ratio(method, student, teacher, 'mini', images=images, seed=seed, state='trained', store=store)
    try:
        full, why = loss_ratio(method, student, teacher, 'full', images=images, seed=seed, state='trained',
                               store=store), ''
    except KdlabError as err:
        full, why = dict(ratio=math.nan, det=math.nan, distill=math.nan), str(err).splitlines()[0]
    rule = next((r for r in read_table() if (r['method'], r['student'], r['teacher']) == (method, student, teacher)),
                {})
    return dict(method=method, student=student, teacher=teacher,
                ratio_full_initial=rule.get('ratio_full', math.nan), ratio_mini_initial=rule.get('ratio_mini', math.nan),
                factor=rule.get('factor', math.nan), ratio_mini_trained=mini['ratio'], det_mini=mini['det'],
                distill_mini=mini['distill'], ratio_full_trained=full['ratio'], full_not_measured=why,
                images=images, seed=seed, revision=(_git_revision()['revision'] or '')[:12],
                stand_ins=stand_ins(student, teacher))


def write_trained_rows(rows: Iterable[dict], path: Optional[Path] = None) -> Path:
    """Add or replace ``rows`` (by method, student, teacher) in the trained-state table; keeps it sorted."""
    import pandas as pd
    path = Path(path or trained_table_path())
    old = pd.read_csv(path) if path.is_file() else pd.DataFrame()
    table = pd.concat([old, pd.DataFrame(list(rows))], ignore_index=True)
    table = table.drop_duplicates(['method', 'student', 'teacher'], keep='last')
    table = table.sort_values(['student', 'teacher', 'method']).reset_index(drop=True)
    tmp = path.with_suffix('.tmp')
    table.to_csv(tmp, index=False, float_format='%.6g')
    tmp.replace(path)
    return path


def stand_ins(student: str, teacher: str) -> str:
    """A digest of the pair's mini-v2 backbone stand-ins (:func:`kdlab.zoo.pretrain.architecture`): a factor is
    measured on them, so one measured on other stand-ins (v1's X101, a ResNeXt-50) no longer applies."""
    import hashlib
    from kdlab.zoo import parse_detector
    from kdlab.zoo.pretrain import architecture
    text = '|'.join(architecture(parse_detector(name)[1]) for name in (student, teacher))
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def read_table(path: Optional[Path] = None) -> List[dict]:
    path = Path(path or TABLE)
    if not path.is_file():
        return []
    with open(path, newline='') as f:
        rows = list(csv.DictReader(f))
    for row in rows:
        for key in ('ratio_full', 'ratio_mini', 'factor', 'det_full', 'distill_full', 'det_mini', 'distill_mini'):
            row[key] = float(row[key])
        row['images'], row['seed'] = int(row['images']), int(row['seed'])
        row['applicable'] = str(row['applicable']) == 'True'
        row['pairing'] = row.get('pairing') or 'index'     # rows measured before the column: distill_config's then default
    return rows


def write_rows(rows: Iterable[dict], path: Optional[Path] = None) -> Path:
    """Add or replace ``rows`` (by method, student, teacher) in the table; keeps it sorted."""
    path = Path(path or TABLE)
    table = {(r['method'], r['student'], r['teacher']): r for r in read_table(path)}
    for r in rows:
        table[(r['method'], r['student'], r['teacher'])] = r
    tmp = path.with_suffix('.tmp')
    with open(tmp, 'w', newline='') as f:
        w = csv.DictWriter(f, fieldnames=COLUMNS, lineterminator='\n')
        w.writeheader()
        for key in sorted(table):
            r = dict(table[key])
            for k in ('ratio_full', 'ratio_mini', 'factor', 'det_full', 'distill_full', 'det_mini', 'distill_mini'):
                r[k] = f'{float(r[k]):.6g}'
            w.writerow({k: r[k] for k in COLUMNS})
    tmp.replace(path)
    return path


def rule_factor(method: str, student: str, teacher: str, path: Optional[Path] = None, *,
                pairing: Optional[str] = None) -> float:
    """The committed factor of the pair; raises naming the command that measures it (again, where the pair's
    stand-ins changed since it was measured, :func:`stand_ins`, or where it was measured on another level pairing
    than the run's, ``pairing``, default :func:`kdlab.core.levels.default_pairing`: the paired levels are the
    losses' shapes, which the factor carries)."""
    pairing = pairing or default_pairing(method, student, teacher)
    for row in read_table(path):
        if (row['method'], row['student'], row['teacher']) == (method, student, teacher):
            if row.get('stand_ins') != stand_ins(student, teacher):
                raise KdlabError(f'the loss-scale factor of {method} {student} <- {teacher} was measured on other '
                                 f'mini stand-ins than the current ones (in {TABLE.name})',
                                 f'measure it again: `kdlab loss-scale {method} --pair {student} {teacher} --again`')
            if row['pairing'] != pairing:
                fix = (f'measure it again: `kdlab loss-scale {method} --pair {student} {teacher} --again`'
                       if pairing == default_pairing(method, student, teacher) else
                       f"pass loss_scale= to distill_config, or pairing='{row['pairing']}'")
                raise KdlabError(f'the loss-scale factor of {method} {student} <- {teacher} was measured with the '
                                 f"levels paired by {row['pairing']}, this run pairs them by {pairing} "
                                 f'(in {TABLE.name})', fix)
            return row['factor']
    raise KdlabError(f'the loss-scale rule has no measured factor for {method} {student} <- {teacher} '
                     f'(in {TABLE.name})',
                     f'measure it: `kdlab loss-scale {method} --pair {student} {teacher}` (about a minute), or '
                     'pass loss_scale=1.0 to distill_config to run without the rule')


# ----------------------------------------------------------------------------------------------- CLI
def main(args) -> int:
    from kdlab.methods import METHODS, _load_builtin
    _load_builtin()
    methods: Sequence[str] = args.methods or sorted(METHODS)
    pairs = [tuple(p) for p in args.pair] or [('retinanet_r50', 'retinanet_x101')]
    done = {(r['method'], r['student'], r['teacher']) for r in read_table()
            if r.get('stand_ins') == stand_ins(r['student'], r['teacher'])}   # measured on today's stand-ins
    from kdlab.progress import progress_bar
    if args.tables is not None:       # every distillation these tables (and the leaderboard) ask for
        from kdlab.engine.calibration import distillations
        wanted = dict.fromkeys((d['method'], d['student'], d['teacher'])
                               for d in distillations(**table_choice(args.tables))
                               if not args.methods or d['method'] in args.methods)
    else:
        wanted = dict.fromkeys((m, s, t) for m in methods for s, t in pairs)
    if getattr(args, 'state', 'initial') == 'trained':
        return _main_trained(list(wanted), args)
    todo = [key for key in wanted if args.again or key not in done]
    rows, failed, crashed = [], [], 0
    bar = progress_bar(todo, desc='loss-scale rule', unit='pair')
    for m, s, t in bar:
        try:
            row = measure(m, s, t, images=args.images)
        except KdlabError as err:    # a pair the zoo cannot build yet (a stand-in not pretrained): said, the rest go on
            failed.append(f'{m} {s} <- {t}: {str(err).splitlines()[0]}')
            continue
        except Exception as err:     # a method that fails on a pair is a finding to report, not a reason to stop
            import traceback
            bar.write(traceback.format_exc())
            failed.append(f'{m} {s} <- {t}: FAILED {type(err).__name__}: {err}')
            crashed += 1
            continue
        write_rows([row])
        rows.append(row)
        bar.write(f"{m:8s} {s} <- {t}: ratio full {row['ratio_full']:.4g}, mini {row['ratio_mini']:.4g}, "
                  f"factor {row['factor']:.4g}" + ('' if row['applicable'] else
                                                   ' (the method compares predictions: the rule does not apply)'))
    print(f'{len(rows)} measured, {len(done & set(todo)) if args.again else len(done & set(wanted))} of those '
          f'asked for already in {TABLE}')
    for line in failed:
        print('not measured:', line)
    return 1 if crashed or (failed and not rows) else 0


def table_choice(tables: Sequence[str]) -> dict:
    """``kdlab loss-scale --tables [T ...]`` as :func:`kdlab.engine.calibration.distillations`'s arguments: no
    table named, the seed tables and the leaderboard's pairs; ``all``, every table of the registry and the
    leaderboard; else the named ``paper/table`` ids only (or every table of a named paper)."""
    from kdlab import papers
    if not tables:
        return {}
    if list(tables) == ['all']:
        return dict(tables=[f'{p}/{t}' for p in papers.list_papers() for t in papers.list_tables(p)])
    chosen = []
    for name in tables:
        paper, _, table = name.partition('/')
        known = papers.list_tables(paper) if paper in papers.list_papers() else []
        if not known or (table and table not in known):
            raise KdlabError(f'no table {name!r} in the registry', 'name tables as paper/table (for example '
                             'dfmsd/table2), a paper for all its tables, or all')
        chosen += [f'{paper}/{table}'] if table else [f'{paper}/{t}' for t in known]
    return dict(tables=chosen, pairs=())


def _main_trained(wanted: List[Tuple[str, str, str]], args) -> int:
    from kdlab.progress import progress_bar
    rows, failed = [], []
    bar = progress_bar(wanted, desc='trained-state ratio', unit='pair')
    for m, s, t in bar:
        try:
            row = measure_trained(m, s, t, images=args.images)
        except KdlabError as err:
            failed.append(f'{m} {s} <- {t}: {str(err).splitlines()[0]}')
            continue
        rows.append(row)
        full = (f"not measured ({row['full_not_measured']})" if math.isnan(row['ratio_full_trained'])
                else f"{row['ratio_full_trained']:.4g}")
        bar.write(f"{m:8s} {s} <- {t}: trained state, mini {row['ratio_mini_trained']:.4g} (initial "
                  f"{row['ratio_mini_initial']:.4g}); full {full} (initial {row['ratio_full_initial']:.4g})")
    if rows:
        print('written to', write_trained_rows(rows))
    for line in failed:
        print('not measured:', line)
    return 0 if rows or not failed else 1


def register(sub) -> None:
    p = sub.add_parser('loss-scale', help="measure the mini scale's loss-scale rule (distillation / detection "
                       'loss at the first iteration, full and mini shapes)')
    p.add_argument('methods', nargs='*', help='method ids (default: all)')
    p.add_argument('--pair', nargs=2, action='append', default=[], metavar=('STUDENT', 'TEACHER'),
                   help='a student and teacher (repeatable; default: retinanet_r50 retinanet_x101)')
    p.add_argument('--images', type=int, default=IMAGES)
    p.add_argument('--again', action='store_true', help='measure pairs already in the table again')
    p.add_argument('--tables', nargs='*', default=None, metavar='PAPER[/TABLE]',
                   help='every (method, student, teacher) these tables distil (kdlab.engine.calibration.'
                        'distillations), METHODS limiting them; no table named: the seed tables and the '
                        "leaderboard's pairs; all: every table of the registry and the leaderboard")
    p.add_argument('--state', choices=STATES, default='initial',
                   help="initial: the rule's measurement (every weight at its initialisation), written to its "
                        'table; trained: the state a run starts from (trained teacher, pretrained student), at mini '
                        'shapes and, where the released weights load (KDLAB_CHECKPOINTS), full ones; written to '
                        'results/mini_v2/loss_scale_trained.csv, the factors untouched')
    p.set_defaults(func=main)
