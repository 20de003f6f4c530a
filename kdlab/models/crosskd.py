"""CrossKD as an mmrazor algorithm — Wang et al., "CrossKD: Cross-Head Knowledge Distillation for Dense Object
Detection", CVPR 2024 (https://arxiv.org/abs/2306.11369, code: https://github.com/jbwang1997/CrossKD).

For every FPN level, with ``k = reused_head_idx`` and ``f^s_k`` / ``f^t_k`` the outputs of conv ``k`` of a
head tower (``k = 0``: the FPN feature), in both the classification and the regression tower:

    f^x_k = (f^s_k - mu^s) / (sigma^s + 1e-6) * sigma^t + mu^t      per channel over (N, H, W), unbiased std
    p^x   = teacher_head_{k+1..}( act(f^x_k) )                        (act only if k > 0)

i.e. the student's feature is re-standardised to the teacher's statistics and finishes its way through the
frozen teacher head. Which output of conv ``k`` is held (``hold``): the paper's is the conv's output before
its activation (``'pre_activation'``); the released code keeps a reference to that tensor and then applies
mmcv's in-place ReLU to it, so what it re-standardises is the output after the activation
(``'post_activation'``, kdlab's default: the reported numbers were made with it); the cross-head predictions ``p^x`` mimic the teacher's ``p^t`` (:class:`CrossKDLoss`).
Gradients reach the student through the teacher's layers; the teacher's parameters get none. The student's own
predictions receive only the detector's ground-truth losses, unchanged (``student.loss_*``).

Supported heads: RetinaHead, GFLHead, FCOSHead (the dense heads of CrossKD's released configs used by
kdlab's tables); teacher and student heads must be of the same type with the same tower widths.
"""
from __future__ import annotations

import contextlib
from typing import Dict, List, Optional, Tuple

import torch
from torch import Tensor, nn

from mmrazor.models.algorithms import SingleTeacherDistill
from mmrazor.models.distillers.base_distiller import BaseDistiller
from mmrazor.models.utils import add_prefix
from mmrazor.registry import MODELS

from kdlab.core.normalize import channel_zscore
from kdlab.errors import KdlabError
from kdlab.models.losses import crosskd as _crosskd_loss  # noqa: F401  (registers CrossKDLoss)

SUPPORTED_HEADS = ('RetinaHead', 'GFLHead', 'FCOSHead')


# ------------------------------------------------------------------------------------------ distiller
@MODELS.register_module()
class CrossKDDistiller(BaseDistiller):
    """Holds CrossKD's settings and its :class:`~kdlab.models.losses.crosskd.CrossKDLoss`.

    Args:
        reused_head_idx (int): the student's classification and regression towers are cut after conv
            ``reused_head_idx`` (1-based; 0 = the FPN feature itself) and continue in the teacher's towers
            from conv ``reused_head_idx + 1``. Released configs: 3 (RetinaNet, GFL), 2 (FCOS). Defaults to 3.
        hold (str): the output of that conv held and re-standardised: ``'post_activation'`` (the released
            code, through mmcv's in-place ReLU; default) or ``'pre_activation'`` (the paper's text).
        loss_crosskd (dict): config of ``CrossKDLoss``.
    """

    HOLDS = ('post_activation', 'pre_activation')

    def __init__(self, reused_head_idx: int = 3, loss_crosskd: Optional[dict] = None,
                 hold: str = 'post_activation', init_cfg: Optional[dict] = None) -> None:
        super().__init__(init_cfg)
        if reused_head_idx < 0:
            raise KdlabError(f'CrossKD: reused_head_idx must be >= 0, got {reused_head_idx}')
        if hold not in self.HOLDS:
            raise KdlabError(f'CrossKD: hold={hold!r}', f'use one of {self.HOLDS}')
        self.reused_head_idx = reused_head_idx
        self.hold = hold
        self.loss_crosskd = MODELS.build(loss_crosskd or dict(type='CrossKDLoss'))

    def prepare_from_student(self, model) -> None:  # no recorders: the algorithm runs the heads itself
        pass

    def prepare_from_teacher(self, model) -> None:
        pass

    def compute_distill_losses(self, **kd_inputs) -> Dict[str, Tensor]:
        """``CrossKDLoss(**kd_inputs)``: ``loss_cls_kd``, ``loss_reg_kd`` (and ``loss_kl_kd`` for GFL)."""
        return self.loss_crosskd(**kd_inputs)


