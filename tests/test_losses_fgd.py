"""FGDLoss against the released code's formula (methods.md), hand-computed; GT boxes via data samples."""
import math

import pytest
import torch

import kdlab.models  # noqa: F401
from kdlab.errors import KdlabError
from kdlab.models.losses import FGDLoss


def _samples(boxes, img_shape=(16, 16), batch_input_shape=(16, 16)):
    from mmdet.structures import DetDataSample
    from mmdet.structures.bbox import HorizontalBoxes
    from mmengine.structures import InstanceData
    out = []
    for b in boxes:
        ds = DetDataSample(metainfo=dict(img_shape=img_shape, batch_input_shape=batch_input_shape))
        inst = InstanceData()
        inst.bboxes = HorizontalBoxes(torch.tensor(b, dtype=torch.float32).reshape(-1, 4))
        inst.labels = torch.zeros(len(inst.bboxes), dtype=torch.long)
        ds.gt_instances = inst
        out.append(ds)
    return out


def _softmax(v):
    e = [math.exp(x) for x in v]
    return [x / sum(e) for x in e]


def _attention(f, temp):  # f: [c][h][w] -> (A_S [h][w], A_C [c])
    c, h, w = len(f), len(f[0]), len(f[0][0])
    sp = [sum(abs(f[k][i][j]) for k in range(c)) / c / temp for i in range(h) for j in range(w)]
    a_s = [h * w * v for v in _softmax(sp)]
    ch = [sum(abs(f[k][i][j]) for i in range(h) for j in range(w)) / (h * w) / temp for k in range(c)]
    return [a_s[i * w:(i + 1) * w] for i in range(h)], [c * v for v in _softmax(ch)]


def test_matches_hand_computed_terms():
    g = torch.Generator().manual_seed(0)
    S, T = torch.randn(1, 2, 4, 4, generator=g), torch.randn(1, 2, 4, 4, generator=g)
    loss = FGDLoss(2, 2, temp=0.5, alpha_fgd=1.0, beta_fgd=1.0, gamma_fgd=1.0, lambda_fgd=1.0)
    # box (0, 0, 4, 4) of a 16x16 image on a 4x4 map: cells rows/cols 0..1 -> 1/4; background 1/12
    terms = loss.level_terms(S, T, [torch.tensor([[0., 0., 4., 4.]])], [(16, 16)])
    s, t = S[0].tolist(), T[0].tolist()
    as_t, ac_t = _attention(t, 0.5)
    as_s, ac_s = _attention(s, 0.5)
    fg = bg = glb = 0.0
    for k in range(2):
        for i in range(4):
            for j in range(4):
                sq = as_t[i][j] * ac_t[k] * (t[k][i][j] - s[k][i][j]) ** 2
                if i < 2 and j < 2:
                    fg += 0.25 * sq
                else:
                    bg += sq / 12
                glb += (t[k][i][j] - s[k][i][j]) ** 2          # GcBlocks start as the identity
    at = sum(abs(a - b) for a, b in zip(ac_s, ac_t)) + sum(
        abs(as_s[i][j] - as_t[i][j]) for i in range(4) for j in range(4))
    assert terms['fg'].item() == pytest.approx(fg, rel=1e-5)
    assert terms['bg'].item() == pytest.approx(bg, rel=1e-5)
    assert terms['attention'].item() == pytest.approx(at, rel=1e-5)
    assert terms['global_'].item() == pytest.approx(glb, rel=1e-5)
    # forward = sum of the weighted terms, via data samples
    total = loss(S, T, _samples([[0., 0., 4., 4.]]))
    assert total.item() == pytest.approx(fg + bg + at + glb, rel=1e-5)


def test_default_weights_and_zero_at_identity():
    g = torch.Generator().manual_seed(1)
    T = torch.randn(2, 8, 6, 6, generator=g)
    loss = FGDLoss(8, 8)
    samples = _samples([[0., 0., 8., 8.], [2., 2., 14., 10.]])
    assert loss(T.clone(), T, samples).item() == pytest.approx(0.0, abs=1e-7)
    terms = loss.level_terms(torch.zeros_like(T), T, [torch.tensor([[0., 0., 8., 8.]])] * 2, [(16, 16)] * 2)
    unit = FGDLoss(8, 8, alpha_fgd=1, beta_fgd=1, gamma_fgd=1, lambda_fgd=1)
    unit.load_state_dict(loss.state_dict())
    raw = unit.level_terms(torch.zeros_like(T), T, [torch.tensor([[0., 0., 8., 8.]])] * 2, [(16, 16)] * 2)
    for name, w in dict(fg=1e-3, bg=5e-4, attention=5e-4, global_=5e-6).items():
        assert terms[name].item() == pytest.approx(w * raw[name].item(), rel=1e-5)


def test_gradients_reach_student_align_and_gc_blocks_never_teacher():
    s = torch.randn(2, 4, 6, 6, requires_grad=True)
    t = torch.randn(2, 8, 6, 6, requires_grad=True)
    loss = FGDLoss(4, 8, alpha_fgd=1, beta_fgd=1, gamma_fgd=1, lambda_fgd=1)
    loss(s, t, _samples([[0., 0., 8., 8.], [4., 4., 12., 12.]])).backward()
    assert s.grad is not None and s.grad.abs().sum() > 0
    assert t.grad is None
    assert loss.align.weight.grad.abs().sum() > 0
    assert loss.gc_s.channel_add_conv[-1].weight.grad.abs().sum() > 0
    assert loss.gc_t.channel_add_conv[-1].weight.grad.abs().sum() > 0


def test_box_scale_and_levels():
    g = torch.Generator().manual_seed(2)
    S, T = torch.randn(1, 4, 4, 4, generator=g), torch.randn(1, 4, 4, 4, generator=g)
    samples = _samples([[0., 0., 4., 4.]], img_shape=(12, 16), batch_input_shape=(16, 16))
    by_img = FGDLoss(4, 4, box_scale='img_shape')
    by_batch = FGDLoss(4, 4, box_scale='batch_input_shape')
    by_batch.load_state_dict(by_img.state_dict())
    assert by_img(S, T, samples).item() != pytest.approx(by_batch(S, T, samples).item(), rel=1e-6)
    two = by_img((S, S[:, :, :2, :2]), (T, T[:, :, :2, :2]), samples)
    assert torch.allclose(two, by_img(S, T, samples) + by_img(S[:, :, :2, :2], T[:, :, :2, :2], samples))
    with pytest.raises(KdlabError):
        FGDLoss()(S, T, samples)           # channels unknown and no AutoChannelDistiller
    with pytest.raises(KdlabError):
        by_img(S, T, None)                 # no data samples recorded
