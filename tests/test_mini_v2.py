"""Mini v2's pieces: the cluttered scenes (kdlab.data.scenes), the backbones' pretraining (kdlab.zoo.pretrain)
and the protocol switch that puts them in a mini detector's config (kdlab.zoo.detector_config)."""
import json
import shutil

import numpy as np
import pytest
import torch


# ------------------------------------------------------------------------------------------------- scenes
def test_scenes_are_deterministic_and_annotate_the_visible_part():
    from pycocotools import mask as mask_utils
    from kdlab.data.scenes import CATEGORIES, SceneSpec, render_scene
    spec = SceneSpec()
    assert len(CATEGORIES) >= 12 and spec.num_val >= 500
    a, objs, meta = render_scene(spec, 'train', 3)
    b, objs_b, _ = render_scene(spec, 'train', 3)
    assert np.array_equal(a, b) and objs == objs_b
    backgrounds, overlapping = set(), 0
    for i in range(30):
        img, objs, meta = render_scene(spec, 'val', i)
        assert img.shape == (160, 160, 3) and img.dtype == np.uint8
        backgrounds.add(meta['background'])
        boxes = []
        for o in objs:
            rle = dict(o['segmentation'], counts=o['segmentation']['counts'].encode())
            assert o['area'] == pytest.approx(float(mask_utils.area(rle))) and o['area'] > 0
            assert o['bbox'] == pytest.approx(list(mask_utils.toBbox(rle)))
            assert 1 <= o['category_id'] <= len(CATEGORIES)
            boxes.append(o['bbox'])
        overlapping += any(x0 < x1 + w1 and x1 < x0 + w0 and y0 < y1 + h1 and y1 < y0 + h0
                           for i0, (x0, y0, w0, h0) in enumerate(boxes) for (x1, y1, w1, h1) in boxes[i0 + 1:])
    assert backgrounds == {'photo', 'smooth', 'high_frequency'}
    assert overlapping >= 5                       # objects overlap and occlude each other


def test_scene_objects_are_sized_for_the_detectors_anchors():
    """Mini v2's object sizes (kdlab.data.scenes.SCENE_SIZES): fewer objects below COCO's small threshold than
    v1 and a COCO-like medium share, so that the small ones are not far below the smallest anchor (32 px)."""
    from kdlab.data.scenes import SceneSpec, render_scene
    from kdlab.data.synthetic import PRESETS, render_image
    def shares(render, spec):
        areas = np.array([o['area'] for i in range(60) for o in render(spec, 'val', i)[1]])
        return (areas < 32 ** 2).mean(), (areas >= 96 ** 2).mean(), float(np.median(np.sqrt(areas)))
    small, large, median_side = shares(render_scene, SceneSpec())
    v1_small, _, v1_side = shares(render_image, PRESETS['mini'])
    assert small < 0.7 < v1_small and 1 - small - large > 0.25 and large > 0
    assert median_side > 24 > v1_side


def test_a_small_scene_dataset_loads_in_mmdet_with_its_masks(tmp_path):
    from mmengine.registry import init_default_scope
    from mmdet.registry import DATASETS
    from kdlab.data.scenes import CATEGORIES, SceneSpec, ensure_scenes
    root = ensure_scenes(SceneSpec(num_train=6, num_val=3), root=tmp_path)
    assert root.name.startswith('scenes-') and (root / 'DONE').is_file()
    coco = json.loads((root / 'annotations' / 'instances_val.json').read_text())
    assert len(coco['images']) == 3 and [c['name'] for c in coco['categories']] == list(CATEGORIES)
    init_default_scope('mmdet')
    ds = DATASETS.build(dict(type='CocoDataset', data_root=str(root) + '/', ann_file='annotations/instances_train.json',
                             data_prefix=dict(img='train/'), metainfo=dict(classes=CATEGORIES),
                             pipeline=[dict(type='LoadImageFromFile'),
                                       dict(type='LoadAnnotations', with_bbox=True, with_mask=True),
                                       dict(type='PackDetInputs')]))
    sample = ds[0]['data_samples']
    masks = sample.gt_instances.masks
    assert len(masks) == len(sample.gt_instances.bboxes) > 0
    assert masks.to_ndarray().sum() > 0


