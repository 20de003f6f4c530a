"""mmcv's compiled ops without a compiler (kdlab.ops): each op against an independent reference, its
gradients against autograd, and, where mmcv's compiled extension or torchvision is installed, against those."""
from __future__ import annotations

import itertools
import math

import pytest
import torch
import torch.nn.functional as F

import kdlab  # noqa: F401  (installs kdlab's mmcv._ext)
from kdlab import ops
from kdlab.ops import equivalence, kernels

COMPILED = ops.compiled_extension_path() is not None
needs_compiled = pytest.mark.skipif(
    not COMPILED, reason="mmcv's compiled extension is not installed (bash tools/bootstrap.sh --compiled-ops): "
                         'the comparison with it runs where it is')
needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason='no CUDA device')


@pytest.fixture
def kdlab_ops():
    with ops.use('kdlab'):
        yield


# ----------------------------------------------------------------------------------------------- backend
def test_mmcv_ops_import_and_the_backend_is_named():
    import mmcv.ops  # noqa: F401
    served = ops.backend()
    assert served.startswith('kdlab (') or served.startswith('compiled (')
    if not COMPILED:
        assert served.startswith('kdlab')


def test_an_op_kdlab_does_not_provide_names_itself_and_the_fix(kdlab_ops):
    import mmcv.ops
    from kdlab.ops.ext import CompiledOpRequired
    with pytest.raises(CompiledOpRequired, match=r"roi_pool_forward[\s\S]*--compiled-ops"):
        mmcv.ops.roi_pool(torch.rand(1, 2, 8, 8), torch.tensor([[0., 0., 0., 4., 4.]]), (2, 2))


def test_an_unknown_backend_choice_says_which_are_known(monkeypatch):
    from kdlab.errors import KdlabError
    monkeypatch.setenv(ops.ENV, 'cuda')
    with pytest.raises(KdlabError, match='auto, kdlab, compiled'):
        ops.choice()


# ------------------------------------------------------------------------------------------------- nms
def _greedy_nms(boxes, scores, thr, offset):
    """Textbook greedy NMS on Python floats (the reference)."""
    order = sorted(range(len(scores)), key=lambda i: -float(scores[i]))
    b = boxes.tolist()
    keep = []
    for i in order:
        ok = True
        for j in keep:
            w = max(0.0, min(b[i][2], b[j][2]) - max(b[i][0], b[j][0]) + offset)
            h = max(0.0, min(b[i][3], b[j][3]) - max(b[i][1], b[j][1]) + offset)
            inter = w * h
            area = lambda k: (b[k][2] - b[k][0] + offset) * (b[k][3] - b[k][1] + offset)  # noqa: E731
            if inter / (area(i) + area(j) - inter) > thr:
                ok = False
                break
        if ok:
            keep.append(i)
    return keep


@pytest.mark.parametrize('offset', [0, 1])
def test_nms_keeps_what_greedy_nms_keeps(kdlab_ops, offset):
    import mmcv.ops
    g = torch.Generator().manual_seed(offset)
    boxes = equivalence._boxes(g, 300, 'cpu', 200, 200)
    scores = torch.rand(300, generator=g)
    _, kept = mmcv.ops.nms(boxes, scores, 0.5, offset=offset)
    assert kept.tolist() == _greedy_nms(boxes, scores, 0.5, offset)
    assert 0 < len(kept) < 300


def test_batched_nms_suppresses_only_within_a_class(kdlab_ops):
    import mmcv.ops
    boxes = torch.tensor([[0., 0., 10., 10.], [0., 0., 10., 10.], [0., 0., 10., 10.]])
    dets, kept = mmcv.ops.batched_nms(boxes, torch.tensor([0.9, 0.8, 0.7]), torch.tensor([0, 0, 1]),
                                      dict(type='nms', iou_threshold=0.5))
    assert kept.tolist() == [0, 2]
    assert dets[:, 4].tolist() == pytest.approx([0.9, 0.7])


def test_nms_of_nothing_is_empty(kdlab_ops):
    import mmcv.ops
    _, kept = mmcv.ops.nms(torch.zeros(0, 4), torch.zeros(0), 0.5)
    assert kept.shape == (0,)


