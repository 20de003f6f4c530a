"""mmcv's compiled detection ops, written in plain torch and dispatched to torchvision where its kernels load.

Each function here has the semantics of the mmcv 2.1.0 kernel named in its docstring (the CPU ``.cpp`` file
under ``mmcv/ops/csrc/pytorch/cpu`` or the CUDA kernel under ``mmcv/ops/csrc/common/cuda``): the same sort,
the same comparison, the same bilinear rule at the borders. They are plain autograd functions of their inputs;
:mod:`kdlab.ops.ext` wraps them in the in-place calling convention of mmcv's ``_ext`` module.

torchvision (maintained and released with torch, a wheel for every release) ships CPU and CUDA kernels for
three of them: ``nms``, ``roi_align`` (``aligned=True`` is mmcv's aligned mode, ``sampling_ratio<=0`` the
same adaptive grid) and ``deform_conv2d`` (with ``mask``: DCNv2). They are used where torchvision imports and
its kernels run; otherwise the plain-torch code below runs (on this project's CPU machines the registry's
torchvision wheels are built against CUDA torch and do not load beside the CPU build of torch 2.13.0).
"""
from __future__ import annotations

import functools
from typing import Optional, Tuple

import numpy as np
import torch
from torch import Tensor

@functools.lru_cache(maxsize=None)
def torchvision_kernels() -> Optional[str]:
    """torchvision's version if its compiled kernels run beside this torch, else None (plain torch is used).

    ``KDLAB_TORCHVISION=0`` turns them off (the tests compare both paths where both exist).
    """
    import os
    if os.environ.get('KDLAB_TORCHVISION', '1') == '0':
        return None
    try:
        import torchvision
        from torchvision.ops import nms as tv_nms
        tv_nms(torch.zeros(1, 4), torch.zeros(1), 0.5)
        return torchvision.__version__
    except Exception:  # not installed, or built for another torch (e.g. a CUDA wheel beside a CPU torch)
        return None


# --------------------------------------------------------------------------------------------------- nms
def nms(boxes: Tensor, scores: Tensor, iou_threshold: float, offset: int = 0) -> Tensor:
    """Indices of the boxes greedy NMS keeps, highest score first (mmcv ``nms_cpu`` / ``nms_cuda``).

    Boxes are sorted by score (``scores.sort(descending=True)``, as mmcv does); a box is suppressed by an
    earlier kept one whose IoU with it is ``> iou_threshold``; widths are ``x2 - x1 + offset``.
    """
    if boxes.numel() == 0:
        return boxes.new_zeros(0, dtype=torch.long)
    if offset == 0 and torchvision_kernels():
        from torchvision.ops import nms as tv_nms
        return tv_nms(boxes, scores, float(iou_threshold))
    order = scores.sort(0, descending=True)[1]
    # The greedy pass is sequential: one vectorised IoU row per kept box, in numpy (float32, as mmcv's C++).
    b = boxes.detach().to('cpu', torch.float32)[order.cpu()].numpy()
    x1, y1, x2, y2 = (np.ascontiguousarray(b[:, i]) for i in range(4))
    off = np.float32(offset)
    areas = (x2 - x1 + off) * (y2 - y1 + off)
    keep = np.ones(len(b), dtype=bool)
    zero = np.float32(0)
    for i in range(len(b)):
        if not keep[i]:
            continue
        w = np.maximum(zero, np.minimum(x2[i], x2[i + 1:]) - np.maximum(x1[i], x1[i + 1:]) + off)
        h = np.maximum(zero, np.minimum(y2[i], y2[i + 1:]) - np.maximum(y1[i], y1[i + 1:]) + off)
        inter = w * h
        keep[i + 1:] &= ~(inter / (areas[i] + areas[i + 1:] - inter) > np.float32(iou_threshold))
    return order[torch.from_numpy(keep).to(order.device)]