# ------------------------------------------------------------------------------------- tower helpers
def run_tower(convs: nn.ModuleList, x: Tensor, hold_idx: int,
              post_activation: bool = True) -> Tuple[Tensor, Tensor]:
    """Run a head tower; return its output and the output of conv ``hold_idx``, after its activation or
    before it (``post_activation=False``)."""
    hold = x
    for i, conv in enumerate(convs):
        x = conv(x, activate=False)
        if i + 1 == hold_idx and not post_activation:
            hold = x
        if conv.with_activation:
            # an in-place activation would overwrite the held tensor (mmrazor turns them off; be safe anyway)
            x = conv.activate(x.clone() if x is hold and getattr(conv.activate, 'inplace', False) else x)
        if i + 1 == hold_idx and post_activation:
            hold = x
    return x, hold


def align_to_teacher(feat_S: Tensor, feat_T: Tensor, eps: float = 1e-6) -> Tensor:
    """``z(f^s) * sigma^t + mu^t`` per channel over ``(N, H, W)`` (unbiased std): ``(N, C, H, W)``."""
    c = feat_T.shape[1]
    flat_T = feat_T.detach().transpose(0, 1).reshape(c, -1)
    mean_T = flat_T.mean(dim=1).view(1, c, 1, 1)
    std_T = flat_T.std(dim=1).view(1, c, 1, 1)
    return channel_zscore(feat_S, eps) * std_T + mean_T


def finish_tower(convs: nn.ModuleList, x: Tensor, hold_idx: int) -> Tensor:
    """Continue a tower from a feature held after conv ``hold_idx`` (activation, then convs ``hold_idx+1..``)."""
    if hold_idx > 0 and convs[hold_idx - 1].with_activation:
        x = convs[hold_idx - 1].activate(x)
    for conv in list(convs)[hold_idx:]:
        x = conv(x)
    return x


# ------------------------------------------------------------------------------------ head adapters
class HeadAdapter:
    """What differs between heads: their prediction layers and how their KD inputs are flattened."""

    def __init__(self, head: nn.Module) -> None:
        self.head = head

    def predict(self, head: nn.Module, cls_feat: Tensor, reg_feat: Tensor, level: int) -> Tuple[Tensor, ...]:
        raise NotImplementedError

    def kd_inputs(self, preds_T, preds_X, targets, featmap_sizes, num_imgs) -> dict:
        raise NotImplementedError


def _flat(x: Tensor, width: int) -> Tensor:
    """``(N, A*width, H, W) -> (N*H*W*A, width)``."""
    return x.permute(0, 2, 3, 1).reshape(-1, width)


class RetinaAdapter(HeadAdapter):
    """RetinaNet: QFL on the class logits (label weights of the assignment), GIoU on delta-decoded anchors."""

    def predict(self, head, cls_feat, reg_feat, level):
        return head.retina_cls(cls_feat), head.retina_reg(reg_feat)

    def kd_inputs(self, preds_T, preds_X, targets, featmap_sizes, num_imgs):
        head = self.head
        label_weights, avg_factor = targets[1], targets[4]
        anchors = head.prior_generator.grid_priors(featmap_sizes, device=preds_T[0][0].device)
        c, enc = head.cls_out_channels, head.bbox_coder.encode_size
        cls_t, cls_x, boxes_t, boxes_x, w = [], [], [], [], []
        for lvl, a in enumerate(anchors):
            a = a.repeat(num_imgs, 1)
            cls_t.append(_flat(preds_T[0][lvl], c))
            cls_x.append(_flat(preds_X[0][lvl], c))
            boxes_t.append(head.bbox_coder.decode(a, _flat(preds_T[1][lvl], enc)))
            boxes_x.append(head.bbox_coder.decode(a, _flat(preds_X[1][lvl], enc)))
            w.append(label_weights[lvl].reshape(-1))
        return dict(cls_x=torch.cat(cls_x), cls_t=torch.cat(cls_t), boxes_x=torch.cat(boxes_x),
                    boxes_t=torch.cat(boxes_t), cls_weights=torch.cat(w), avg_factor=float(avg_factor))