# ------------------------------------------------------------------------------------------- roi_align
def _roi_align_reference(x, rois, out, scale, ratio, aligned):
    """detectron2's RoIAlign rule, one sample at a time in Python floats."""
    _, C, H, W = x.shape
    res = torch.zeros(len(rois), C, out, out, dtype=torch.float64)

    def bilinear(b, y, xx):
        if y < -1.0 or y > H or xx < -1.0 or xx > W:
            return torch.zeros(C, dtype=torch.float64)
        y, xx = max(y, 0.0), max(xx, 0.0)
        y0, x0 = int(y), int(xx)
        if y0 >= H - 1:
            y0 = y1 = H - 1
            y = float(y0)
        else:
            y1 = y0 + 1
        if x0 >= W - 1:
            x0 = x1 = W - 1
            xx = float(x0)
        else:
            x1 = x0 + 1
        ly, lx = y - y0, xx - x0
        v = x[b].double()
        return ((1 - ly) * (1 - lx) * v[:, y0, x0] + (1 - ly) * lx * v[:, y0, x1]
                + ly * (1 - lx) * v[:, y1, x0] + ly * lx * v[:, y1, x1])

    for r, (b, x1, y1, x2, y2) in enumerate(rois.tolist()):
        off = 0.5 if aligned else 0.0
        sx, sy, ex, ey = x1 * scale - off, y1 * scale - off, x2 * scale - off, y2 * scale - off
        rw, rh = ex - sx, ey - sy
        if not aligned:
            rw, rh = max(rw, 1.0), max(rh, 1.0)
        bh, bw = rh / out, rw / out
        gh = ratio if ratio > 0 else math.ceil(rh / out)
        gw = ratio if ratio > 0 else math.ceil(rw / out)
        for ph, pw in itertools.product(range(out), range(out)):
            acc = torch.zeros(C, dtype=torch.float64)
            for iy, ix in itertools.product(range(gh), range(gw)):
                acc += bilinear(int(b), sy + ph * bh + (iy + .5) * bh / gh, sx + pw * bw + (ix + .5) * bw / gw)
            res[r, :, ph, pw] = acc / max(gh * gw, 1)
    return res


@pytest.mark.parametrize('aligned,ratio', [(True, 0), (False, 2), (True, 3)])
def test_roi_align_samples_as_detectron2_does(kdlab_ops, aligned, ratio):
    import mmcv.ops
    g = torch.Generator().manual_seed(1)
    x = torch.randn(2, 3, 9, 11, generator=g)
    rois = torch.tensor([[0, 1.0, 2.0, 30.0, 20.0], [1, -6.0, -3.0, 10.0, 8.0], [1, 35.0, 28.0, 50.0, 40.0],
                         [0, 4.0, 4.0, 4.5, 4.2]])
    got = mmcv.ops.roi_align(x, rois, (3, 3), 0.25, ratio, 'avg', aligned)
    want = _roi_align_reference(x, rois, 3, 0.25, ratio, aligned)
    assert torch.allclose(got.double(), want, atol=1e-5)
    assert got.abs().sum() > 0


def test_roi_align_gradient_is_its_adjoint(kdlab_ops):
    import mmcv.ops
    g = torch.Generator().manual_seed(2)
    x = torch.randn(1, 2, 6, 7, generator=g, dtype=torch.float64, requires_grad=True)
    rois = torch.tensor([[0, 1.0, 1.0, 20.0, 15.0], [0, -2.0, 3.0, 9.0, 30.0]], dtype=torch.float64)
    assert torch.autograd.gradcheck(lambda t: mmcv.ops.roi_align(t, rois, (2, 3), 0.25, 0, 'avg', True), (x,))


def test_roi_align_max_pooling_asks_for_the_compiled_build(kdlab_ops):
    import mmcv.ops
    from kdlab.ops.ext import CompiledOpRequired
    with pytest.raises(CompiledOpRequired, match='max'):
        mmcv.ops.roi_align(torch.rand(1, 1, 4, 4), torch.tensor([[0., 0., 0., 3., 3.]]), (2, 2), 1.0, 0, 'max')