# ---------------------------------------------------------------------------------------------- roi_align
def roi_align(input: Tensor, rois: Tensor, output_size: Tuple[int, int], spatial_scale: float,
              sampling_ratio: int, aligned: bool) -> Tensor:
    """Average RoIAlign (mmcv ``ROIAlignForward`` with ``pool_mode=1``; torchvision's ``roi_align``).

    ``rois`` is ``(R, 5)``: batch index, x1, y1, x2, y2 in input-image pixels. Each of the ``ph x pw`` bins
    averages a grid of ``sampling_ratio`` (or ``ceil(roi size / bins)`` when ``<= 0``) bilinear samples; a
    sample beyond one pixel outside the map is 0, one within it is clamped to the border (mmcv's rule).
    Differentiable in ``input``.
    """
    ph, pw = output_size
    return _RoIAlign.apply(input, rois, float(spatial_scale), ph, pw, int(sampling_ratio), bool(aligned))


def _roi_geometry(rois: Tensor, ph: int, pw: int, spatial_scale: float, sampling_ratio: int, aligned: bool):
    offset = 0.5 if aligned else 0.0
    start_w = rois[:, 1] * spatial_scale - offset
    start_h = rois[:, 2] * spatial_scale - offset
    roi_w = (rois[:, 3] * spatial_scale - offset) - start_w
    roi_h = (rois[:, 4] * spatial_scale - offset) - start_h
    if not aligned:  # mmcv: "for backward-compatibility only"
        roi_w, roi_h = roi_w.clamp(min=1.0), roi_h.clamp(min=1.0)
    bin_h, bin_w = roi_h / ph, roi_w / pw
    if sampling_ratio > 0:
        grid_h = torch.full_like(roi_h, sampling_ratio, dtype=torch.long)
        grid_w = torch.full_like(roi_w, sampling_ratio, dtype=torch.long)
    else:
        grid_h, grid_w = torch.ceil(roi_h / ph).long(), torch.ceil(roi_w / pw).long()
    return start_h, start_w, bin_h, bin_w, grid_h, grid_w


def _roi_axis_matrix(start: Tensor, bin_size: Tensor, grid: Tensor, bins: int, size: int) -> Tensor:
    """RoIAlign along one axis as a matrix ``(R, bins, size)``: row ``p`` averages the ``grid`` bilinear
    samples of bin ``p`` over the ``size`` pixels, with mmcv's border rule."""
    R = start.shape[0]
    g = max(1, int(grid.max().item())) if R else 1
    p = torch.arange(bins, device=start.device, dtype=start.dtype).view(1, bins, 1)
    i = torch.arange(g, device=start.device, dtype=start.dtype).view(1, 1, g)
    # mmcv: roi_start + p * bin_size + (i + .5f) * bin_size / grid, in this order
    c = start.view(-1, 1, 1) + p * bin_size.view(-1, 1, 1) + (i + 0.5) * bin_size.view(-1, 1, 1) \
        / grid.view(-1, 1, 1).to(start.dtype)
    inside = (c >= -1.0) & (c <= size) & (i < grid.view(-1, 1, 1))
    c = c.clamp(min=0)
    low = c.floor().long()
    at_border = low >= size - 1
    low = torch.where(at_border, torch.full_like(low, size - 1), low)
    high = torch.where(at_border, low, low + 1)
    frac = torch.where(at_border, torch.zeros_like(c), c - low.to(c.dtype))
    scale = inside.to(c.dtype) / grid.clamp(min=1).view(-1, 1, 1).to(c.dtype)
    m = start.new_zeros(R, bins, size)
    m.scatter_add_(2, low.expand(R, bins, g), (1 - frac) * scale)
    m.scatter_add_(2, high.expand(R, bins, g), frac * scale)
    return m