class GFLAdapter(HeadAdapter):
    """GFL: QFL on the joint class-quality logits, KL on the side distributions and GIoU on the integral boxes
    (in stride units), regression terms normalised by the sum of the teacher-confidence weights."""

    def predict(self, head, cls_feat, reg_feat, level):
        return head.gfl_cls(cls_feat), head.scales[level](head.gfl_reg(reg_feat)).float()

    def kd_inputs(self, preds_T, preds_X, targets, featmap_sizes, num_imgs):
        from mmdet.utils import reduce_mean
        head = self.head
        anchor_list, label_weights, avg_factor = targets[0], targets[2], targets[5]
        device = preds_T[0][0].device
        avg_factor = reduce_mean(torch.tensor(float(avg_factor), device=device)).item()
        c, bins = head.cls_out_channels, head.reg_max + 1
        out = {k: [] for k in ('cls_t', 'cls_x', 'boxes_t', 'boxes_x', 'dist_t', 'dist_x', 'w')}
        for lvl, stride in enumerate(head.prior_generator.strides):
            centres = head.anchor_center(anchor_list[lvl].reshape(-1, 4)) / stride[0]
            for name, preds in (('t', preds_T), ('x', preds_X)):
                out[f'cls_{name}'].append(_flat(preds[0][lvl], c))
                dist = _flat(preds[1][lvl], 4 * bins)
                out[f'dist_{name}'].append(dist.view(-1, 4, bins))
                out[f'boxes_{name}'].append(head.bbox_coder.decode(centres, head.integral(dist)))
            out['w'].append(label_weights[lvl].reshape(-1))
        cat = {k: torch.cat(v) for k, v in out.items()}
        return dict(cls_x=cat['cls_x'], cls_t=cat['cls_t'], boxes_x=cat['boxes_x'], boxes_t=cat['boxes_t'],
                    dist_x=cat['dist_x'], dist_t=cat['dist_t'], cls_weights=cat['w'], avg_factor=avg_factor,
                    reg_avg_factor='weights')


class FCOSAdapter(HeadAdapter):
    """FCOS: QFL on every point, -ln IoU on point-decoded boxes; both normalised by the centerness-target sum
    of the positives (the detector's own IoU-loss normaliser). Centerness is not distilled (released code)."""

    def predict(self, head, cls_feat, reg_feat, level):
        centerness = head.conv_centerness(reg_feat if head.centerness_on_reg else cls_feat)
        bbox = head.scales[level](head.conv_reg(reg_feat)).float()
        if head.norm_on_bbox:
            bbox = bbox.clamp(min=0)
            if not head.training:
                bbox = bbox * head.strides[level]
        else:
            bbox = bbox.exp()
        return head.conv_cls(cls_feat), bbox, centerness

    def kd_inputs(self, preds_T, preds_X, targets, featmap_sizes, num_imgs):
        from mmdet.utils import reduce_mean
        head = self.head
        labels, bbox_targets = torch.cat(targets[0]), torch.cat(targets[1])
        pos = (labels >= 0) & (labels < head.num_classes)
        denorm = head.centerness_target(bbox_targets[pos]).sum().detach() if pos.any() else labels.new_zeros(())
        denorm = max(float(reduce_mean(denorm.float())), 1e-6)
        device = preds_T[0][0].device
        points = head.prior_generator.grid_priors(featmap_sizes, dtype=preds_T[1][0].dtype, device=device)
        c = head.cls_out_channels
        cls_t, cls_x, boxes_t, boxes_x = [], [], [], []
        for lvl, p in enumerate(points):
            p = p.repeat(num_imgs, 1)
            cls_t.append(_flat(preds_T[0][lvl], c))
            cls_x.append(_flat(preds_X[0][lvl], c))
            boxes_t.append(head.bbox_coder.decode(p, _flat(preds_T[1][lvl], 4)))
            boxes_x.append(head.bbox_coder.decode(p, _flat(preds_X[1][lvl], 4)))
        return dict(cls_x=torch.cat(cls_x), cls_t=torch.cat(cls_t), boxes_x=torch.cat(boxes_x),
                    boxes_t=torch.cat(boxes_t), avg_factor=denorm)


def head_adapter(student_head: nn.Module, teacher_head: nn.Module) -> HeadAdapter:
    """The adapter of the student's head type; checks the teacher's head can continue the student's towers."""
    from mmdet.models.dense_heads import FCOSHead, GFLHead, RetinaHead
    s_type, t_type = type(student_head).__name__, type(teacher_head).__name__
    if type(student_head) is not type(teacher_head):
        raise KdlabError(f'CrossKD runs the student\'s head features through the teacher\'s head: both must be '
                         f'the same head type, got student {s_type} and teacher {t_type}',
                         'pair detectors of the same family (e.g. gfl_r101 -> gfl_r50)')
    for name in ('cls_convs', 'reg_convs'):
        s, t = getattr(student_head, name, None), getattr(teacher_head, name, None)
        if s is None or len(s) != len(t):
            raise KdlabError(f'CrossKD: the {name} towers of student and teacher heads differ in depth')
    if student_head.feat_channels != teacher_head.feat_channels:
        raise KdlabError(f'CrossKD: head widths differ (student {student_head.feat_channels}, teacher '
                         f'{teacher_head.feat_channels})', 'use heads of the same width')
    for cls, adapter in ((GFLHead, GFLAdapter), (FCOSHead, FCOSAdapter), (RetinaHead, RetinaAdapter)):
        if type(student_head) is cls:
            return adapter(student_head)
    raise KdlabError(f'CrossKD: no cross-head adapter for {s_type}', f'supported heads: {SUPPORTED_HEADS}')