# ----------------------------------------------------------------------------------------------- pretraining
@pytest.fixture
def pretrained_dir(tmp_path, monkeypatch):
    from kdlab.zoo import pretrain
    out = tmp_path / 'pretrained'
    monkeypatch.setattr(pretrain, 'PRETRAINED_DIR', out)
    monkeypatch.setenv('KDLAB_DATA', str(tmp_path / 'data'))
    return out


def test_pretraining_writes_fp16_weights_with_their_sha256_and_resumes(pretrained_dir, tmp_path):
    import hashlib
    from kdlab.zoo import pretrain
    img, label = pretrain.render_example('train', 5)
    again, label_again = pretrain.render_example('train', 5)
    assert img.shape == (64, 64, 3) and np.array_equal(img, again) and label == label_again
    kwargs = dict(epochs=2, train_images=128, val_images=64, batch=32, progress=False, cache=tmp_path / 'state',
                  min_over_chance=0)                   # two tiny epochs: no accuracy to ask for
    entry = pretrain.pretrain('r18', **kwargs)
    path = pretrained_dir / entry['file']
    assert hashlib.sha256(path.read_bytes()).hexdigest() == entry['sha256']
    assert entry['file'] == f"r18-{entry['sha256'][:8]}.pth" and [h['epoch'] for h in entry['history']] == [1, 2]
    weights = torch.load(path, weights_only=False)['state_dict']
    assert all(v.dtype == torch.float16 for v in weights.values() if v.is_floating_point())
    assert json.loads((pretrained_dir / 'index.json').read_text())['r18']['sha256'] == entry['sha256']
    # a finished state is resumed, not trained again: same weights, same history
    assert pretrain.pretrain('r18', **kwargs)['sha256'] == entry['sha256']


def test_pretraining_never_resumes_another_stand_ins_state(pretrained_dir, tmp_path, monkeypatch):
    from kdlab.zoo import MINI_V2_BACKBONES, pretrain
    kwargs = dict(epochs=1, train_images=64, val_images=32, batch=32, progress=False, cache=tmp_path / 'state',
                  min_over_chance=0)
    first = pretrain.pretrain('r18', **kwargs)
    bb, channels = MINI_V2_BACKBONES['r18']
    monkeypatch.setitem(MINI_V2_BACKBONES, 'r18', (dict(bb, depth=34), channels))   # a changed stand-in
    from kdlab.errors import KdlabError
    with pytest.raises(KdlabError, match='another stand-in'):      # its old weights are never loaded into it
        pretrain.pretrained_init('r18')
    second = pretrain.pretrain('r18', **kwargs)          # trained afresh: loading the old state would raise
    assert second['sha256'] != first['sha256'] and [h['epoch'] for h in second['history']] == [1]
    assert pretrain.pretrained_init('r18')['checkpoint'].endswith(second['file'])
    assert not (pretrained_dir / first['file']).exists()            # the replaced weights are gone


