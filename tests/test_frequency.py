"""DFMSD's frequency claims (section 3.4, Fig. 6) as numbers, on the synthetic images and on real photographs
shipped with scikit-image: a flip leaves the radial profile unchanged, Gaussian noise raises the high-frequency
share, a proportional crop resized back raises the low-frequency share. Plus the primitives they rest on."""
from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from kdlab.analysis.images import SKIMAGE_PHOTOS, skimage_images, synthetic_images
from kdlab.analysis import spectra
from kdlab.core import frequency as fq
from kdlab.core.enhance import gaussian_noise, proportional_crop

CROP = (0.5, 0.8)
SIGMA = 25.0


@pytest.fixture(scope='module')
def synthetic():
    """Both scales of the embedded data: small- and large-object images, smooth and textured backgrounds."""
    return [im.image for im in synthetic_images('smoke', 8) + synthetic_images('mini', 24)]


@pytest.fixture(scope='module')
def photos():
    imgs = [im.image for im in skimage_images()]
    assert len(imgs) == len(SKIMAGE_PHOTOS) >= 10
    return imgs


def _shares(img, kind, seed):
    return fq.band_shares(fq.augment(img, kind, crop_scale=CROP, noise_sigma=SIGMA, seed=seed))


# ------------------------------------------------------------------------------------------------ primitives
def _cosine(n, cycles_x, cycles_y=0):
    yy, xx = np.mgrid[0:n, 0:n]
    return 128 + 100 * np.cos(2 * np.pi * (cycles_x * xx + cycles_y * yy) / n)


def test_radius_grid_is_centred_and_normalised_to_nyquist():
    rho = fq.radius_grid((64, 64))
    assert rho[32, 32] == 0.0                       # zero frequency in the centre after fftshift
    assert rho[32, 0] == pytest.approx(1.0)         # -0.5 cycles/px = Nyquist along x
    assert rho.max() == pytest.approx(np.sqrt(2))


def test_a_cosine_puts_its_energy_at_its_frequency():
    low = _cosine(64, 4)                            # 4 cycles over 64 px: rho = 0.125
    high = _cosine(64, 24)                          # rho = 0.75
    assert fq.band_shares(low)['low'] == pytest.approx(1.0)
    assert fq.band_shares(high)['high'] == pytest.approx(1.0)
    rho, prof = fq.radial_profile(low, bins=32)
    assert abs(rho[np.nanargmax(prof)] - 0.125) <= 1 / 32
    spec = fq.log_magnitude_spectrum(low)
    assert np.unravel_index(spec.argmax(), spec.shape) == (32, 32)   # the mean (DC) dominates, in the centre


def test_shares_sum_to_one_and_exclude_the_mean():
    img = np.random.default_rng(0).uniform(0, 255, (40, 56, 3))
    s = fq.band_shares(img)
    assert s['low'] + s['mid'] + s['high'] == pytest.approx(1.0)
    assert fq.band_shares(img + 50)['high'] == pytest.approx(s['high'])       # brightness is not structure
    assert all(np.isnan(v) for v in fq.band_shares(np.full((8, 8), 7.0)).values())
    # white noise spreads its power evenly: each band's share is its share of the frequency plane
    area = (fq.radius_grid((40, 56)) >= fq.HIGH_CUTOFF).mean()
    assert fq.band_shares(img)['high'] == pytest.approx(area, abs=0.05)
    with pytest.raises(ValueError):
        fq.band_shares(img, low=0.6, high=0.5)


def test_gray_accepts_numpy_and_torch_layouts():
    rgb = np.random.default_rng(1).integers(0, 256, (6, 7, 3)).astype(np.uint8)
    g = fq.to_gray(rgb)
    assert g.shape == (6, 7)
    np.testing.assert_allclose(fq.to_gray(torch.from_numpy(rgb).permute(2, 0, 1)), g)
    np.testing.assert_allclose(fq.to_gray(np.dstack([rgb, np.full((6, 7), 255, np.uint8)])), g)  # alpha dropped
    with pytest.raises(ValueError):
        fq.to_gray(np.zeros((4, 4, 2)))


