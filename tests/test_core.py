"""kdlab.core: z-scoring, attention maps, masks and DFMSD's masking enhancement, on hand-computed cases."""
import math

import pytest
import torch

from kdlab.core.attention import (channel_attention, channel_map, scale_pyramid, spatial_attention,
                                  spatial_map)
from kdlab.core.enhance import gaussian_noise, masking_enhancement, proportional_crop
from kdlab.core.masks import (box_area_ratio, channel_attention_mask, difference_select_mask, fgd_masks,
                              logits_difference, me_decision, random_spatial_mask, spatial_attention_mask,
                              top_ratio_select)
from kdlab.core.normalize import (channel_zscore, pearson_per_channel, resize_like, zscore_mse)
from kdlab.errors import ChannelMismatchError


def _gen(seed=0):
    return torch.Generator().manual_seed(seed)


# ------------------------------------------------------------------------------------------ normalize
def test_channel_zscore_standardises_each_channel_over_batch_and_space():
    x = torch.randn(3, 4, 5, 6, generator=_gen()) * torch.tensor([1., 5., .1, 3.])[None, :, None, None] + 7
    z = channel_zscore(x, eps=0.0)
    flat = z.transpose(0, 1).reshape(4, -1)
    assert torch.allclose(flat.mean(1), torch.zeros(4), atol=1e-5)
    assert torch.allclose(flat.std(1), torch.ones(4), atol=1e-5)           # unbiased, as PKD
    # a single map (C, H, W) is a batch of one
    assert torch.allclose(channel_zscore(x[0]), channel_zscore(x[:1])[0])


def test_zscore_mse_is_mmrazor_pkd_and_one_minus_pearson():
    import kdlab  # noqa: F401
    from mmrazor.models.losses import PKDLoss
    s, t = torch.randn(2, 8, 6, 5, generator=_gen(1)), torch.randn(2, 8, 6, 5, generator=_gen(2))
    assert torch.allclose(zscore_mse(s, t), PKDLoss(loss_weight=1.0)(s, t), atol=1e-6)
    m = 2 * 6 * 5
    expected = ((1 - pearson_per_channel(s, t)) * (m - 1) / m).mean()
    assert torch.allclose(zscore_mse(s, t, eps=0.0), expected, atol=1e-5)


def test_zscore_mse_zero_under_positive_affine_map_only():
    t = torch.randn(2, 4, 5, 5, generator=_gen(3))
    scale = torch.tensor([0.5, 2.0, 10.0, 0.1])[None, :, None, None]
    shift = torch.tensor([1.0, -3.0, 0.0, 7.0])[None, :, None, None]
    assert zscore_mse(t * scale + shift, t) < 1e-6
    # a negative scale flips the correlation: (1 - (-1)) / 2 = 1 up to (M-1)/M
    assert zscore_mse(-t, t) > 0.9


def test_resize_like_checks_both_sizes_and_zscore_mse_raises_on_channels():
    ref = torch.zeros(1, 2, 4, 6)
    assert resize_like(torch.ones(1, 2, 4, 3), ref).shape == ref.shape      # width differs only
    assert resize_like(torch.ones(1, 2, 2, 3), ref).shape == ref.shape
    with pytest.raises(ChannelMismatchError):
        zscore_mse(torch.zeros(1, 3, 4, 4), torch.zeros(1, 2, 4, 4))


# ------------------------------------------------------------------------------------------ attention
def test_attention_maps_hand_computed():
    # one image, C=2, H=1, W=2:  |F| = [[1, 3]], [[-1 -> 1, 5]]
    f = torch.tensor([[[[1.0, 3.0]], [[-1.0, 5.0]]]])
    T = 0.5
    # spatial: mean_c |F| = [1, 4] -> 2 * softmax([2, 8])
    e = [math.exp(2.0), math.exp(8.0)]
    expected_s = torch.tensor([[[2 * e[0] / sum(e), 2 * e[1] / sum(e)]]])
    assert torch.allclose(spatial_map(f), torch.tensor([[[1.0, 4.0]]]))
    assert torch.allclose(spatial_attention(f, T), expected_s, atol=1e-6)
    # channel: mean_hw |F| = [2, 3] -> 2 * softmax([4, 6])
    e = [math.exp(4.0), math.exp(6.0)]
    assert torch.allclose(channel_map(f), torch.tensor([[2.0, 3.0]]))
    assert torch.allclose(channel_attention(f, T), torch.tensor([[2 * e[0] / sum(e), 2 * e[1] / sum(e)]]),
                          atol=1e-6)
    # single maps, and both average to one
    x = torch.randn(3, 7, 4, 5, generator=_gen(4))
    assert spatial_attention(x[0]).shape == (4, 5) and channel_attention(x[0]).shape == (7,)
    assert torch.allclose(spatial_attention(x).mean(dim=(1, 2)), torch.ones(3), atol=1e-5)
    assert torch.allclose(channel_attention(x).mean(dim=1), torch.ones(3), atol=1e-5)


def test_scale_pyramid_max_pools_with_ceil():
    x = torch.arange(35.).reshape(1, 1, 5, 7)
    p1, p2, p4 = scale_pyramid(x, (1, 2, 4))
    assert p1 is x and p2.shape == (1, 1, 3, 4) and p4.shape == (1, 1, 2, 2)
    assert p2[0, 0, 0, 0] == 8.0 and p4[0, 0, 1, 1] == 34.0   # max of each window (ceil keeps the border)


# ------------------------------------------------------------------------------------------------ masks
def test_random_spatial_mask_masks_ratio_of_positions():
    m = random_spatial_mask(4, 64, 64, 0.65, generator=_gen(5))
    assert m.shape == (4, 1, 64, 64) and set(m.unique().tolist()) <= {0.0, 1.0}
    assert abs((1 - m.mean()).item() - 0.65) < 0.02


