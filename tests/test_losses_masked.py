"""AMD, DMKD, DFMSD and DSAMKD losses: masks, hand-computed values, zeros, gradients.

With the generation blocks set to the identity (centre-tap kernels, positive inputs) and the SE blocks saturated
open, the reconstruction of a masked student map is the masked map itself, so each loss has a closed form.
"""
import math

import pytest
import torch
import torch.nn.functional as F

import kdlab.models  # noqa: F401
from kdlab.core.normalize import zscore_mse
from kdlab.errors import ChannelMismatchError, KdlabError
from kdlab.models.losses import AMDLoss, DFMSDLoss, DMKDLoss, DSAMKDLoss
from kdlab.models.losses.dsamkd import bernoulli_kl


def _identity_generation(block):
    with torch.no_grad():
        for conv in (block[0], block[2]):
            conv.weight.zero_()
            conv.bias.zero_()
            for c in range(conv.weight.shape[0]):
                conv.weight[c, c, 1, 1] = 1.0


def _open_se(se):
    with torch.no_grad():
        se.fc[2].weight.zero_()
        se.fc[2].bias.fill_(60.0)          # sigmoid(60) = 1 in float32


def _identity(loss):
    _identity_generation(loss.generation)
    _open_se(loss.se)
    if hasattr(loss, 'generation_c'):
        _identity_generation(loss.generation_c)
        _open_se(loss.se_c)
    return loss


def _positive(*shape, seed=0):
    return torch.rand(*shape, generator=torch.Generator().manual_seed(seed)) + 0.1


