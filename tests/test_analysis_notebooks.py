"""The three analysis notebooks run headless (papermill) at smoke scale, on the embedded defaults and on
user-given checkpoints and images, and export every figure as readable files with stable names."""
from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

pytest.importorskip('papermill')

from kdlab.notebooks import execute  # noqa: E402
from kdlab.viz import png_stats  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
NOTEBOOKS = REPO / 'notebooks'

FIGURES = {
    'attention_masks': ['spatial_attention', 'channel_attention', 'method_masks', 'icd_instance_attention'],
    'fpn_features': ['fpn_maps', 'teacher_topk_channels', 'value_distributions', 'channel_pearson',
                     'channel_magnitudes'],
    'dft_spectra': ['spectra_grid', 'radial_profiles_synthetic', 'radial_profiles_skimage', 'band_shares_synthetic',
                    'band_shares_skimage', 'me_decisions_synthetic'],
}


def _run(name, params, work: Path):
    executed = execute(NOTEBOOKS / f'{name}.ipynb', params, work / f'{name}.out.ipynb', cwd=work)
    nb = json.loads(executed.read_text(encoding='utf-8'))
    outputs = [o for c in nb['cells'] if c['cell_type'] == 'code' for o in c.get('outputs', [])]
    assert not [o for o in outputs if o.get('output_type') == 'error']
    text = ''.join(''.join(o.get('text', '')) for o in outputs if o.get('output_type') == 'stream')
    rich = ''.join(''.join(o.get('data', {}).get('text/plain', '')) for o in outputs)
    return text, rich


def _check_figures(folder: Path, names, formats=('png', 'pdf')):
    assert sorted(p.name for p in folder.iterdir()) == sorted(f'{n}.{f}' for n in names for f in formats)
    for n in names:
        if 'png' in formats:
            stats = png_stats(folder / f'{n}.png')
            # not blank: many colours, no colour covering almost everything, a real size
            assert stats['colours'] > 50 and stats['top_colour_share'] < 0.95 and stats['std'] > 10, (n, stats)
            assert min(stats['width'], stats['height']) > 300, (n, stats)
        if 'pdf' in formats:
            pdf = (folder / f'{n}.pdf').read_bytes()
            assert pdf[:5] == b'%PDF-' and len(pdf) > 3000, n
        if 'svg' in formats:
            assert b'<svg' in (folder / f'{n}.svg').read_bytes()[:3000], n


@pytest.mark.slow
def test_attention_masks_notebook_on_the_embedded_defaults(tmp_path, kdlab_cache):
    """The embedded teacher (trained here at smoke scale if the store lacks it) on the synthetic images."""
    figs = tmp_path / 'figures'
    text, _ = _run('attention_masks', {'figures_dir': str(figs), 'num_images': 6}, tmp_path / 'work')
    assert 'teacher: teacher (retinanet_x101)' in text
    assert re.search(r"DFMSD masking enhancement: box-area ratio [0-9.]+, decision '(noise|crop)'", text)
    _check_figures(figs / 'attention_masks', FIGURES['attention_masks'])
    assert sorted(p.name for p in (tmp_path / 'work').iterdir()) == ['attention_masks.out.ipynb']
    # the source notebook is committed without outputs
    src = json.loads((NOTEBOOKS / 'attention_masks.ipynb').read_text())
    assert all(not c.get('outputs') for c in src['cells'] if c['cell_type'] == 'code')


@pytest.mark.slow
def test_fpn_features_notebook_on_user_checkpoints_and_images(tmp_path, kdlab_cache):
    """A user's (config, checkpoint) pairs - a plain detector checkpoint and an mmrazor distillation one - and a
    folder of photographs; the formats parameter picks PNG and SVG (no PDF)."""
    from PIL import Image
    from kdlab.analysis import features, images
    dets = features.default_detectors('smoke')           # the stored smoke trio (trained now if missing)
    folder = tmp_path / 'photos'
    folder.mkdir()
    for im in images.load_images('skimage:chelsea,rocket'):
        Image.fromarray(im.image).save(folder / f'{im.name}.jpg')
    models = {'teacher': ['retinanet_x101', dets['teacher'].checkpoint],
              'baseline': ['retinanet_r50', dets['baseline'].checkpoint],
              'pkd': ['retinanet_r50', dets['distilled'].checkpoint]}
    figs = tmp_path / 'figures'
    text, rich = _run('fpn_features', {'figures_dir': str(figs), 'formats': ['png', 'svg'], 'models': models,
                                       'images': str(folder), 'num_images': 2, 'levels': ['P3', 'P4', 'P5']},
                      tmp_path / 'work')
    for role, det in (('teacher', 'teacher'), ('baseline', 'baseline'), ('pkd', 'distilled')):
        assert re.search(rf'^{role}\s.*{re.escape(dets[det].checkpoint)}$', text, re.M)
    assert "2 images from" in text and 'photos' in text
    assert 'r_median' in rich and 'abs_ratio' in rich           # the statistics table is shown
    _check_figures(figs / 'fpn_features', FIGURES['fpn_features'], formats=('png', 'svg'))


@pytest.mark.slow
def test_dft_spectra_notebook_states_the_claims_as_numbers(tmp_path, kdlab_cache):
    """Synthetic images and scikit-image's photographs; every claim counted per source."""
    figs = tmp_path / 'figures'
    text, _ = _run('dft_spectra', {'figures_dir': str(figs), 'num_images': 5}, tmp_path / 'work')
    claims = re.findall(r'^(\w[\w-]*): (.+?) \((low|high)\): (\d+)/(\d+) images', text, re.M)
    assert len(claims) == 2 * 5
    for source, claim, band, holds, n in claims:
        if claim.startswith(('flip', 'Gaussian noise', 'resizing the crop window')) or source == 'skimage':
            assert holds == n and int(n) >= 4, (source, claim, holds, n)
    assert 'skimage: no boxes' in text                            # photographs have no boxes for Eq. (4)
    _check_figures(figs / 'dft_spectra', FIGURES['dft_spectra'])
