"""``mmcv._ext`` without a compiler: the functions mmcv 2.1.0's Python ops call, in mmcv's calling convention.

mmcv's op modules (``mmcv/ops/*.py``) call ``ext_loader.load_ext('_ext', [names])`` when they are imported,
which asserts that every name exists, and then call e.g. ``ext_module.roi_align_forward(input, rois, output,
...)``, writing into ``output`` in place. :class:`MmcvExt` is that module for the ops the detectors of the seed
tables use (the kernels are :mod:`kdlab.ops.kernels`):

===============================================  ==============================================================
mmcv ``_ext`` function                            used by
===============================================  ==============================================================
``nms``                                           every detector (``batched_nms``, RPN, ``multiclass_nms``)
``roi_align_forward`` / ``_backward``             Faster / Mask / Cascade R-CNN RoI extractors, mask targets
``deform_conv_forward`` / ``_backward_input`` /   RepPoints head, TOOD (DCNv1)
``_backward_parameters``
``modulated_deform_conv_forward`` / ``_backward``  the X101-DCN backbones at full scale (DCNv2)
``sigmoid_focal_loss_forward`` / ``_backward``     mmdet's ``FocalLoss`` on CUDA tensors (on the CPU mmdet uses
                                                  its own PyTorch version)
``ms_deform_attn_forward`` / ``_backward``         the DETR family on CUDA tensors (mmcv's PyTorch path elsewhere)
``get_compiler_version`` / ``_cuda_version``      environment reports
===============================================  ==============================================================

Every other name exists (so that ``import mmcv.ops`` works) and raises :class:`CompiledOpRequired`, naming
the op and the fix, when it is called. Backward functions recompute the forward under autograd (the ops are
cheap next to the detector around them, and the gradients are the forward's own, by construction).
"""
from __future__ import annotations

import types
from typing import Dict

import torch

from kdlab.errors import KdlabError
from kdlab.ops import kernels

COMPILED_OPS_FIX = ('install mmcv with its compiled ops: bash tools/bootstrap.sh --compiled-ops '
                    '(add FORCE_CUDA=1 on a GPU machine); it compiles mmcv 2.1.0 once per machine, 10-30 min')


class CompiledOpRequired(KdlabError, NotImplementedError):
    """An mmcv op that kdlab's compiler-free ``_ext`` does not provide."""


def _missing(name: str):
    def op(*args, **kwargs):
        raise CompiledOpRequired(
            f"mmcv op '{name}' needs mmcv's compiled extension; kdlab's compiler-free ops provide only "
            f"{', '.join(sorted(PROVIDED))}", COMPILED_OPS_FIX)
    op.__name__ = name
    op.__qualname__ = f'MmcvExt.{name}'
    op.kdlab_missing = True
    return op


# ------------------------------------------------------------------------------------------------- nms
def nms(boxes, scores, iou_threshold: float, offset: int):
    return kernels.nms(boxes, scores, iou_threshold, offset)


# ------------------------------------------------------------------------------------------- roi_align
def _avg_only(pool_mode: int) -> None:
    if pool_mode != 1:
        raise CompiledOpRequired("mmcv RoIAlign with pool_mode='max' has no compiler-free kernel in kdlab "
                                 "(mmdet uses 'avg')", COMPILED_OPS_FIX)


def roi_align_forward(input, rois, output, argmax_y, argmax_x, aligned_height, aligned_width, spatial_scale,
                      sampling_ratio, pool_mode, aligned):
    _avg_only(pool_mode)
    output.copy_(kernels.roi_align(input, rois, (aligned_height, aligned_width), spatial_scale,
                                   sampling_ratio, aligned))


def roi_align_backward(grad_output, rois, argmax_y, argmax_x, grad_input, aligned_height, aligned_width,
                       spatial_scale, sampling_ratio, pool_mode, aligned):
    _avg_only(pool_mode)
    grad_input.add_(kernels.roi_align_backward(grad_output, rois, grad_input.shape, spatial_scale, sampling_ratio,
                                               aligned))


# --------------------------------------------------------------------------------------- deform conv (v1)
# mmcv calls backward_input and then backward_parameters with the same grad_output; one autograd pass gives
# all three gradients, and the weight's waits here for the second call.
_pending_weight_grad: Dict[int, torch.Tensor] = {}


def _dcn_args(kW, kH, dW, dH, padW, padH, dilationW, dilationH, group):
    return dict(stride=(dH, dW), padding=(padH, padW), dilation=(dilationH, dilationW), groups=group)


def deform_conv_forward(input, weight, offset, output, columns, ones, kW, kH, dW, dH, padW, padH, dilationW,
                        dilationH, group, deformable_group, im2col_step):
    args = _dcn_args(kW, kH, dW, dH, padW, padH, dilationW, dilationH, group)
    output.copy_(kernels.deform_conv2d(input, offset, weight, **args))


def deform_conv_backward_input(input, offset, grad_output, grad_input, grad_offset, weight, columns, kW, kH,
                               dW, dH, padW, padH, dilationW, dilationH, group, deformable_group,
                               im2col_step):
    args = _dcn_args(kW, kH, dW, dH, padW, padH, dilationW, dilationH, group)
    g_in, g_off, g_w = kernels.vjp(lambda x, o, w: kernels.deform_conv2d(x, o, w, **args),
                                   (input, offset, weight), grad_output, (True, True, weight.requires_grad))
    grad_input.add_(g_in)
    grad_offset.add_(g_off)
    if g_w is not None:
        _pending_weight_grad.clear()
        _pending_weight_grad[id(grad_output)] = g_w