def test_augmentations_are_dfmsd_s_and_reproducible():
    img = np.random.default_rng(2).integers(0, 256, (30, 40, 3)).astype(np.uint8)
    for kind in ('flip', 'crop', 'noise'):
        a, b = fq.augment(img, kind, seed=5), fq.augment(img, kind, seed=5)
        assert a.shape == img.shape and a.dtype == np.uint8 and np.array_equal(a, b)
        assert not np.array_equal(a, img)
    assert not np.array_equal(fq.augment(img, 'noise', seed=5), fq.augment(img, 'noise', seed=6))
    # the crop is kdlab.core.enhance.proportional_crop of the window crop_window names: a bilinear zoom
    s, (y0, x0, ch, cw) = fq.crop_window(img.shape[:2], (0.5, 0.8), seed=3)
    assert 0.5 <= s <= 0.8 and (ch, cw) == (round(s * 30), round(s * 40))
    chw = torch.from_numpy(img.astype(np.float32)).permute(2, 0, 1)
    zoom = F.interpolate(chw[None, :, y0:y0 + ch, x0:x0 + cw], size=(30, 40), mode='bilinear', align_corners=False)
    ours = fq.augment(img, 'crop', crop_scale=(0.5, 0.8), seed=3, clip=False)
    np.testing.assert_allclose(ours, zoom[0].permute(1, 2, 0).numpy(), atol=1e-4)
    np.testing.assert_allclose(ours, proportional_crop(chw, s, top_left=(y0, x0)).permute(1, 2, 0).numpy(), atol=1e-4)
    # the noise is kdlab.core.enhance.gaussian_noise
    ref = gaussian_noise(chw, 10.0, generator=torch.Generator().manual_seed(4))
    np.testing.assert_allclose(fq.augment(img, 'noise', noise_sigma=10.0, seed=4, clip=False),
                               ref.permute(1, 2, 0).numpy(), atol=1e-4)
    with pytest.raises(ValueError):
        fq.augment(img, 'rotate')


# ------------------------------------------------------------------------------------------------ the claims
@pytest.mark.parametrize('which', ['synthetic', 'photos'])
@pytest.mark.parametrize('axis', ['horizontal', 'vertical'])
def test_a_flip_leaves_the_radial_profile_unchanged(which, axis, request):
    for img in request.getfixturevalue(which):
        flipped = fq.flip(img, axis=axis)
        p0, p1 = fq.power_spectrum(img), fq.power_spectrum(flipped)
        assert not np.allclose(p0, p1)                          # the spectrum itself is mirrored, not kept...
        mirror = (slice(None), slice(None, None, -1)) if axis == 'horizontal' else (slice(None, None, -1),)
        # ...about the zero frequency (fftshift puts it at index n//2: mirror the bins with a partner)
        h, w = p0.shape
        sub = p0[(h + 1) % 2:, (w + 1) % 2:]
        np.testing.assert_allclose(p1[(h + 1) % 2:, (w + 1) % 2:], sub[mirror], rtol=1e-7, atol=1e-6 * p0.max())
        _, r0 = fq.radial_profile(img, bins=48)
        _, r1 = fq.radial_profile(flipped, bins=48)
        np.testing.assert_allclose(r1, r0, rtol=1e-9)         # ...so every ring keeps its power
        s0, s1 = fq.band_shares(img), fq.band_shares(flipped)
        assert all(abs(s0[k] - s1[k]) < 1e-12 for k in s0)


@pytest.mark.parametrize('which', ['synthetic', 'photos'])
def test_gaussian_noise_raises_the_high_frequency_share(which, request):
    for i, img in enumerate(request.getfixturevalue(which)):
        before, after = fq.band_shares(img), _shares(img, 'noise', seed=i)
        assert after['high'] > before['high'] + 0.01, (i, before, after)
        assert after['low'] < before['low']


def test_a_crop_resized_back_raises_the_low_frequency_share_of_photographs(photos):
    for i, img in enumerate(photos):
        before, after = fq.band_shares(img), _shares(img, 'crop', seed=i)
        assert after['low'] > before['low'], (SKIMAGE_PHOTOS[i], before, after)
        assert after['high'] < before['high'], (SKIMAGE_PHOTOS[i], before, after)