def _roi_windows(rois: Tensor, shape, ph: int, pw: int, spatial_scale: float, sampling_ratio: int,
                 aligned: bool):
    """Per RoI: (batch index, (y0, y1), (x0, x1), Ay window, Ax window) with ``out = Ay @ x[b, :, y0:y1, x0:x1]
    @ Ax.T``; RoIs that sample nothing are left out. Bilinear interpolation and the bin average are separable,
    so RoIAlign is two small matrix products per RoI over the pixels it touches."""
    _, _, H, W = shape
    start_h, start_w, bin_h, bin_w, grid_h, grid_w = _roi_geometry(rois, ph, pw, spatial_scale, sampling_ratio,
                                                                    aligned)
    ay = _roi_axis_matrix(start_h, bin_h, grid_h, ph, H)
    ax = _roi_axis_matrix(start_w, bin_w, grid_w, pw, W)

    def extent(m, size):
        used = m.ne(0).any(dim=1)                                    # (R, size)
        first = used.to(torch.uint8).argmax(dim=1)
        last = size - used.flip(1).to(torch.uint8).argmax(dim=1)
        return used.any(dim=1).tolist(), first.tolist(), last.tolist()

    (ok_y, y0, y1), (ok_x, x0, x1) = extent(ay, H), extent(ax, W)
    batch = rois[:, 0].long().tolist()
    return [(r, batch[r], (y0[r], y1[r]), (x0[r], x1[r]), ay[r, :, y0[r]:y1[r]], ax[r, :, x0[r]:x1[r]])
            for r in range(rois.shape[0]) if ok_y[r] and ok_x[r]]


def roi_align_forward(input: Tensor, rois: Tensor, ph: int, pw: int, spatial_scale: float, sampling_ratio: int,
                      aligned: bool) -> Tensor:
    """RoIAlign's output ``(R, C, ph, pw)``: torchvision's kernel where it loads, else the separable products."""
    if torchvision_kernels():
        return torch.ops.torchvision.roi_align(input, rois, spatial_scale, ph, pw, sampling_ratio, aligned)
    out = input.new_zeros((rois.shape[0], input.shape[1], ph, pw))
    with torch.no_grad():
        for r, b, (y0, y1), (x0, x1), ay, ax in _roi_windows(rois.detach().to(input.dtype), input.shape, ph, pw,
                                                             spatial_scale, sampling_ratio, aligned):
            out[r] = torch.matmul(torch.matmul(ay, input[b, :, y0:y1, x0:x1]), ax.t())
    return out


def roi_align_backward(grad_output: Tensor, rois: Tensor, input_shape, spatial_scale: float,
                       sampling_ratio: int, aligned: bool) -> Tensor:
    """The gradient of :func:`roi_align_forward` in its input (it is linear: the transposed products)."""
    ph, pw = grad_output.shape[2:]
    if torchvision_kernels():
        B, C, H, W = input_shape
        return torch.ops.torchvision._roi_align_backward(grad_output.contiguous(), rois, spatial_scale, ph, pw,
                                                         B, C, H, W, sampling_ratio, aligned)
    grad_input = grad_output.new_zeros(input_shape)
    with torch.no_grad():
        for r, b, (y0, y1), (x0, x1), ay, ax in _roi_windows(rois.detach().to(grad_output.dtype), input_shape,
                                                             ph, pw, spatial_scale, sampling_ratio, aligned):
            grad_input[b, :, y0:y1, x0:x1] += torch.matmul(torch.matmul(ay.t(), grad_output[r]), ax)
    return grad_input


class _RoIAlign(torch.autograd.Function):

    @staticmethod
    def forward(ctx, input, rois, spatial_scale, ph, pw, sampling_ratio, aligned):
        ctx.save_for_backward(rois)
        ctx.args = (spatial_scale, sampling_ratio, aligned, tuple(input.shape))
        return roi_align_forward(input, rois, ph, pw, spatial_scale, sampling_ratio, aligned)

    @staticmethod
    def backward(ctx, grad):
        rois, = ctx.saved_tensors
        spatial_scale, sampling_ratio, aligned, shape = ctx.args
        return (roi_align_backward(grad.contiguous(), rois, shape, spatial_scale, sampling_ratio, aligned),
                None, None, None, None, None, None)