@contextlib.contextmanager
def capture_returns(obj, method: str):
    """Record what ``obj.method`` returns while the block runs (the head's target assignment)."""
    record: List = []
    original = getattr(obj, method)

    def spy(*args, **kwargs):
        out = original(*args, **kwargs)
        record.append(out)
        return out

    obj.__dict__[method] = spy
    try:
        yield record
    finally:
        obj.__dict__.pop(method, None)


@MODELS.register_module()
class CrossKDDistill(SingleTeacherDistill):
    """Cross-head KD; ``distiller`` must be a ``CrossKDDistiller`` config. Other arguments: mmrazor's
    ``SingleTeacherDistill`` (``architecture``, ``teacher``, ``teacher_ckpt``, ...)."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        s_head, t_head = getattr(self.student, 'bbox_head', None), getattr(self.teacher, 'bbox_head', None)
        if s_head is None or t_head is None:
            raise KdlabError('CrossKD needs dense one-stage detectors (a bbox_head) as student and teacher',
                             f'supported heads: {SUPPORTED_HEADS}')
        self.adapter = head_adapter(s_head, t_head)
        k = self.distiller.reused_head_idx
        if k > len(s_head.cls_convs):
            raise KdlabError(f'CrossKD: reused_head_idx={k} but the head has {len(s_head.cls_convs)} convs',
                             f'choose 0..{len(s_head.cls_convs)}')

    def head_forward(self, head: nn.Module, feats) -> Tuple[List[Tuple[Tensor, ...]], List[Tuple[Tensor, Tensor]]]:
        """Per level: the head's predictions, and the (cls, reg) tower features held at ``reused_head_idx``."""
        k, post = self.distiller.reused_head_idx, self.distiller.hold == 'post_activation'
        preds, holds = [], []
        for level, x in enumerate(feats):
            cls_feat, cls_hold = run_tower(head.cls_convs, x, k, post)
            reg_feat, reg_hold = run_tower(head.reg_convs, x, k, post)
            preds.append(self.adapter.predict(head, cls_feat, reg_feat, level))
            holds.append((cls_hold, reg_hold))
        return preds, holds

    def cross_head(self, holds_S, holds_T) -> List[Tuple[Tensor, ...]]:
        """The cross-head predictions ``p^x`` of every level (gradient flows to the student's features)."""
        head, k = self.teacher.bbox_head, self.distiller.reused_head_idx
        preds = []
        for level, ((cls_s, reg_s), (cls_t, reg_t)) in enumerate(zip(holds_S, holds_T)):
            cls_feat = finish_tower(head.cls_convs, align_to_teacher(cls_s, cls_t), k)
            reg_feat = finish_tower(head.reg_convs, align_to_teacher(reg_s, reg_t), k)
            preds.append(self.adapter.predict(head, cls_feat, reg_feat, level))
        return preds

    def loss(self, batch_inputs: Tensor, data_samples: Optional[List] = None) -> Dict[str, Tensor]:
        from mmdet.models.utils import unpack_gt_instances
        with torch.no_grad():
            preds_T, holds_T = self.head_forward(self.teacher.bbox_head, self.teacher.extract_feat(batch_inputs))
        feats_S = self.student.extract_feat(batch_inputs)
        preds_S, holds_S = self.head_forward(self.student.bbox_head, feats_S)
        gt, gt_ignore, metas = unpack_gt_instances(data_samples)
        per_output = tuple(list(o) for o in zip(*preds_S))          # ([cls per level], [bbox per level], ...)
        with capture_returns(self.student.bbox_head, 'get_targets') as targets:
            student_losses = self.student.bbox_head.loss_by_feat(*per_output, gt, metas, gt_ignore)
        losses = add_prefix(student_losses, 'student')
        if not self.distillation_stopped:
            preds_X = self.cross_head(holds_S, holds_T)
            sizes = [p[0].shape[-2:] for p in preds_S]
            kd = self.adapter.kd_inputs(tuple(zip(*preds_T)), tuple(zip(*preds_X)), targets[0], sizes,
                                        batch_inputs.shape[0])
            losses.update(add_prefix(self.distiller.compute_distill_losses(**kd), 'distill'))
        return losses