@pytest.mark.parametrize('which', ['synthetic', 'photos'])
def test_resizing_a_crop_back_raises_the_low_share_of_the_same_content(which, request):
    """The zoom itself, content held fixed: the resized crop against its own window, on every image."""
    flat = 0
    for i, img in enumerate(request.getfixturevalue(which)):
        _, (y0, x0, ch, cw) = fq.crop_window(img.shape[:2], CROP, seed=i)
        window = fq.band_shares(img[y0:y0 + ch, x0:x0 + cw])
        zoomed = _shares(img, 'crop', seed=i)
        if np.isnan(window['low']):          # a window inside one flat object: no structure, nothing to move
            assert np.isnan(zoomed['low'])
            flat += 1
            continue
        assert zoomed['low'] > window['low'] + 0.005, (i, window, zoomed)
    assert flat <= 2


def test_a_crop_resized_back_raises_the_low_share_of_synthetic_images_on_average(synthetic):
    """Against the original, the crop also changes what is in the frame: on a large-object image it can cut most of
    the object out (and its low frequencies with it). The claim holds for the sample and for most images."""
    d = np.array([_shares(img, 'crop', seed=i)['low'] - fq.band_shares(img)['low'] for i, img in enumerate(synthetic)])
    d = d[np.isfinite(d)]                    # a crop inside one flat object has no spectrum to compare
    assert len(d) >= len(synthetic) - 2
    assert d.mean() > 0.03
    assert (d > 0).mean() >= 0.75


def test_the_claims_table_counts_what_the_tests_check():
    sample = synthetic_images('smoke', 6) + skimage_images(['astronaut', 'coffee', 'chelsea'])
    table = spectra.band_table(sample, crop_scale=CROP, noise_sigma=SIGMA)
    assert set(table['kind']) == {'none', 'flip', 'crop', 'crop_window', 'noise'}
    np.testing.assert_allclose(table[['low', 'mid', 'high']].sum(axis=1), 1.0)
    checks = spectra.claims(table).set_index(['claim', 'band'])
    n = len(sample)
    assert checks.loc[('flip leaves the shares unchanged', 'low'), 'holds'] == n
    assert checks.loc[('Gaussian noise raises the high-frequency share', 'high'), 'holds'] == n
    assert checks.loc[('resizing the crop window back raises its low-frequency share', 'low'), 'holds'] == n
    assert checks.loc[('crop + resize back raises the low-frequency share', 'low'), 'mean_change'] > 0


def test_radial_profiles_of_the_augmentations():
    sample = skimage_images(['astronaut', 'camera', 'coins'])
    rho, profs = spectra.profiles(sample, bins=24, crop_scale=CROP, noise_sigma=SIGMA)
    assert rho.shape == (24,) and profs['none'].shape == (3, 24)
    np.testing.assert_allclose(profs['flip'], profs['none'], rtol=1e-9)
    outer = rho > 0.5
    assert (profs['noise'][:, outer] > profs['none'][:, outer]).all()
    assert (profs['crop'][:, outer].sum(1) < profs['none'][:, outer].sum(1)).all()


# -------------------------------------------------------------------------------------- DFMSD's ME decision
def test_the_masking_enhancement_decision_follows_the_box_area_ratio():
    sample = synthetic_images('mini', 12)
    table = spectra.me_table(sample, threshold=0.5)
    assert (table['decision'] == np.where(table['dominated_by'] == 'small', 'noise', 'crop')).all()
    assert set(table['decision']) == {'noise', 'crop'}
    assert spectra.me_table(skimage_images(['coffee']))['decision'].tolist() == ['n/a']
    for im, (_, row) in zip(sample, table.iterrows()):
        enhanced, what = spectra.enhance_image(im, seed=1)
        assert what.decision == row['decision'] and what.done == row['decision']
        assert enhanced.image.shape == im.image.shape and not np.array_equal(enhanced.image, im.image)
        if what.done == 'crop':                                # boxes follow the zoom and stay inside the image
            h, w = im.shape
            assert 0.7 <= what.scale <= 1.0
            b = enhanced.boxes
            assert len(b) and (b[:, [0, 2]] <= w).all() and (b[:, [1, 3]] <= h).all() and (b >= 0).all()
            assert (b[:, 2] - b[:, 0]).max() >= (im.boxes[:, 2] - im.boxes[:, 0]).max() - 1
        else:
            np.testing.assert_array_equal(enhanced.boxes, im.boxes)