def test_the_swin_recipe_warms_up_on_silhouettes(pretrained_dir, tmp_path, monkeypatch):
    """Swin's part of the recipe: silhouettes first, then pool images rising to all; the ResNets have none, and a
    state trained with another warm-up is not resumed."""
    from kdlab.zoo import pretrain
    assert set(pretrain.SILHOUETTE_WARMUP) == {'swin_t', 'swin_s'}
    image, label = pretrain.render_silhouette(3)
    again, _ = pretrain.render_silhouette(3)
    assert np.array_equal(image, again) and set(np.unique(image)) == {0, 255} and 0 <= label < len(pretrain.CLASSES)
    assert not np.array_equal(image, pretrain.render_silhouette(4)[0])
    mix = [pretrain.silhouettes_in_batch(step, 64, (300, 1200)) for step in (0, 299, 300, 900, 1500, 4000)]
    assert mix == [64, 64, 64, 32, 0, 0]
    kwargs = dict(epochs=1, train_images=64, val_images=32, batch=32, progress=False, cache=tmp_path / 'state',
                  min_over_chance=0)
    plain = pretrain.pretrain('r18', **kwargs)
    assert 'silhouette_warmup' not in plain and plain['lr'] == pretrain.LR    # the ResNets' recipe as it was
    assert all(pretrain.LEARNING_RATE[b] < pretrain.LR for b in pretrain.SILHOUETTE_WARMUP)   # Swin's own rate
    monkeypatch.setattr(pretrain, 'SILHOUETTE_IMAGES', 50)
    warmed = pretrain.pretrain('r18', silhouette_warmup=(1, 1), **kwargs)     # not the plain state resumed
    assert warmed['silhouette_warmup'] == [1, 1] and warmed['sha256'] != plain['sha256']


def test_a_backbone_that_learnt_nothing_is_not_called_pretrained(pretrained_dir, tmp_path):
    """A stand-in at chance after its recipe (the Swin ones) raises, naming its state, and writes no weights."""
    from kdlab.errors import KdlabError
    from kdlab.zoo import pretrain
    with pytest.raises(KdlabError, match='learnt nothing'):
        pretrain.pretrain('r18', epochs=1, train_images=64, val_images=32, batch=32, progress=False,
                          cache=tmp_path / 'state', min_over_chance=22.0)     # 100 %: nothing passes
    assert (tmp_path / 'state' / 'last.pth').is_file() and not pretrained_dir.exists()
    assert pretrain.MIN_TOP1_OVER_CHANCE * 100 / len(pretrain.CLASSES) > 10      # the default: above 4.5 % x 2


def test_a_v2_detector_loads_the_pretrained_backbone(pretrained_dir, tmp_path, monkeypatch):
    from kdlab.zoo import detector_config, pretrain
    from kdlab.errors import KdlabError
    with pytest.raises(KdlabError, match='kdlab pretrain r18'):
        pretrain.pretrained_init('r18')
    entry = pretrain.pretrain('r18', epochs=1, train_images=64, val_images=32, batch=32, progress=False,
                              cache=tmp_path / 'state', min_over_chance=0)
    cfg = detector_config('retinanet_r18', 'mini', protocol='v2',
                          data_root=str(_tiny_scenes(tmp_path)))
    backbone = cfg.model.backbone
    assert backbone.init_cfg == dict(type='Pretrained', checkpoint=f"kdlab://pretrained/{entry['file']}")
    assert backbone.frozen_stages == 1 and backbone.norm_eval is True
    assert cfg.model.bbox_head.num_classes == 14
    from kdlab.models import build_model
    model = build_model(cfg.model)          # weights initialised as a run's: the pretrained backbone loaded
    saved = torch.load(pretrained_dir / entry['file'], weights_only=False)['state_dict']
    assert torch.equal(model.backbone.conv1.weight, saved['conv1.weight'].float())
    path = pretrained_dir / entry['file']
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))                                 # a corrupted copy is refused by its sha256
    with pytest.raises(KdlabError, match='sha256'):
        pretrain.resolve(backbone.init_cfg['checkpoint'])


def test_a_v2_swin_detector_loads_the_committed_pretrained_backbone(tmp_path):
    """mmdet's SwinTransformer loads its checkpoint itself and keeps only ``backbone.`` keys: through the bare layout
    a ResNet loads it found none and failed ("list index out of range"); kdlab://classifier/ serves that layout."""
    from kdlab.models import build_model
    from kdlab.zoo import detector_config, pretrain
    cfg = detector_config('retinanet_swin_t', 'mini', protocol='v2', data_root=str(_tiny_scenes(tmp_path)))
    entry = pretrain.pretrained_index()['swin_t']
    assert cfg.model.backbone.init_cfg == dict(type='Pretrained', checkpoint=f"kdlab://classifier/{entry['file']}")
    model = build_model(cfg.model)
    saved = torch.load(pretrain.PRETRAINED_DIR / entry['file'], weights_only=False)['state_dict']
    loaded = model.backbone.state_dict()
    assert len(saved) > 50 and all(torch.equal(loaded[k], v.to(loaded[k].dtype)) for k, v in saved.items())