def deform_conv_backward_parameters(input, offset, grad_output, grad_weight, columns, ones, kW, kH, dW, dH,
                                    padW, padH, dilationW, dilationH, group, deformable_group, scale,
                                    im2col_step):
    g_w = _pending_weight_grad.pop(id(grad_output), None)
    if g_w is None or g_w.shape != grad_weight.shape:
        args = _dcn_args(kW, kH, dW, dH, padW, padH, dilationW, dilationH, group)
        # the convolution is linear in its weight, so any weight of the right shape gives its gradient
        _, _, g_w = kernels.vjp(lambda x, o, w: kernels.deform_conv2d(x, o, w, **args),
                                (input, offset, torch.zeros_like(grad_weight)), grad_output, (False, False, True))
    grad_weight.add_(g_w, alpha=scale)


# ------------------------------------------------------------------------------- modulated deform conv (v2)
def _mdcn(with_bias, kernel_h, kernel_w, stride_h, stride_w, pad_h, pad_w, dilation_h, dilation_w, group):
    def fn(x, w, b, o, m):
        return kernels.deform_conv2d(x, o, w, b if with_bias else None, stride=(stride_h, stride_w),
                                     padding=(pad_h, pad_w), dilation=(dilation_h, dilation_w), groups=group,
                                     mask=m)
    return fn


def modulated_deform_conv_forward(input, weight, bias, ones, offset, mask, output, columns, kernel_h, kernel_w,
                                  stride_h, stride_w, pad_h, pad_w, dilation_h, dilation_w, group,
                                  deformable_group, with_bias):
    fn = _mdcn(with_bias, kernel_h, kernel_w, stride_h, stride_w, pad_h, pad_w, dilation_h, dilation_w, group)
    output.copy_(fn(input, weight, bias, offset, mask))


def modulated_deform_conv_backward(input, weight, bias, ones, offset, mask, columns, grad_input, grad_weight,
                                   grad_bias, grad_offset, grad_mask, grad_output, kernel_h, kernel_w,
                                   stride_h, stride_w, pad_h, pad_w, dilation_h, dilation_w, group,
                                   deformable_group, with_bias):
    fn = _mdcn(with_bias, kernel_h, kernel_w, stride_h, stride_w, pad_h, pad_w, dilation_h, dilation_w, group)
    grads = kernels.vjp(fn, (input, weight, bias, offset, mask), grad_output,
                        (True, True, bool(with_bias), True, True))
    for out, g in zip((grad_input, grad_weight, grad_bias, grad_offset, grad_mask), grads):
        if g is not None:
            out.add_(g)


# -------------------------------------------------------------------------------------- sigmoid focal loss
def sigmoid_focal_loss_forward(input, target, weight, output, gamma, alpha):
    output.copy_(kernels.sigmoid_focal_loss(input, target, gamma, alpha, weight))


def sigmoid_focal_loss_backward(input, target, weight, grad_input, gamma, alpha):
    grad_input.copy_(kernels.sigmoid_focal_loss_grad(input, target, gamma, alpha, weight))


# ------------------------------------------------------------------------ multi-scale deformable attention
def ms_deform_attn_forward(value, value_spatial_shapes, value_level_start_index, sampling_locations,
                           attention_weights, im2col_step):
    return kernels.ms_deform_attn(value, value_spatial_shapes, value_level_start_index, sampling_locations,
                                  attention_weights)


def ms_deform_attn_backward(value, value_spatial_shapes, value_level_start_index, sampling_locations,
                            attention_weights, grad_output, grad_value, grad_sampling_loc, grad_attn_weight,
                            im2col_step):
    g_v, g_loc, g_attn = kernels.vjp(
        lambda v, loc, a: kernels.ms_deform_attn(v, value_spatial_shapes, value_level_start_index, loc, a),
        (value, sampling_locations, attention_weights), grad_output, (True, True, True))
    grad_value.add_(g_v)
    grad_sampling_loc.add_(g_loc)
    grad_attn_weight.add_(g_attn)


# ------------------------------------------------------------------------------------------ environment
def get_compiler_version() -> str:
    tv = kernels.torchvision_kernels()
    return f'none (kdlab compiler-free ops: {"torchvision " + tv + " + " if tv else ""}torch {torch.__version__})'


def get_compiling_cuda_version() -> str:
    return 'not compiled'


PROVIDED = {
    f.__name__: f for f in (
        nms, roi_align_forward, roi_align_backward, deform_conv_forward, deform_conv_backward_input,
        deform_conv_backward_parameters, modulated_deform_conv_forward, modulated_deform_conv_backward,
        sigmoid_focal_loss_forward, sigmoid_focal_loss_backward, ms_deform_attn_forward, ms_deform_attn_backward,
        get_compiler_version, get_compiling_cuda_version)
}


class MmcvExt(types.ModuleType):
    """Stands in for ``mmcv._ext``: :data:`PROVIDED`, and an op raising :class:`CompiledOpRequired` for any
    other name."""

    kdlab_compiler_free = True

    def __init__(self, name: str = 'mmcv._ext'):
        super().__init__(name, __doc__)
        for fname, fn in PROVIDED.items():
            setattr(self, fname, fn)

    def __getattr__(self, name: str):
        if name.startswith('__'):
            raise AttributeError(name)
        op = _missing(name)
        setattr(self, name, op)
        return op
