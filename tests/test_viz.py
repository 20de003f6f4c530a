"""kdlab.viz and kdlab.analysis: mmengine's reductions, one colour scale across models, exported files that a
person can read, the masks each method derives from the teacher, image sources, model features."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

import matplotlib

matplotlib.use('Agg')

from kdlab import viz  # noqa: E402
from kdlab.analysis import features, images as image_sources, masks  # noqa: E402
from kdlab.analysis.features import FeatureMaps  # noqa: E402
from kdlab.analysis.images import SampleImage  # noqa: E402
from kdlab.errors import KdlabError  # noqa: E402
from kdlab.viz import distributions, masks as mask_plots  # noqa: E402


def _fmaps(seed=0, scale=1.0, c=8, size=64, strides=(8, 16, 32), boxes=((8, 8, 40, 40),)):
    """FeatureMaps of a synthetic image: random maps (times ``scale``) at the given strides."""
    g = torch.Generator().manual_seed(seed)
    img = np.random.default_rng(seed).integers(0, 256, (size, size, 3)).astype(np.uint8)
    maps = [scale * torch.randn(c, size // s, size // s, generator=g) for s in strides]
    image = SampleImage('img', img, np.array(boxes, np.float32), np.ones(len(boxes), np.int64))
    return FeatureMaps(image, [f'P{int(np.log2(s))}' for s in strides], maps, list(strides), (size, size), (1.0, 1.0))


# -------------------------------------------------------------------------------------------- reductions
def test_reductions_follow_mmengine_draw_featmap():
    f = torch.zeros(4, 3, 5)
    f[2] = 5.0                                    # channel 2 has the largest sum
    f[1] = torch.arange(15.).reshape(3, 5) / 10   # channel 1 the second largest (sum 10.5)
    np.testing.assert_allclose(viz.reduce_featmap(f, 'squeeze_mean'), f.mean(0).numpy())
    np.testing.assert_array_equal(viz.reduce_featmap(f, 'select_max'), f[2].numpy())
    top = viz.reduce_featmap(f, None, topk=2)
    assert top.shape == (2, 3, 5)
    np.testing.assert_array_equal(top[0], f[2].numpy())
    np.testing.assert_array_equal(top[1], f[1].numpy())
    assert viz.topk_channels(f, 10).tolist()[:2] == [2, 1]   # k is capped at C
    assert viz.reduce_featmap(f[:3], None, topk=0).shape == (3, 3, 5)   # shown as an image
    with pytest.raises(ValueError):
        viz.reduce_featmap(f, None, topk=0)        # 4 channels cannot be an image
    with pytest.raises(KdlabError):
        viz.reduce_featmap(f, 'squeeze_max')


def test_map_to_image_resizes_through_the_stride_and_crops_the_padding():
    m = np.zeros((3, 3), np.float32)
    m[:, 2] = 9.0                                # the last column covers input pixels 32..47, beyond a 40-px image
    out = viz.map_to_image(m, stride=16, input_shape=(48, 40), image_shape=(96, 80), mode='nearest')
    assert out.shape == (96, 80)
    assert (out[:, :63] == 0).all() and (out[:, 64:] == 9).all()      # pixel 32 of 40 -> 64 of 80
    assert np.allclose(viz.map_to_image(np.full((2, 2), 3.0), stride=8, input_shape=(16, 16),
                                        image_shape=(50, 70)), 3.0)


def test_shared_norm_spans_every_map():
    a, b = np.array([[0.0, 1.0]]), np.array([[-2.0, 0.5]])
    n = viz.shared_norm([a, b])
    assert (n.vmin, n.vmax) == (-2.0, 1.0)
    assert viz.shared_norm([a, b], symmetric=True).vmax == 2.0
    p = viz.shared_norm([np.arange(101.0)], mode='percentile', percentiles=(10, 90))
    assert (p.vmin, p.vmax) == pytest.approx((10.0, 90.0))
    flat = viz.shared_norm([np.full((2, 2), 4.0)])
    assert flat.vmax > flat.vmin == 4.0
    with pytest.raises(KdlabError):
        viz.shared_norm([a], mode='zscore')


def test_featmap_grid_shares_one_colour_scale_across_models():
    t = _fmaps(0)
    s = FeatureMaps(t.image, t.levels, [0.5 * m for m in t.maps], t.strides, t.input_shape, t.scale_factor)
    fig = viz.plot_featmap_grid({'teacher': [t], 'student': [s]})
    axes = np.array(fig.axes[:6]).reshape(2, 3)
    for j in range(3):
        norms = [(ax.images[-1].norm.vmin, ax.images[-1].norm.vmax) for ax in axes[:, j]]
        assert norms[0] == norms[1]                               # one scale per level, shared by the rows
        arr_t, arr_s = axes[0, j].images[-1].get_array(), axes[1, j].images[-1].get_array()
        assert np.ptp(arr_s) == pytest.approx(0.5 * np.ptp(arr_t), rel=1e-4)   # the student looks half as strong
    assert len(fig.axes) == 6 + 3                                  # a colour bar per level
    assert all(cb.get_xlabel() or cb.get_ylabel() for cb in fig.axes[6:])
    one = viz.plot_featmap_grid({'teacher': [t], 'student': [s]}, share='all')
    assert len({(ax.images[-1].norm.vmin, ax.images[-1].norm.vmax) for ax in one.axes[:6]}) == 1
    matplotlib.pyplot.close('all')


# --------------------------------------------------------------------------------------------- exporting
def test_save_figure_writes_stable_readable_files(tmp_path):
    fig = viz.plot_featmap_grid({'teacher': [_fmaps(1)]})
    paths = viz.save_figure(fig, 'nb', 'fpn_maps', ['png', 'pdf', 'svg'], root=tmp_path)
    assert [p.name for p in paths] == ['fpn_maps.png', 'fpn_maps.pdf', 'fpn_maps.svg']
    assert all(p.parent == tmp_path / 'nb' for p in paths)
    stats = viz.png_stats(paths[0])
    assert stats['std'] > 20 and stats['colours'] > 100 and stats['top_colour_share'] < 0.9
    assert paths[1].read_bytes()[:5] == b'%PDF-' and paths[1].stat().st_size > 5000
    assert b'<svg' in paths[2].read_bytes()[:2000]
    # a notebook run again writes the same bytes (no timestamps in the files)
    again = viz.plot_featmap_grid({'teacher': [_fmaps(1)]})
    again_paths = viz.save_figure(again, 'nb2', 'fpn_maps', ['png', 'pdf', 'svg'], root=tmp_path)
    assert [p.read_bytes() for p in again_paths] == [p.read_bytes() for p in paths]
    assert viz.save_figure(fig, 'nb', 'other', [], root=tmp_path) == []
    assert viz.save_figure(fig, 'nb', 'other', None, root=tmp_path) == []
    assert not (tmp_path / 'nb' / 'other.png').exists()
    with pytest.raises(KdlabError):
        viz.save_figure(fig, 'nb', 'x', ['jpeg'], root=tmp_path)
    with pytest.raises(KdlabError):
        viz.save_figure(fig, 'nb', '../escape', ['png'], root=tmp_path)
    blank = matplotlib.pyplot.figure()
    b = viz.save_figure(blank, 'nb', 'blank', 'png', root=tmp_path)[0]
    assert viz.png_stats(b)['colours'] == 1                  # what the blank check catches
    matplotlib.pyplot.close('all')


def test_figures_root_follows_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv('KDLAB_FIGURES', str(tmp_path / 'figs'))
    assert viz.figures_root() == tmp_path / 'figs'
    monkeypatch.delenv('KDLAB_FIGURES')
    assert viz.figures_root().parts[-2:] == ('results', 'figures')


# ------------------------------------------------------------------------------------------------- masks
def test_method_masks_follow_the_teacher_attention():
    fm = _fmaps(2, c=16, size=64)
    lms = masks.method_masks(fm, mask_ratio=0.5, temperature=0.5, scales=(1, 2), seed=0)
    assert [lm.level for lm in lms] == fm.levels
    for lm, T in zip(lms, fm.maps):
        h, w = T.shape[-2:]
        assert set(lm.masks) == {'MGD', 'AMD/DMKD', 'DSAMKD s=2'}
        keep = lm.masks['AMD/DMKD']
        assert keep.shape == (h, w) and (1 - keep).sum() == int(np.floor(0.5 * h * w + 0.5))
        att = lm.spatial_attention
        assert att.mean() == pytest.approx(1.0, rel=1e-5)
        assert lm.channel_attention.mean() == pytest.approx(1.0, rel=1e-5)
        assert att[keep == 0].min() >= att[keep == 1].max()        # the most attended positions are masked
        ca, ck = lm.channel_attention, lm.channel_keep
        assert ca[ck == 0].min() >= ca[ck == 1].max() and (ck == 0).sum() == 8
        assert lm.masks['DSAMKD s=2'].shape == (h, w)
    other = masks.method_masks(fm, mask_ratio=0.5, seed=1)
    assert not np.array_equal(other[0].masks['MGD'], lms[0].masks['MGD'])        # random, seeded
    assert np.array_equal(other[0].masks['AMD/DMKD'], lms[0].masks['AMD/DMKD'])  # attention-guided
    enh = _fmaps(3, c=16, size=64)
    with_enh = masks.method_masks(fm, enhanced=enh, levels=['P3'])
    assert [lm.level for lm in with_enh] == ['P3'] and 'DFMSD' in with_enh[0].masks
    assert with_enh[0].enhanced_channel_keep is not None


def test_masks_match_the_losses():
    from kdlab.models.losses.dmkd import DMKDLoss
    fm = _fmaps(4, c=16)
    lm = masks.method_masks(fm, mask_ratio=0.65, temperature=0.5)[0]
    loss = DMKDLoss(mask_ratio=0.65, temperature=0.5)
    np.testing.assert_array_equal(lm.masks['AMD/DMKD'], loss.spatial_mask(fm.maps[0][None])[0, 0].numpy())
    np.testing.assert_array_equal(lm.channel_keep, loss.channel_mask(fm.maps[0][None])[0, :, 0, 0].numpy())


def test_instance_attention_finds_the_instance():
    fm = _fmaps(5, c=16, size=64, boxes=((0, 0, 24, 24), (40, 40, 64, 64)))
    for k, s in enumerate(fm.strides):                     # give each box a distinctive feature on every level
        n = fm.maps[k].shape[-1]
        a = max(1, 24 // s)
        fm.maps[k][:, :a, :a] = 0
        fm.maps[k][0, :a, :a] = 12.0
        b = 40 // s
        fm.maps[k][:, b:, b:] = 0
        fm.maps[k][1, b:, b:] = 12.0
    per_instance, mask = masks.instance_attention(fm, fm.image.boxes)
    assert len(per_instance) == 2
    for q in range(2):
        total = sum(float(m.sum()) for m in per_instance[q])
        assert total == pytest.approx(1.0, rel=1e-5)            # a softmax over all positions of all levels
    p3 = per_instance[0][0]
    assert p3[:3, :3].mean() > 10 * p3[5:, 5:].mean()           # instance 0 looks at its own box
    assert per_instance[1][0][5:, 5:].mean() > 10 * per_instance[1][0][:3, :3].mean()
    np.testing.assert_allclose(mask[0], per_instance[0][0] + per_instance[1][0], rtol=1e-5)
    empty, zero = masks.instance_attention(fm, np.zeros((0, 4)))
    assert empty == [] and all((z == 0).all() for z in zero)


def test_mask_and_attention_figures_are_drawn(tmp_path):
    fm = _fmaps(6, c=16)
    lms = masks.method_masks(fm, enhanced=_fmaps(7, c=16))
    figs = {'spatial': mask_plots.plot_spatial_attention(lms, fm, temperature=0.5),
            'channel': mask_plots.plot_channel_attention(lms, mask_ratio=0.65),
            'masks': mask_plots.plot_method_masks(lms, fm, enhanced_fm=_fmaps(7, c=16)),
            'icd': mask_plots.plot_instance_attention(*masks.instance_attention(fm, fm.image.boxes), fm,
                                                      fm.image.boxes),
            'icd_empty': mask_plots.plot_instance_attention([], [], fm, np.zeros((0, 4)))}
    for name, fig in figs.items():
        png = viz.save_figure(fig, 'masks', name, 'png', root=tmp_path)[0]
        assert viz.png_stats(png)['colours'] > 50, name
    rows = {ax.get_ylabel().split('\n')[0] for ax in figs['masks'].axes if ax.get_ylabel()}
    assert {'MGD', 'AMD / DMKD', 'DFMSD', 'DSAMKD'} <= rows
    for ax in figs['channel'].axes:
        assert ax.get_xlabel() == 'channel (sorted by A_C)'
    matplotlib.pyplot.close('all')


# ------------------------------------------------------------------------------------------ image sources
def test_image_sources(tmp_path, smoke_data):
    syn = image_sources.load_images('synthetic', 3, scale='smoke')
    assert len(syn) == 3 and syn[0].image.shape == (96, 96, 3) and syn[0].boxes.shape[1] == 4
    assert syn[0].source == 'synthetic:smoke'
    sk = image_sources.load_images('skimage:camera,coffee')
    assert [s.name for s in sk] == ['camera', 'coffee'] and sk[0].image.shape[-1] == 3 and sk[0].boxes is None
    from PIL import Image
    folder = tmp_path / 'mine'
    folder.mkdir()
    Image.fromarray(sk[1].image).save(folder / 'b.png')
    Image.fromarray(sk[0].image[..., 0]).save(folder / 'a.jpg')
    (folder / 'notes.txt').write_text('not an image')
    mine = image_sources.load_images(str(folder), None)
    assert [m.name for m in mine] == ['a.jpg', 'b.png'] and mine[0].image.ndim == 3
    coco = image_sources.load_images(f'coco:{smoke_data}:val', 2)
    ann = json.loads((smoke_data / 'annotations' / 'instances_val.json').read_text())
    first = ann['images'][0]
    n_boxes = sum(a['image_id'] == first['id'] for a in ann['annotations'])
    assert coco[0].name == first['file_name'] and len(coco[0].boxes) == n_boxes
    x, y, w, h = next(a['bbox'] for a in ann['annotations'] if a['image_id'] == first['id'])
    np.testing.assert_allclose(coco[0].boxes[0], [x, y, x + w, y + h], rtol=1e-5)
    assert len(image_sources.load_images(str(smoke_data), 2)) == 2       # a folder with annotations/ is COCO
    assert image_sources.source_slug('synthetic') == 'synthetic'
    assert image_sources.source_slug('skimage:camera,coffee') == 'skimage-camera-coffee'
    assert image_sources.source_slug(str(folder)) == 'mine'
    assert image_sources.source_slug(f'coco:{smoke_data}:val') == 'coco-val'
    with pytest.raises(KdlabError):
        image_sources.load_images(str(tmp_path / 'missing'))
    with pytest.raises(KdlabError):
        image_sources.load_images(f'coco:{tmp_path}')


# ------------------------------------------------------------------------------------------------ models
@pytest.fixture(scope='module')
def untrained(kdlab_cache):
    return features.load_detector('retinanet_r18', None, scale='smoke', role='student')


def test_fpn_features_of_a_model(untrained, tmp_path):
    assert untrained.name == 'student (retinanet_r18, untrained)'
    sample = image_sources.load_images('synthetic', 2, scale='smoke') + image_sources.load_images('skimage:coffee')
    feats = features.extract_fpn(untrained, sample)
    assert feats[0].levels == ['P3', 'P4', 'P5', 'P6', 'P7'] and feats[0].strides == [8, 16, 32, 64, 128]
    assert [tuple(m.shape[-2:]) for m in feats[0].maps] == [(12, 12), (6, 6), (3, 3), (2, 2), (1, 1)]
    coffee = feats[2]                             # 400 x 600 -> the smoke test pipeline's 64 x 96 (keep ratio)
    assert coffee.input_shape == (64, 96) and coffee.maps[0].shape[-2:] == (8, 12)
    assert coffee.scale_factor == pytest.approx((0.16, 0.16))
    # a model against itself: every channel correlates perfectly, magnitudes are equal
    stats = features.channel_stats(feats, feats, name='self')
    assert len(stats) == 5 * 64
    live = stats['teacher_std'] > 1e-6
    np.testing.assert_allclose(stats.loc[live, 'pearson_r'], 1.0, atol=1e-4)
    np.testing.assert_allclose(stats['teacher_abs'], stats['student_abs'])
    summary = features.level_summary(stats)
    assert list(summary['level']) == ['P3', 'P4', 'P5', 'P6', 'P7'] and (summary['abs_ratio'] == 1).all()
    # the statistics figures and the distributions, exported
    for name, fig in {'pearson': distributions.plot_pearson_by_level(stats),
                      'mags': distributions.plot_channel_magnitudes(stats),
                      'dist': distributions.plot_value_distributions({'a': feats})}.items():
        png = viz.save_figure(fig, 'stats', name, 'png', root=tmp_path)[0]
        assert viz.png_stats(png)['colours'] > 20, name
    matplotlib.pyplot.close('all')


def test_a_distillation_checkpoint_gives_its_student(untrained, tmp_path):
    state = {f'architecture.{k}': v + 1 for k, v in untrained.model.state_dict().items()}
    state['teacher.backbone.conv1.weight'] = torch.zeros(1)
    path = tmp_path / 'distill.pth'
    torch.save({'state_dict': state, 'meta': {}}, path)
    det = features.load_detector('retinanet_r18', str(path), scale='smoke', role='student')
    assert det.name == 'student (retinanet_r18)'
    ref = untrained.model.state_dict()
    for k, v in det.model.state_dict().items():
        if v.dtype.is_floating_point:
            assert torch.equal(v, ref[k] + 1), k
    with pytest.raises(KdlabError, match='does not match'):
        features.load_detector('retinanet_x101', str(path), scale='smoke')
    with pytest.raises(KdlabError, match='does not exist'):
        features.load_detector('retinanet_r18', str(tmp_path / 'nope.pth'), scale='smoke')


def test_missing_default_models_say_how_to_get_them(tmp_path, kdlab_cache):
    from kdlab.engine.store import RunStore
    with pytest.raises(KdlabError) as err:
        features.default_detectors('mini', store=RunStore(tmp_path / 'runs', tmp_path / 'work'))
    assert 'kdlab demo --scale mini' in str(err.value) and 'teacher' in str(err.value)


def test_level_names_come_from_the_stride_even_when_the_input_is_not_divisible():
    from kdlab.analysis.features import level_stride
    sizes_160 = [(20, 20), (10, 10), (5, 5), (3, 3), (2, 2)]        # a 160-px input: P6 and P7 round up
    strides, prev = [], None
    for hw in sizes_160:
        prev = level_stride(hw, (160, 160), previous=prev)
        strides.append(prev)
    assert strides == [8, 16, 32, 64, 128]
    assert level_stride((1, 1), (32, 32), previous=64) == 128       # tiny inputs: strides still double
    assert level_stride((25, 38), (800, 1216)) == 32


def test_an_interactive_run_keeps_the_committed_figures_unless_asked(tmp_path, monkeypatch):
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    from kdlab.viz import export
    monkeypatch.delenv('KDLAB_FIGURES', raising=False)
    monkeypatch.setattr(export, 'scratch_root', lambda: tmp_path / 'scratch')
    committed = export.figures_root() / 'attention_masks' / 'channel_attention.png'
    before = committed.read_bytes()
    fig = plt.figure()
    paths = export.save_figure(fig, 'attention_masks', 'channel_attention', ['png'])
    assert paths == [tmp_path / 'scratch' / 'attention_masks' / 'channel_attention.png']
    assert committed.read_bytes() == before                         # the committed result is untouched
    monkeypatch.setattr(export, 'figures_root', lambda: tmp_path / 'results')
    new = export.save_figure(fig, 'attention_masks', 'a_new_figure', ['png'])   # nothing committed there: written
    assert new == [tmp_path / 'results' / 'attention_masks' / 'a_new_figure.png']
    plt.close(fig)


def test_a_model_that_learned_nothing_is_said_so():
    from kdlab.analysis.features import Detector, learned_note
    note = learned_note({'teacher': Detector('teacher (retinanet_x101)', 'teacher', None, None, 'a.pth', None, 0.0),
                         'student': Detector('student', 'baseline', None, None, 'b.pth', None, 32.1),
                         'given': Detector('mine', 'x', None, None, 'c.pth')})
    lines = note.splitlines()
    assert 'learned nothing' in lines[0] and "scale='mini'" in lines[0]
    assert lines[1] == 'student: 32.1 mAP' and 'mAP not stored' in lines[2]