def _top_positions(t_img, k):  # t_img: (C, H, W) -> set of (h, w) with the k largest mean_c |t|
    score = t_img.abs().mean(0).flatten()
    w = t_img.shape[2]
    return {(int(i) // w, int(i) % w) for i in score.argsort(descending=True)[:k]}


def _top_channels(t_img, k):
    return {int(i) for i in t_img.abs().mean((1, 2)).argsort(descending=True)[:k]}


# ------------------------------------------------------------------------------------------------ AMD
def test_amd_masks_highest_teacher_attention_and_matches_closed_form():
    T = _positive(2, 3, 4, 4)
    loss = _identity(AMDLoss(3, 3, alpha=0.5, mask_ratio=0.5))
    keep = loss.spatial_mask(T)
    for n in range(2):
        masked = {(h, w) for h in range(4) for w in range(4) if keep[n, 0, h, w] == 0}
        assert masked == _top_positions(T[n], 8)
    # S = T: the identity reconstruction loses exactly the masked cells
    expected = sum(float((T[n, :, h, w] ** 2).sum()) for n in range(2) for (h, w) in _top_positions(T[n], 8))
    assert loss(T.clone(), T).item() == pytest.approx(0.5 * expected / 2, rel=1e-5)
    # nothing masked: zero
    assert _identity(AMDLoss(3, 3, mask_ratio=0.0))(T.clone(), T).item() == pytest.approx(0.0, abs=1e-9)


def test_amd_sample_mode_depends_on_temperature():
    T = torch.randn(1, 4, 8, 8, generator=torch.Generator().manual_seed(3))
    cold = AMDLoss(4, 4, mask_ratio=0.25, mask_mode='sample', temperature=1e-4)
    torch.manual_seed(0)
    assert torch.equal(cold.spatial_mask(T), AMDLoss(4, 4, mask_ratio=0.25).spatial_mask(T))  # T -> 0: top
    with pytest.raises(KeyError):
        AMDLoss(4, 4, mask_mode='random')


# ----------------------------------------------------------------------------------------------- DMKD
def test_dmkd_dual_masks_and_fused_closed_form():
    T = _positive(2, 4, 3, 3, seed=1)
    loss = _identity(DMKDLoss(4, 4, alpha=1.0, mask_ratio=4 / 9, channel_mask_ratio=0.5))
    assert torch.allclose(loss.fusion_weights(), torch.tensor([0.5, 0.5]))
    expected = 0.0
    for n in range(2):
        top_s, top_c = _top_positions(T[n], 4), _top_channels(T[n], 2)
        for c in range(4):
            for h in range(3):
                for w in range(3):
                    ms = 0.0 if (h, w) in top_s else 1.0
                    mc = 0.0 if c in top_c else 1.0
                    expected += float(T[n, c, h, w]) ** 2 * (0.5 * ms + 0.5 * mc - 1) ** 2
    assert loss(T.clone(), T).item() == pytest.approx(expected / 2, rel=1e-5)
    # the fusion weights adjust themselves: they receive a gradient
    loss(T.clone(), T).backward()
    assert loss.fusion_logits.grad.abs().sum() > 0


@pytest.mark.parametrize('cls', [AMDLoss, DMKDLoss, DFMSDLoss, DSAMKDLoss])
def test_gradients_reach_student_and_own_parts_never_teacher(cls):
    torch.manual_seed(0)
    s = torch.randn(2, 4, 8, 8, requires_grad=True)
    t = torch.randn(2, 8, 8, 8, requires_grad=True)
    loss = cls(4, 8, alpha=1.0)
    kwargs = {}
    if cls is DSAMKDLoss:
        kwargs = dict(logits_S=torch.randn(2, 6, 8, 8, requires_grad=True), logits_T=torch.randn(2, 6, 8, 8))
    if cls is DFMSDLoss:
        kwargs = dict(preds_S_enh=torch.randn(2, 4, 8, 8), preds_T_enh=torch.randn(2, 8, 8, 8))
    loss(s, t, **kwargs).backward()
    assert s.grad.abs().sum() > 0 and t.grad is None
    for name, p in loss.named_parameters():
        assert p.grad is not None, name                        # every trainable part is in the graph
    for name, child in loss.named_children():                # ... and each block learns (a ReLU unit may be dead)
        assert sum(p.grad.abs().sum() for p in child.parameters()) > 0, name
    assert loss.align is not None
    if hasattr(loss, 'fusion_logits'):
        assert loss.fusion_logits.grad.abs().sum() > 0
    if cls is DSAMKDLoss:
        assert kwargs['logits_S'].grad.abs().sum() > 0


def test_channels_filled_in_later():
    loss = DMKDLoss()
    assert loss.channels_pending and len(list(loss.parameters())) == 0
    with pytest.raises(KdlabError):
        loss(torch.zeros(1, 4, 4, 4), torch.zeros(1, 8, 4, 4))
    loss.build_channels(4, 8)
    assert not loss.channels_pending and loss.align.weight.shape == (8, 4, 1, 1)
    assert torch.isfinite(loss(torch.randn(1, 4, 4, 4), torch.randn(1, 8, 4, 4)))
    with pytest.raises(ChannelMismatchError):
        loss(torch.zeros(1, 8, 4, 4), torch.zeros(1, 8, 4, 4))
    with pytest.raises(ChannelMismatchError):
        DMKDLoss(student_channels=4)


# ---------------------------------------------------------------------------------------------- DFMSD
def test_dfmsd_terms_are_eq7_eq8_and_sfa():
    g = torch.Generator().manual_seed(4)
    S, T = torch.randn(2, 4, 6, 6, generator=g), torch.randn(2, 4, 6, 6, generator=g)
    Se, Te = torch.randn(2, 4, 6, 6, generator=g), torch.randn(2, 4, 6, 6, generator=g)
    loss = DFMSDLoss(4, 4, alpha=3.0, beta=0.5, sfa_weight=2.0)
    ref = DMKDLoss(4, 4, alpha=1.0)
    ref.load_state_dict(loss.state_dict())
    terms = loss.terms(S, T, Se, Te)
    assert terms['masked'].item() == pytest.approx(3.0 * ref(S, T).item(), rel=1e-5)
    assert terms['enhanced'].item() == pytest.approx(0.5 * ref(Se, Te).item(), rel=1e-5)
    assert terms['sfa'].item() == pytest.approx(2.0 * zscore_mse(S, T).item(), rel=1e-5)
    assert loss(S, T, Se, Te).item() == pytest.approx(sum(v.item() for v in terms.values()), rel=1e-6)
    # Eq. (8) normalised by the number of elements instead of the batch
    per_el = DFMSDLoss(4, 4, alpha=3.0, beta=0.5, sfa_weight=2.0, enh_normalize='elements')
    per_el.load_state_dict(loss.state_dict())
    assert per_el.terms(S, T, Se, Te)['enhanced'].item() == pytest.approx(
        terms['enhanced'].item() * 2 / Te.numel(), rel=1e-5)
    # without enhanced maps there is no Eq. (8) term; SFA can be switched off
    assert DFMSDLoss(4, 4).terms(S, T)['enhanced'] == 0.0
    assert DFMSDLoss(4, 4, sfa=False).terms(S, T)['sfa'] == 0.0


def test_dfmsd_sfa_zero_under_positive_affine_and_level_selection():
    t = torch.randn(2, 4, 6, 6, generator=torch.Generator().manual_seed(5))
    s = 3.0 * t + 1.0
    loss = DFMSDLoss(4, 4, sfa=True)
    assert loss.terms(s, t)['sfa'].item() < 1e-6
    assert loss.terms(-s, t)['sfa'].item() > 0.9
    levels = (t, t[:, :, :3, :3], t[:, :, :2, :2])
    only_first = DFMSDLoss(4, 4, sfa=[0], sfa_weight=1.0)
    bad = tuple(-x for x in levels)
    assert only_first.terms(bad, levels)['sfa'].item() == pytest.approx(zscore_mse(-t, t).item(), rel=1e-5)


# --------------------------------------------------------------------------------------------- DSAMKD
def test_dsamkd_feature_part_is_dmkd_over_the_scale_pyramid():
    g = torch.Generator().manual_seed(6)
    S, T = torch.randn(2, 4, 8, 8, generator=g), torch.randn(2, 4, 8, 8, generator=g)
    loss = DSAMKDLoss(4, 4, alpha=1.0, scales=(1, 2))
    ref = DMKDLoss(4, 4, alpha=1.0)
    ref.load_state_dict(loss.state_dict())
    expected = ref(S, T) + ref(F.max_pool2d(S, 2), F.max_pool2d(T, 2))
    assert loss(S, T).item() == pytest.approx(expected.item(), rel=1e-5)
    one = DSAMKDLoss(4, 4, alpha=1.0, scales=(1,))
    one.load_state_dict(loss.state_dict())
    assert one(S, T).item() == pytest.approx(ref(S, T).item(), rel=1e-6)


def test_dsamkd_masked_logits_hand_computed():
    zt = torch.zeros(1, 2, 1, 4)
    zs = torch.tensor([[[[0.0, 1.0, 3.0, -2.0]], [[0.0, -1.0, 0.5, 2.0]]]])

    def kl(a, b):  # KL(Bern(sigmoid(a)) || Bern(sigmoid(b)))
        pa, pb = 1 / (1 + math.exp(-a)), 1 / (1 + math.exp(-b))
        return pa * math.log(pa / pb) + (1 - pa) * math.log((1 - pa) / (1 - pb))

    diffs = [abs(0.5 - 1 / (1 + math.exp(-zs[0, 0, 0, j].item()))) + abs(
        0.5 - 1 / (1 + math.exp(-zs[0, 1, 0, j].item()))) for j in range(4)]
    top = sorted(range(4), key=lambda j: -diffs[j])[:2]
    expected = sum(kl(0.0, zs[0, 0, 0, j].item()) + kl(0.0, zs[0, 1, 0, j].item()) for j in top) / 2
    loss = DSAMKDLoss(2, 2, logit_mask_ratio=0.5)
    assert loss.logit_loss(zs, zt).item() == pytest.approx(expected, rel=1e-5)
    assert loss.logit_loss(zt.clone(), zt).item() == pytest.approx(0.0, abs=1e-7)
    assert bernoulli_kl(zs, zs).abs().max() < 1e-6
    with pytest.raises(ChannelMismatchError):
        loss.logit_loss(torch.zeros(1, 3, 1, 4), zt)
    # weights: the total is feature part + logit_weight * logits part
    S = T = torch.randn(1, 2, 4, 4)
    w = DSAMKDLoss(2, 2, logit_weight=3.0, logit_mask_ratio=0.5)
    terms = w.terms(S, T, zs, zt)
    assert terms['logits'].item() == pytest.approx(3.0 * expected, rel=1e-5)


# ------------------------------------------------------------------------------- MGD (mmrazor's, reused)
def test_mgd_reused_components_match_formula_and_channels_come_from_the_necks():
    from mmrazor.registry import MODELS
    from kdlab.core.masks import random_spatial_mask
    from mmengine.registry import DefaultScope
    from kdlab.models.distillers import AutoChannelDistiller
    # the method's distiller leaves the connector channels to AutoChannelDistiller; built in mmrazor's scope,
    # as an algorithm config (_scope_='mmrazor') builds it, whatever scope an earlier test left current
    with DefaultScope.overwrite_default_scope('mmrazor'):
        d = AutoChannelDistiller(
            student_recorders=dict(fpn=dict(type='ModuleOutputs', source='neck')),
            teacher_recorders=dict(fpn=dict(type='ModuleOutputs', source='neck')),
            connectors=dict(c=dict(type='MGDConnector', student_channels=None, teacher_channels=None, lambda_mgd=0.5)),
            distill_losses=dict(loss_mgd=dict(type='MGDLoss', alpha_mgd=0.1),
                                loss_dmkd=dict(type='DMKDLoss')),
            loss_forward_mappings=dict(
                loss_mgd=dict(preds_S=dict(from_student=True, recorder='fpn', connector='c'),
                              preds_T=dict(from_student=False, recorder='fpn')),
                loss_dmkd=dict(preds_S=dict(from_student=True, recorder='fpn'),
                               preds_T=dict(from_student=False, recorder='fpn'))))
    model = lambda ch: torch.nn.ModuleDict(dict(neck=torch.nn.Conv2d(3, ch, 1)))
    student, teacher = model(4), model(6)
    student.neck.out_channels, teacher.neck.out_channels = 4, 6
    d.prepare_from_student(student)
    d.prepare_from_teacher(teacher)
    conn = d.connectors['c']
    assert type(conn).__name__ == 'MGDConnector' and conn.align.weight.shape == (6, 4, 1, 1)
    assert d.distill_losses['loss_dmkd'].align.weight.shape == (6, 4, 1, 1)
    # MGD: L = alpha * sum((G(align(S) * M) - T)^2) / N with M = 0 where R > 1 - lambda
    S, T = torch.randn(2, 4, 5, 5), torch.randn(2, 6, 5, 5)
    torch.manual_seed(3)
    out = conn(S)
    torch.manual_seed(3)
    keep = random_spatial_mask(2, 5, 5, 0.5)
    assert torch.allclose(out, conn.generation(conn.align(S) * keep), atol=1e-6)
    assert d.distill_losses['loss_mgd'](out, T).item() == pytest.approx(0.1 * ((out - T) ** 2).sum().item() / 2,
                                                                         rel=1e-5)
    assert MODELS.get('MGDLoss')(alpha_mgd=1.0)(T, T).item() == 0.0