def _tiny_scenes(tmp_path):
    from kdlab.data.scenes import SceneSpec, ensure_scenes
    return ensure_scenes(SceneSpec(num_train=4, num_val=2), root=tmp_path / 'scenes')


def test_every_process_that_imports_kdlab_resolves_kdlab_checkpoint_names():
    """A torchrun worker (-w N, --gpus N) builds a mini-v2 detector before anything imports kdlab.zoo.pretrain: the
    kdlab:// scheme is registered by ``import kdlab`` (found by the leaderboard's first -w 2 call under v2)."""
    import subprocess
    import sys
    from kdlab.zoo.pretrain import pretrained_index
    name = next(iter(pretrained_index().values()))['file']
    code = ('import sys, kdlab\n'
            'from mmengine.runner import CheckpointLoader\n'
            'assert "kdlab.zoo.pretrain" not in sys.modules\n'
            f'state = CheckpointLoader.load_checkpoint("kdlab://pretrained/{name}", "cpu")\n'
            'print(len(state["state_dict"]))\n')
    out = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert int(out.stdout.split()[-1]) > 10


def test_the_protocol_switch(monkeypatch):
    from kdlab.errors import UnknownNameError
    from kdlab.zoo import detector_config, mini_protocol
    monkeypatch.delenv('KDLAB_MINI', raising=False)
    assert mini_protocol() == 'v1'
    v1 = detector_config('retinanet_r50', 'mini')
    assert v1.model.bbox_head.num_classes == 6 and v1.model.backbone.get('init_cfg') is None
    assert '/synthetic-' in v1.data_root
    assert (v1.train_cfg.max_epochs, v1.train_dataloader.batch_size) == (12, 8)     # v1's keys stay as stored
    from kdlab.zoo import MINI_V2_EPOCHS
    from kdlab.data import MINI_V2_IMAGES_PER_GPU
    assert (MINI_V2_EPOCHS['1x'], MINI_V2_EPOCHS['2x'], MINI_V2_IMAGES_PER_GPU) == (48, 96, 4)
    monkeypatch.setenv('KDLAB_MINI', 'v3')
    with pytest.raises(UnknownNameError, match='mini protocol'):
        mini_protocol()
    assert mini_protocol('v2') == 'v2'


