"""The embedded dataset: deterministic, valid COCO, with the object-size mix the papers study."""
import hashlib
import json

import numpy as np
import pytest

from kdlab.data.synthetic import (AREA_MEDIUM, AREA_SMALL, CATEGORIES, SyntheticSpec, check_data_root,
                                  ensure_dataset, render_image)
from kdlab.errors import DataRootError, UnknownNameError

SPEC = SyntheticSpec(num_train=40, num_val=12, image_size=(160, 160), seed=3)


def _digest(root):
    h = hashlib.sha256()
    for p in sorted(root.rglob('*')):
        if p.is_file():
            h.update(p.relative_to(root).as_posix().encode())
            h.update(p.read_bytes())
    return h.hexdigest()


@pytest.fixture(scope='module')
def dataset(tmp_path_factory):
    return ensure_dataset(SPEC, root=tmp_path_factory.mktemp('a'))


def test_generation_is_deterministic(dataset, tmp_path):
    again = ensure_dataset(SPEC, root=tmp_path)
    assert _digest(dataset) == _digest(again)


def test_seed_changes_images():
    a, _, _ = render_image(SPEC, 'train', 0)
    b, _, _ = render_image(SyntheticSpec(**{**SPEC.__dict__, 'seed': 4}), 'train', 0)
    assert not np.array_equal(a, b)


def test_an_image_does_not_depend_on_dataset_size():
    small = SyntheticSpec(**{**SPEC.__dict__, 'num_train': 5})
    a, objs_a, _ = render_image(SPEC, 'train', 2)
    b, objs_b, _ = render_image(small, 'train', 2)
    assert np.array_equal(a, b) and objs_a == objs_b


def test_pycocotools_reads_it_and_evaluates_ground_truth_perfectly(dataset):
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval
    gt = COCO(str(dataset / 'annotations' / 'instances_val.json'))
    assert len(gt.getImgIds()) == SPEC.num_val
    assert [c['name'] for c in gt.loadCats(gt.getCatIds())] == list(CATEGORIES)
    dets = [{'image_id': a['image_id'], 'category_id': a['category_id'], 'bbox': a['bbox'], 'score': 1.0}
            for a in gt.dataset['annotations']]
    ev = COCOeval(gt, gt.loadRes(dets), 'bbox')
    ev.evaluate(); ev.accumulate(); ev.summarize()
    assert ev.stats[0] == pytest.approx(1.0)
    for ann in gt.dataset['annotations']:          # masks decode and match their boxes and areas
        m = gt.annToMask(ann)
        assert m.sum() == ann['area'] and ann['area'] > 0
        ys, xs = np.nonzero(m)
        x, y, w, h = ann['bbox']
        assert xs.min() >= x - 1.5 and xs.max() <= x + w + 1.5 and ys.min() >= y - 1.5 and ys.max() <= y + h + 1.5


def test_images_on_disk_match_the_annotations(dataset):
    from PIL import Image
    coco = json.loads((dataset / 'annotations' / 'instances_train.json').read_text())
    for img in coco['images'][:5]:
        arr = np.asarray(Image.open(dataset / 'train' / img['file_name']))
        assert arr.shape == (img['height'], img['width'], 3)


def test_object_sizes_cover_coco_small_medium_large(dataset):
    coco = json.loads((dataset / 'annotations' / 'instances_train.json').read_text())
    areas = np.array([a['area'] for a in coco['annotations']])
    small, large = (areas < AREA_SMALL).mean(), (areas >= AREA_MEDIUM).mean()
    medium = 1 - small - large
    assert small > 0.4 and medium > 0.05 and large > 0.05, (small, medium, large)
    counts = np.bincount([a['category_id'] for a in coco['annotations']], minlength=len(CATEGORIES) + 1)
    assert (counts[1:] > 0).all()


def test_small_and_large_dominated_images_straddle_dfmsd_threshold(dataset):
    """DFMSD's masking enhancement: summed box area / image area below 0.5 -> noise, above -> crop."""
    coco = json.loads((dataset / 'annotations' / 'instances_train.json').read_text())
    by_img = {}
    for a in coco['annotations']:
        by_img[a['image_id']] = by_img.get(a['image_id'], 0) + a['bbox'][2] * a['bbox'][3]
    ratio = {i['id']: by_img.get(i['id'], 0) / (i['width'] * i['height']) for i in coco['images']}
    small_dom = [ratio[i['id']] for i in coco['images'] if i['small_dominated']]
    large_dom = [ratio[i['id']] for i in coco['images'] if not i['small_dominated']]
    assert small_dom and large_dom
    assert max(small_dom) < 0.5 < min(large_dom)


def test_backgrounds_have_low_and_high_frequency_content():
    def high_share(img):
        g = img.astype(np.float64).mean(-1)
        f = np.abs(np.fft.fftshift(np.fft.fft2(g - g.mean()))) ** 2
        h, w = g.shape
        yy, xx = np.mgrid[:h, :w]
        r = np.hypot(yy - h / 2, xx - w / 2)
        return f[r > min(h, w) / 4].sum() / f.sum()
    shares = {True: [], False: []}
    for i in range(16):
        img, _, meta = render_image(SPEC, 'train', i)
        shares[meta['high_frequency_background']].append(high_share(img))
    assert shares[True] and shares[False]
    assert min(shares[True]) > max(shares[False])


def test_bad_inputs_name_the_fix(tmp_path):
    with pytest.raises(DataRootError, match='kdlab data generate'):
        check_data_root(tmp_path / 'nope')
    (tmp_path / 'annotations').mkdir()
    with pytest.raises(DataRootError, match='instances_train'):
        check_data_root(tmp_path)
    with pytest.raises(UnknownNameError, match="Did you mean 'mini'"):
        ensure_dataset('minii', root=tmp_path)