# -------------------------------------------------------------------------------- deformable convolutions
@pytest.mark.parametrize('stride,padding,dilation,groups', [(1, 1, 1, 1), (2, 0, 1, 2), (1, 2, 2, 1)])
def test_deform_conv_with_zero_offsets_is_a_convolution(kdlab_ops, stride, padding, dilation, groups):
    import mmcv.ops
    g = torch.Generator().manual_seed(3)
    x = torch.randn(2, 4, 9, 8, generator=g)
    w = torch.randn(6, 4 // groups, 3, 3, generator=g)
    ref = F.conv2d(x, w, stride=stride, padding=padding, dilation=dilation, groups=groups)
    offset = torch.zeros(2, 2 * 2 * 9, *ref.shape[2:])          # two deformable groups
    got = mmcv.ops.deform_conv2d(x, offset, w, stride, padding, dilation, groups, 2)
    assert torch.allclose(got, ref, atol=1e-4)
    mask = torch.full((2, 2 * 9, *ref.shape[2:]), 0.5)
    bias = torch.randn(6, generator=g)
    got = mmcv.ops.modulated_deform_conv2d(x, offset, mask, w, bias, stride, padding, dilation, groups, 2)
    assert torch.allclose(got, 0.5 * ref + bias.view(1, -1, 1, 1), atol=1e-4)


def test_deform_conv_with_a_whole_pixel_offset_shifts_the_input(kdlab_ops):
    """Every sample moved one pixel right = a convolution of the zero-padded input shifted one pixel left."""
    import mmcv.ops
    g = torch.Generator().manual_seed(4)
    x, w = torch.randn(1, 3, 7, 7, generator=g), torch.randn(5, 3, 3, 3, generator=g)
    offset = torch.zeros(1, 18, 7, 7)
    offset[:, 1::2] = 1.0                                         # x component of every kernel point
    shifted = F.pad(F.pad(x, (1, 1, 1, 1))[..., 1:], (0, 1))    # padded, then one column left
    got = mmcv.ops.deform_conv2d(x, offset, w, 1, 1, 1, 1, 1)
    assert torch.allclose(got, F.conv2d(shifted, w), atol=1e-4)
    assert not torch.allclose(got, F.conv2d(x, w, padding=1), atol=1e-2)


def test_deform_conv_gradients_match_autograd_of_the_forward(kdlab_ops):
    import mmcv.ops
    g = torch.Generator().manual_seed(5)
    kw = dict(dtype=torch.float64, requires_grad=True)
    x = torch.randn(2, 4, 5, 6, generator=g, **kw)
    off = (torch.randn(2, 18, 5, 6, generator=g, dtype=torch.float64) * 1.3 + 0.37).requires_grad_()
    w = torch.randn(4, 2, 3, 3, generator=g, **kw)
    assert torch.autograd.gradcheck(lambda a, b, c: mmcv.ops.deform_conv2d(a, b, c, 1, 1, 1, 2, 1), (x, off, w))
    mask = torch.rand(2, 9, 5, 6, generator=g, dtype=torch.float64, requires_grad=True)
    bias = torch.randn(4, generator=g, **kw)
    assert torch.autograd.gradcheck(
        lambda a, b, m, c, d: mmcv.ops.modulated_deform_conv2d(a, b, m, c, d, 1, 1, 1, 2, 1), (x, off, mask, w, bias))


# -------------------------------------------------------------------------------------- focal loss, attention
def test_sigmoid_focal_loss_equals_mmdets_pytorch_version_forward_and_backward(kdlab_ops):
    """In float64 the two agree to rounding; in float32 mmcv's kernel (and so kdlab's) loses precision in
    ``log(1 - sigmoid(x))`` for large logits, where mmdet's version uses the stable BCE-with-logits."""
    case = next(c for c in equivalence.cases('test') if c.op == 'sigmoid_focal_loss')
    inputs = case.build(torch.Generator().manual_seed(0), 'cpu')
    inputs64 = {k: v.double() if v.is_floating_point() else v for k, v in inputs.items()}
    ours = equivalence._evaluate(case, inputs64, case.call)
    mmdet = equivalence._evaluate(case, inputs64, case.reference)
    assert torch.allclose(ours['output'], mmdet['output'], rtol=1e-9, atol=1e-12)
    assert torch.allclose(ours['grad input'], mmdet['grad input'], rtol=1e-9, atol=1e-12)
    assert ours['output'].abs().max() > 0.1
    ours32, mmdet32 = (equivalence._evaluate(case, inputs, f) for f in (case.call, case.reference))
    assert torch.allclose(ours32['output'], mmdet32['output'], rtol=1e-2, atol=1e-5)
    assert torch.allclose(ours32['grad input'], mmdet32['grad input'], rtol=1e-2, atol=1e-5)


def test_multi_scale_deformable_attention_backward_is_autograd_of_mmcvs_pytorch_path():
    from mmcv.ops.multi_scale_deform_attn import multi_scale_deformable_attn_pytorch
    from kdlab.ops import ext
    g = torch.Generator().manual_seed(6)
    shapes = torch.tensor([[6, 8], [3, 4]])
    start = torch.tensor([0, 48])
    value = torch.randn(2, 60, 2, 4, generator=g)
    loc = torch.rand(2, 5, 2, 2, 3, 2, generator=g)
    attn = torch.rand(2, 5, 2, 2, 3, generator=g)
    out = ext.ms_deform_attn_forward(value, shapes, start, loc, attn, im2col_step=64)
    grad = torch.randn_like(out)
    gv, gl, ga = (torch.zeros_like(t) for t in (value, loc, attn))
    ext.ms_deform_attn_backward(value, shapes, start, loc, attn, grad, gv, gl, ga, im2col_step=64)
    leaves = [t.clone().requires_grad_() for t in (value, loc, attn)]
    ref = multi_scale_deformable_attn_pytorch(leaves[0], shapes, leaves[1], leaves[2])
    ref.backward(grad)
    assert torch.allclose(out, ref.detach())
    for mine, leaf in zip((gv, gl, ga), leaves):
        assert torch.allclose(mine, leaf.grad, atol=1e-5) and mine.abs().sum() > 0


# ------------------------------------------------------------------- against mmcv's compiled extension
@needs_compiled
@pytest.mark.slow
@pytest.mark.parametrize('op', sorted({c.op for c in equivalence.cases('full')}))
def test_kdlab_ops_equal_mmcvs_compiled_kernels_at_full_scale_shapes(op):
    for row in equivalence.compare('kdlab', 'compiled', 'cpu', 'full', only=[op]):
        _assert_equivalent(row)


def _assert_equivalent(row):
    """Agreement within 1e-4 of the largest value (float32; float64 where the row compares with a PyTorch
    reference because the compiled build lacks the op on this device)."""
    assert 'unavailable' not in row, row
    tolerance = 1e-9 if 'note' in row else 1e-4
    if 'same_indices' in row:
        assert row['same_indices'], row
    for key, value in row.items():
        if key.endswith('max_abs_diff') and not key.startswith('float32 '):   # float32: reported, not compared
            scale = max(row[key.replace('max_abs_diff', 'max_abs')], 1.0)
            assert value <= tolerance * scale, (key, row)


@pytest.mark.skipif(kernels.torchvision_kernels() is None, reason='torchvision does not load beside this torch')
def test_torchvision_kernels_equal_the_plain_torch_ones(monkeypatch):
    """Where torchvision serves nms / roi_align / deform_conv2d, the plain-torch kernels give the same."""
    with_tv = equivalence.compare('kdlab', 'kdlab', shapes='test')   # both torchvision
    kernels.torchvision_kernels.cache_clear()
    monkeypatch.setenv('KDLAB_TORCHVISION', '0')
    try:
        rows = []
        for case in equivalence.cases('test'):
            g = torch.Generator().manual_seed(0)
            inputs = case.build(g, 'cpu')
            plain = equivalence._run(case, inputs, 'kdlab')
            monkeypatch.setenv('KDLAB_TORCHVISION', '1')
            kernels.torchvision_kernels.cache_clear()
            tv = equivalence._run(case, inputs, 'kdlab')
            monkeypatch.setenv('KDLAB_TORCHVISION', '0')
            kernels.torchvision_kernels.cache_clear()
            for k in plain:
                if case.indices and k == 'output':
                    assert torch.equal(plain[k], tv[k]), case.name
                else:
                    assert torch.allclose(plain[k], tv[k], atol=1e-4, rtol=1e-4), (case.name, k)
            rows.append(case.name)
        assert rows and with_tv
    finally:
        kernels.torchvision_kernels.cache_clear()


@needs_cuda
@pytest.mark.gpu
def test_each_op_on_cuda_equals_its_cpu_result():
    for case in equivalence.cases('test'):
        g = torch.Generator().manual_seed(0)
        cpu_inputs = case.build(g, 'cpu')
        cuda_inputs = {k: v.cuda() for k, v in cpu_inputs.items()}
        cpu = equivalence._run(case, cpu_inputs, 'kdlab')
        cuda = equivalence._run(case, cuda_inputs, 'kdlab')
        for k in cpu:
            if case.indices and k == 'output':
                assert torch.equal(cpu[k], cuda[k].cpu()), case.name
            else:
                assert torch.allclose(cpu[k], cuda[k].cpu(), atol=1e-4, rtol=1e-4), (case.name, k)


def test_doctor_and_run_provenance_name_the_implementation():
    from kdlab.doctor import checks
    from kdlab.engine.runner import provenance
    from kdlab.zoo import detector_config
    row = next(r for r in checks() if r[0] == 'mmcv ops')
    assert row[1], row
    assert row[2].startswith(ops.backend())
    assert provenance(detector_config('retinanet_r18', 'smoke'))['mmcv_ops'] == ops.backend()
