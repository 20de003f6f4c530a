"""DCSFKDLoss against methods.md's formula, computed by hand with plain Python loops."""
import math

import pytest
import torch

import kdlab.models  # noqa: F401
from kdlab.errors import ChannelMismatchError
from kdlab.models.losses import DCSFKDLoss


def _zscore(x):  # x: nested list [n][c][h][w] -> same, per channel over (n, h, w), unbiased std + 1e-6
    n, c, h, w = len(x), len(x[0]), len(x[0][0]), len(x[0][0][0])
    out = [[[[0.0] * w for _ in range(h)] for _ in range(c)] for _ in range(n)]
    for ci in range(c):
        vals = [x[ni][ci][hi][wi] for ni in range(n) for hi in range(h) for wi in range(w)]
        mean = sum(vals) / len(vals)
        std = math.sqrt(sum((v - mean) ** 2 for v in vals) / (len(vals) - 1))
        for ni in range(n):
            for hi in range(h):
                for wi in range(w):
                    out[ni][ci][hi][wi] = (x[ni][ci][hi][wi] - mean) / (std + 1e-6)
    return out


def _dcsf_by_hand(s, t):
    s_hat, t_hat = _zscore(s.tolist()), _zscore(t.tolist())
    n, c, h, w = s.shape
    total = 0.0
    for ni in range(n):
        g = [sum(t_hat[ni][ci][hi][wi] for hi in range(h) for wi in range(w)) / (h * w) for ci in range(c)]
        ex = [math.exp(v) for v in g]
        weights = [1 + 9 * e / sum(ex) for e in ex]
        for ci in range(c):
            for hi in range(h):
                for wi in range(w):
                    total += (weights[ci] * s_hat[ni][ci][hi][wi] - t_hat[ni][ci][hi][wi]) ** 2
    return total / (n * c * h * w)


def test_matches_hand_computed_formula():
    g = torch.Generator().manual_seed(0)
    s, t = torch.randn(2, 3, 2, 3, generator=g), torch.randn(2, 3, 2, 3, generator=g) * 4 + 1
    assert DCSFKDLoss()(s, t).item() == pytest.approx(_dcsf_by_hand(s, t), rel=1e-5)
    assert DCSFKDLoss(loss_weight=2.0)(s, t).item() == pytest.approx(2 * _dcsf_by_hand(s, t), rel=1e-5)


def test_small_but_not_zero_under_positive_affine_map():
    import kdlab  # noqa: F401
    from mmrazor.models.losses import PKDLoss
    g = torch.Generator().manual_seed(1)
    t = torch.randn(2, 64, 6, 6, generator=g)
    s = t * torch.rand(1, 64, 1, 1, generator=g).add(0.5) + torch.randn(1, 64, 1, 1, generator=g)
    dcsf, pkd = DCSFKDLoss()(s, t), PKDLoss()(s, t)
    assert pkd < 1e-6                        # PKD's zero
    assert 0 < dcsf < 0.05                   # DCSF-KD: w - 1 = 9 softmax(g) > 0, ~ 9/C = 0.14
    assert dcsf.item() == pytest.approx(_dcsf_by_hand(s, t), rel=1e-4)
    # far from the teacher it is large
    assert DCSFKDLoss()(torch.randn(2, 64, 6, 6, generator=g), t) > 0.5


def test_gradients_reach_student_never_teacher():
    s = torch.randn(2, 4, 5, 5, requires_grad=True)
    t = torch.randn(2, 4, 5, 5, requires_grad=True)
    DCSFKDLoss()(s, t).backward()
    assert s.grad is not None and s.grad.abs().sum() > 0
    assert t.grad is None


def test_levels_resize_and_errors():
    g = torch.Generator().manual_seed(2)
    levels_s = [torch.randn(2, 4, 8, 8, generator=g), torch.randn(2, 4, 4, 4, generator=g)]
    levels_t = [torch.randn(2, 4, 8, 8, generator=g), torch.randn(2, 4, 4, 4, generator=g)]
    loss = DCSFKDLoss()
    total = loss(tuple(levels_s), tuple(levels_t))
    assert torch.allclose(total, loss(levels_s[0], levels_t[0]) + loss(levels_s[1], levels_t[1]))
    # a smaller student map is resized to the teacher's (heterogeneous pairing P3 <- P2)
    small = torch.randn(2, 4, 4, 4, generator=g)
    up = torch.nn.functional.interpolate(small, size=(8, 8), mode='bilinear', align_corners=False)
    assert torch.allclose(loss(small, levels_t[0]), loss(up, levels_t[0]))
    with pytest.raises(ChannelMismatchError):
        loss(torch.zeros(1, 3, 4, 4), torch.zeros(1, 4, 4, 4))
    with pytest.raises(ChannelMismatchError):
        loss(tuple(levels_s), tuple(levels_t[:1]))