def test_top_ratio_select_and_attention_masks():
    scores = torch.tensor([[0.1, 0.9, 0.5, 0.3], [4.0, 1.0, 2.0, 3.0]])
    assert top_ratio_select(scores, 0.5).tolist() == [[0, 1, 1, 0], [1, 0, 0, 1]]
    assert top_ratio_select(scores, 0.0).sum() == 0 and top_ratio_select(scores, 1.0).sum() == 8
    att = torch.tensor([[[1.0, 5.0], [3.0, 0.5]]])                     # (1, 2, 2)
    keep = spatial_attention_mask(att, 0.5)
    assert keep.shape == (1, 1, 2, 2) and keep[0, 0].tolist() == [[1, 0], [0, 1]]
    keep_c = channel_attention_mask(torch.tensor([[0.2, 3.0, 1.0]]), 1 / 3)
    assert keep_c.shape == (1, 3, 1, 1) and keep_c.flatten().tolist() == [1, 0, 1]
    # sampling keeps the count and follows the weights (two dominant entries are always drawn)
    big = torch.tensor([[1e-9] * 6 + [1e9, 1e9]])
    for seed in range(5):
        sel = top_ratio_select(big, 0.25, sample=True, generator=_gen(seed))
        assert sel.sum() == 2 and sel[0, 6] == 1 and sel[0, 7] == 1


def test_fgd_masks_hand_computed():
    # 4x4 map of a 32x32 image: box (0, 0, 8, 8) -> cells [0, 1] x [0, 1] inclusive -> value 1/4
    fg, bg = fgd_masks([torch.tensor([[0., 0., 8., 8.]])], [(32, 32)], (4, 4))
    assert fg.shape == (1, 4, 4)
    assert torch.allclose(fg[0, :2, :2], torch.full((2, 2), 0.25)) and fg[0].sum() == pytest.approx(1.0)
    assert torch.allclose(bg[0][fg[0] == 0], torch.full((12,), 1 / 12)) and (bg[0][fg[0] > 0] == 0).all()
    # an overlapping larger box: the larger value (smaller box) wins
    fg2, _ = fgd_masks([torch.tensor([[0., 0., 8., 8.], [0., 0., 24., 24.]])], [(32, 32)], (4, 4))
    assert fg2[0, 0, 0] == 0.25 and fg2[0, 3, 3] == pytest.approx(1 / 16)
    # no boxes: all background
    fg3, bg3 = fgd_masks([torch.zeros(0, 4)], [(32, 32)], (4, 4))
    assert fg3.sum() == 0 and torch.allclose(bg3, torch.full((1, 4, 4), 1 / 16))


def test_box_area_ratio_and_me_decision():
    boxes = torch.tensor([[0., 0., 10., 10.], [0., 0., 5., 4.]])
    assert box_area_ratio(boxes, (20, 20)) == pytest.approx(0.3)
    assert box_area_ratio(torch.zeros(0, 4), (20, 20)) == 0.0
    assert me_decision(0.3) == 'noise' and me_decision(0.5) == 'crop' and me_decision(0.7, threshold=0.8) == 'noise'


def test_logits_difference_mask():
    zt = torch.zeros(1, 2, 1, 3)
    zs = torch.tensor([[[[0.0, 2.0, -4.0]], [[0.0, 2.0, 4.0]]]])
    d = logits_difference(zs, zt)
    assert d.shape == (1, 1, 3) and d[0, 0, 0] == 0
    assert d[0, 0, 1] == pytest.approx(torch.sigmoid(torch.tensor(2.0)).item() - 0.5)
    assert difference_select_mask(d, 1 / 3)[0, 0, 0].tolist() == [0, 0, 1]


# ---------------------------------------------------------------------------------------------- enhance
def test_gaussian_noise_only_in_valid_area():
    img = torch.zeros(3, 40, 50)
    out = gaussian_noise(img, 2.0, valid_hw=(30, 40), generator=_gen(6))
    assert out[:, 30:].abs().sum() == 0 and out[:, :, 40:].abs().sum() == 0
    assert abs(out[:, :30, :40].std().item() - 2.0) < 0.1
    per_channel = gaussian_noise(img, torch.tensor([0.0, 1.0, 0.0]), generator=_gen(7))
    assert per_channel[0].abs().sum() == 0 and per_channel[1].abs().sum() > 0


def test_proportional_crop_zooms_in_and_keeps_padding():
    img = torch.zeros(1, 10, 12)
    img[:, :4, :5] = 1.0                                 # top-left quadrant of the valid 8x10 area
    img[:, 8:, :] = -7.0                                 # padding rows
    out = proportional_crop(img, 0.5, valid_hw=(8, 10), top_left=(0, 0))
    assert torch.allclose(out[:, :8, :10], torch.ones(1, 8, 10))       # the quadrant fills the image
    assert (out[:, 8:] == -7.0).all()
    with pytest.raises(ValueError):
        proportional_crop(img, 1.5)


def test_masking_enhancement_follows_eq4():
    imgs = torch.rand(2, 3, 16, 16, generator=_gen(8))
    out, done = masking_enhancement(imgs, [0.1, 0.9], noise_prob=1.0, generator=_gen(9))
    assert done == ['noise', 'crop'] and not torch.equal(out[0], imgs[0]) and not torch.equal(out[1], imgs[1])
    out, done = masking_enhancement(imgs, [0.1, 0.9], noise_prob=0.0, crop_scale=(1.0, 1.0), generator=_gen(9))
    assert done == ['none', 'crop'] and torch.equal(out[0], imgs[0])
    assert torch.allclose(out[1], imgs[1], atol=1e-5)                     # scale 1 crop = identity