def test_teacher_gaps_reads_both_runs_as_the_planner_keys_them(tmp_path, monkeypatch):
    """A leaderboard pair planned under v2 (teacher 1x, student 1x): a lead under 2 mAP breaks the rule, a run
    not stored says so, a DFMSD chain's assistant counts, a teacher the zoo cannot build yet says why."""
    import json
    import os
    from kdlab.engine.calibration import teacher_gaps
    from kdlab.engine.planner import plan_pair
    from kdlab.engine.store import RunStore
    store = RunStore(root=tmp_path / 'runs', work_root=tmp_path / 'work')
    monkeypatch.setenv('KDLAB_MINI', 'v2')
    plan = plan_pair('retinanet_r50', ['retinanet_r101'], 'dfmsd', 'mini')
    keys = dict(teacher=plan.rows['teacher:retinanet_r101'], student=plan.rows['baseline'])
    monkeypatch.setenv('KDLAB_MINI', 'v1')         # teacher_gaps plans under its own protocol

    def store_run(key, mAP):
        (store.run_dir(key)).mkdir(parents=True)
        (store.run_dir(key) / 'run.json').write_text(json.dumps(dict(key=key, status='finished',
                                                                     metrics=dict(mAP=mAP))))

    def gaps():
        return teacher_gaps((), [('retinanet_r50', 'retinanet_r101'), ('retinanet_r50', 'mask_rcnn_swin_s')],
                            store=store).set_index('teacher')
    store_run(keys['student'], 50.8)
    r101 = gaps().loc['retinanet_r101']
    assert r101['status'] == 'not trained: retinanet_r101 1x' and r101['student_mAP'] == 50.8
    store_run(keys['teacher'], 52.0)
    frame = gaps()
    r101 = frame.loc['retinanet_r101']
    assert (r101['lead'], r101['meets_rule'], r101['teacher_run']) == (1.2, False, keys['teacher'])
    # beside it, the released checkpoints' lead on COCO (mmdet's metafiles: RetinaNet R101 1x 38.5, R50 1x 36.5)
    assert (r101['teacher_coco'], r101['student_coco'], r101['coco_lead']) == (38.5, 36.5, 2.0)
    assert r101['tables'] == 'leaderboard' and r101['teacher_schedule'] == '1x'
    assert {'mask_rcnn_swin_t', 'mask_rcnn_swin_s'} <= set(frame.index)             # DFMSD's Swin-T -> Swin-S
    assert os.environ['KDLAB_MINI'] == 'v1'        # the protocol of the caller is left as it was


def test_the_makefiles_mini_tables_are_seed_tables():
    import re
    from pathlib import Path
    from kdlab.engine.calibration import SEED_TABLES
    text = (Path(__file__).resolve().parents[1] / 'Makefile').read_text()
    tables = re.search(r'^MINI_TABLES := (.*)$', text, re.M).group(1).split()
    assert set(tables) <= set(SEED_TABLES) and set(SEED_TABLES) - set(tables) == {'dfmsd/table6'}


def test_the_distillations_of_the_seed_tables_name_each_stage_of_a_chain():
    """What the ladder's and the loss-scale rule's checks walk: a DFMSD row distils from each teacher of its chain,
    the leaderboard's DFMSD cell through its paper's chain, every other method from the pair's teacher."""
    from kdlab.engine.calibration import distillations
    found = {(d['method'], d['student'], d['teacher'], d['where']) for d in distillations()}
    assert ('dfmsd', 'retinanet_r50', 'retinanet_r101', 'dfmsd/table6') in found
    assert ('dfmsd', 'retinanet_r50', 'retinanet_x101', 'dfmsd/table6') in found
    assert ('dfmsd', 'retinanet_r50', 'retinanet_r101', 'leaderboard') in found
    assert ('pkd', 'retinanet_r50', 'retinanet_r101', 'leaderboard') not in found     # one teacher for the others
    assert ('icd', 'faster_rcnn_r50', 'faster_rcnn_r101', 'leaderboard') in found
    assert not any(d['method'] == 'baseline' for d in distillations())


def test_the_v2_demo_compares_with_a_record_distilled_from_the_teachers_committed_weights():
    """`KDLAB_MINI=v2 make demo` trains the cell's PKD student again on a fresh clone, which has the teacher's
    committed fp16 weights only; its seed (demo.SEEDS) is one whose stored record learnt from those weights, not
    from the float32 checkpoint that stays on the machine that trained the teacher, so the two can be equal."""
    from kdlab import demo
    from kdlab.engine.planner import plan_pair
    from kdlab.engine.store import RunStore
    from kdlab.zoo import under_protocol
    with under_protocol('v2'):
        plan = plan_pair(demo.DEFAULTS['student'], [demo.DEFAULTS['teacher']], demo.DEFAULTS['method'], 'mini',
                         seed=demo.SEEDS['v2'])
    from pathlib import Path
    store = RunStore(Path(__file__).resolve().parents[1] / 'results' / 'runs')      # the committed records
    record = json.loads((store.run_dir(plan.rows['distilled']) / 'run.json').read_text())
    (teacher_key, built), = record['built_from'].items()
    teacher = json.loads((store.run_dir(teacher_key) / 'run.json').read_text())
    assert teacher['committed_weights']['from_checkpoint_sha256'] == teacher['checkpoint_sha256']
    assert built['checkpoint_sha256'] != teacher['checkpoint_sha256']       # the rounded weights, not the original
    assert [p['epoch'] for p in record['curve']][:demo.FIRST_EPOCHS['v2']] == \
        list(range(1, demo.FIRST_EPOCHS['v2'] + 1))                         # the point the demo compares with