# ------------------------------------------------------------------------------------ deformable convolution
def deform_conv2d(input: Tensor, offset: Tensor, weight: Tensor, bias: Optional[Tensor] = None,
                  stride=(1, 1), padding=(0, 0), dilation=(1, 1), groups: int = 1,
                  mask: Optional[Tensor] = None) -> Tensor:
    """Deformable convolution, DCNv1 (``mask=None``; mmcv ``deform_conv``) or v2 (mmcv ``modulated_deform_conv``).

    ``offset`` is ``(B, 2 * deform_groups * kh * kw, Ho, Wo)``: for kernel point ``k = i * kw + j`` of
    deformable group ``g``, channel ``2 * (g * kh * kw + k)`` moves the sample along y and the next along x
    (mmcv's and torchvision's layout). A sample ``(y, x)`` with ``-1 < y < H`` and ``-1 < x < W`` is bilinear,
    each corner outside the map counting 0; any other sample is 0 (mmcv's ``deformable_im2col_bilinear``).
    ``mask`` (``(B, deform_groups * kh * kw, Ho, Wo)``) scales each sample (DCNv2).
    """
    if torchvision_kernels():
        from torchvision.ops import deform_conv2d as tv_deform_conv2d
        return tv_deform_conv2d(input, offset, weight, bias, stride=stride, padding=padding,
                                dilation=dilation, mask=mask)
    B, Cin, H, W = input.shape
    Cout, Cin_g, kh, kw = weight.shape
    K = kh * kw
    dg = offset.shape[1] // (2 * K)
    Ho, Wo = offset.shape[2], offset.shape[3]
    dev, dt = input.device, input.dtype
    base_y = (torch.arange(Ho, device=dev) * stride[0] - padding[0]).view(1, Ho, 1) \
        + (torch.arange(kh, device=dev) * dilation[0]).repeat_interleave(kw).view(K, 1, 1)
    base_x = (torch.arange(Wo, device=dev) * stride[1] - padding[1]).view(1, 1, Wo) \
        + (torch.arange(kw, device=dev) * dilation[1]).repeat(kh).view(K, 1, 1)
    off = offset.view(B, dg, K, 2, Ho, Wo)
    y = base_y.to(dt) + off[:, :, :, 0]                             # (B, dg, K, Ho, Wo)
    x = base_x.to(dt) + off[:, :, :, 1]
    feat = input.view(B, dg, Cin // dg, H, W).permute(0, 1, 3, 4, 2).reshape(B * dg, H * W, Cin // dg)
    sampled = _bilinear_zero_outside(feat, y.reshape(B * dg, -1), x.reshape(B * dg, -1), H, W)
    sampled = sampled.view(B, dg, K, Ho, Wo, Cin // dg)
    if mask is not None:
        sampled = sampled * mask.view(B, dg, K, Ho, Wo, 1)
    # columns (B, Cin * K, Ho * Wo), channel-major like weight.view(Cout, Cin_g * K)
    columns = sampled.permute(0, 1, 5, 2, 3, 4).reshape(B, groups, Cin_g * K, Ho * Wo)
    out = torch.einsum('gok,bgkl->bgol', weight.view(groups, Cout // groups, Cin_g * K), columns)
    out = out.reshape(B, Cout, Ho, Wo)
    return out if bias is None else out + bias.view(1, -1, 1, 1)


def _bilinear_zero_outside(feat: Tensor, y: Tensor, x: Tensor, H: int, W: int) -> Tensor:
    """``feat`` (N, H * W, C) sampled at (N, P) points: mmcv's deformable-conv bilinear rule -> (N, P, C)."""
    inside = (y > -1) & (y < H) & (x > -1) & (x < W)
    y0, x0 = y.floor(), x.floor()
    ly, lx = y - y0, x - x0
    y0, x0 = y0.long(), x0.long()
    rows = torch.arange(feat.shape[0], device=feat.device).view(-1, 1)

    def corner(yi, xi, wgt):
        ok = inside & (yi >= 0) & (yi <= H - 1) & (xi >= 0) & (xi <= W - 1)
        idx = (yi.clamp(0, H - 1) * W + xi.clamp(0, W - 1))
        return feat[rows, idx] * (wgt * ok.to(wgt.dtype)).unsqueeze(-1)

    hy, hx = 1 - ly, 1 - lx
    return (corner(y0, x0, hy * hx) + corner(y0, x0 + 1, hy * lx)) \
        + (corner(y0 + 1, x0, ly * hx) + corner(y0 + 1, x0 + 1, ly * lx))


# ------------------------------------------------------------------------------------------ sigmoid focal loss
def sigmoid_focal_loss(input: Tensor, target: Tensor, gamma: float, alpha: float,
                       weight: Optional[Tensor] = None) -> Tensor:
    """Element-wise sigmoid focal loss, ``(N, C)`` (mmcv ``sigmoid_focal_loss_forward_cuda_kernel``).

    ``target`` holds class indices, ``C`` meaning background; ``p = sigmoid(x)``:
    ``-alpha (1 - p)^gamma log(max(p, FLT_MIN))`` for the target class and
    ``-(1 - alpha) p^gamma log(max(1 - p, FLT_MIN))`` for the others; times ``weight[target]`` if given.
    """
    p, pos, tiny = _focal_terms(input, target)
    loss = -alpha * (1 - p).pow(gamma) * p.clamp(min=tiny).log() * pos \
        - (1 - alpha) * p.pow(gamma) * (1 - p).clamp(min=tiny).log() * (1 - pos)
    return loss if weight is None or weight.numel() == 0 else loss * weight[target].unsqueeze(1)


def sigmoid_focal_loss_grad(input: Tensor, target: Tensor, gamma: float, alpha: float,
                            weight: Optional[Tensor] = None) -> Tensor:
    """d loss / d input of :func:`sigmoid_focal_loss`, mmcv's closed form (``..._backward_cuda_kernel``)."""
    p, pos, tiny = _focal_terms(input, target)
    term_p = (1 - p).pow(gamma) * (1 - p - gamma * p * p.clamp(min=tiny).log())
    term_n = p.pow(gamma) * (gamma * (1 - p) * (1 - p).clamp(min=tiny).log() - p)
    grad = -alpha * term_p * pos - (1 - alpha) * term_n * (1 - pos)
    return grad if weight is None or weight.numel() == 0 else grad * weight[target].unsqueeze(1)


def _focal_terms(input, target):
    p = torch.sigmoid(input)
    classes = torch.arange(input.shape[1], device=input.device)
    pos = (target.view(-1, 1) == classes.view(1, -1)).to(input.dtype)
    return p, pos, torch.finfo(torch.float32).tiny


# ------------------------------------------------------------------------- multi-scale deformable attention
def ms_deform_attn(value: Tensor, spatial_shapes: Tensor, level_start_index: Tensor,
                   sampling_locations: Tensor, attention_weights: Tensor) -> Tensor:
    """Multi-scale deformable attention (Deformable DETR), mmcv's own PyTorch path
    (``multi_scale_deformable_attn_pytorch``: ``grid_sample``, bilinear, zeros outside, ``align_corners=False``)."""
    from mmcv.ops.multi_scale_deform_attn import multi_scale_deformable_attn_pytorch
    return multi_scale_deformable_attn_pytorch(value, spatial_shapes, sampling_locations, attention_weights)


def vjp(fn, inputs: Tuple[Tensor, ...], grad_output: Tensor, needs: Tuple[bool, ...]):
    """Gradients of ``fn(*inputs)`` against ``grad_output`` for the inputs flagged in ``needs`` (others None):
    the backward kernels of mmcv's ``_ext`` as autograd of the forward."""
    with torch.enable_grad():
        leaves = [t.detach().requires_grad_(n) if t is not None and n else (None if t is None else t.detach())
                  for t, n in zip(inputs, needs)]
        out = fn(*leaves)
        wanted = [t for t, n in zip(leaves, needs) if n and t is not None]
        grads = iter(torch.autograd.grad(out, wanted, grad_output, allow_unused=True))
    return [next(grads) if n and t is not None else None for t, n in zip(leaves, needs)]


__all__ = ['torchvision_kernels', 'nms', 'roi_align', 'deform_conv2d', 'sigmoid_focal_loss',
           'sigmoid_focal_loss_grad', 'ms_deform_attn', 'vjp']