def test_the_demo_says_whether_its_machine_computes_like_the_records():
    """Trained again on another CPU, the same run drifts (README, `make demo`: 14.7 against 17.7 mAP at epoch 4,
    AVX2 against AVX512); the demo names the difference and the teacher's score here, so a reader can tell a
    machine's rounding from another input."""
    from kdlab.demo import against_record
    from kdlab.engine.runner import COMPUTE_FIELDS, machine, machine_differences
    assert set(COMPUTE_FIELDS) <= set(machine())                   # every field compared is one a record holds
    assert machine_differences(machine(), machine()) == []
    stored = {'cpu': 'AMD EPYC', 'cpu_capability': 'AVX2', 'device_name': 'cpu', 'mmcv_ops': 'kdlab (plain torch)',
              'packages': {'torch': '2.13.0+cpu', 'numpy': '2.4.6'}}
    assert machine_differences(stored, dict(stored, host='other')) == []        # the host's name alone is not one
    other = dict(stored, cpu='Intel Xeon', cpu_capability='AVX512', packages={'torch': '2.14.0+cpu', 'numpy': '2.4.6'})
    assert machine_differences(stored, other) == ['cpu AMD EPYC -> Intel Xeon', 'cpu_capability AVX2 -> AVX512',
                                                  'torch 2.13.0+cpu -> 2.14.0+cpu']
    gate = {'evaluated': True, 'mAP': 61.0, 'reference_mAP': 61.0}
    here = {'provenance': other, 'checks': {'teacher_gate': gate}}
    note = against_record({'provenance': stored}, here)
    assert note.startswith('its teacher scored 61.0 mAP here, 61.0 in its record; this machine computes differently')
    assert 'cpu_capability AVX2 -> AVX512' in note
    assert against_record({'provenance': stored}, {'provenance': stored}) == 'the same CPU and packages as its record'


def test_a_trials_pretrained_swin_backbone_is_loaded_in_the_layout_swin_reads(tmp_path):
    """``kdlab calibrate --trial ... --pretrained FILE`` with weights of ``kdlab pretrain --out-dir``: a ResNet reads
    the file as it is, a Swin (which keeps only ``backbone.`` keys) a copy in the classifier layout; its weights
    arrive in the model."""
    from kdlab.engine.calibration import trial_config
    from kdlab.models import build_model
    from kdlab.zoo import pretrain
    entry = pretrain.pretrained_index()['swin_t']
    trial_file = tmp_path / 'swin_t-trial.pth'                 # as --out-dir writes it: the bare layout
    shutil.copy(pretrain.PRETRAINED_DIR / entry['file'], trial_file)
    cfg = trial_config('retinanet_swin_t', '1x', pretrained=str(trial_file))
    assert cfg.model.backbone.init_cfg['checkpoint'] != str(trial_file)
    model = build_model(cfg.model)
    saved = torch.load(trial_file, weights_only=False)['state_dict']
    loaded = model.backbone.state_dict()
    assert all(torch.equal(loaded[k], v.float()) for k, v in saved.items() if k in loaded and v.is_floating_point())
    assert sum(k in loaded for k in saved) == len(saved)
    resnet = trial_config('retinanet_r50', '1x', pretrained=str(trial_file))     # a ResNet reads the file itself
    assert resnet.model.backbone.init_cfg == dict(type='Pretrained', checkpoint=str(trial_file.resolve()))
