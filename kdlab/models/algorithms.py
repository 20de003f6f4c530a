"""Algorithms: ``FpnHeadTeacherDistill`` (teacher also runs its dense heads, for logits distillation) and
``DFMSDDistill`` (DFMSD's masking enhancement: a second, augmented pass through teacher and student)."""
from __future__ import annotations

import copy
from typing import List, Optional, Sequence

import torch
from mmengine.runner import load_checkpoint
from mmrazor.models.algorithms import FpnTeacherDistill
from mmrazor.models.task_modules.recorder import ModuleOutputsRecorder
from mmrazor.models.utils import add_prefix
from mmrazor.registry import MODELS

from kdlab.core.enhance import masking_enhancement
from kdlab.core.masks import box_area_ratio
from kdlab.core.normalize import zscore_mse
from kdlab.errors import KdlabError
from kdlab.models._samples import box_tensor, gt_boxes, image_shapes

#: Teacher sub-modules the teacher always runs (``extract_feat``); any other recorded top-level module of
#: the teacher is taken to be a dense head that ``FpnHeadTeacherDistill`` must run.
_FEATURE_MODULES = ('backbone', 'neck', 'data_preprocessor')


def _get_module(model, path: str):
    mod = model
    for part in path.split('.'):
        mod = getattr(mod, part)
    return mod


@MODELS.register_module()
class FpnHeadTeacherDistill(FpnTeacherDistill):
    """``FpnTeacherDistill`` whose teacher also runs the *forward* of its dense head(s) (no loss, no
    post-processing), so that ``ModuleOutputs`` recorders on e.g. ``bbox_head`` / ``rpn_head`` see the
    teacher's logits. Used by DSAMKD's masked logits distillation.

    Args:
        teacher_heads (Sequence[str], optional): teacher modules called on the neck features; None = every
            top-level teacher module a teacher recorder records other than backbone/neck. Defaults to None.
        *args, **kwargs: as ``FpnTeacherDistill``.
    """

    def __init__(self, *args, teacher_heads: Optional[Sequence[str]] = None, **kwargs):
        super().__init__(*args, **kwargs)
        if teacher_heads is None:
            heads = []
            for rec in self.distiller.teacher_recorders.recorders.values():
                if isinstance(rec, ModuleOutputsRecorder):
                    top = rec.source.split('.')[0]
                    if top and top not in _FEATURE_MODULES and top not in heads:
                        heads.append(top)
            teacher_heads = heads
        for name in teacher_heads:
            try:
                _get_module(self.teacher, name)
            except AttributeError:
                raise KdlabError(f'the teacher ({type(self.teacher).__name__}) has no module {name!r}',
                                 'record a head the teacher has (bbox_head for one-stage, rpn_head for two-stage)')
        self.teacher_heads = tuple(teacher_heads)

    def teacher_forward(self, batch_inputs: torch.Tensor) -> None:
        feats = self.teacher.extract_feat(batch_inputs)
        for name in self.teacher_heads:
            _get_module(self.teacher, name)(feats)

    def loss(self, batch_inputs: torch.Tensor, data_samples: Optional[List] = None) -> dict:
        losses = dict()
        self.distiller.set_deliveries_override(False)
        with self.distiller.teacher_recorders, self.distiller.deliveries:
            if self.teacher_trainable:
                self.teacher_forward(batch_inputs)
            else:
                with torch.no_grad():
                    self.teacher_forward(batch_inputs)
        self.distiller.set_deliveries_override(True)
        with self.distiller.student_recorders, self.distiller.deliveries:
            student_losses = self.student(batch_inputs, data_samples, mode='loss')
        losses.update(add_prefix(student_losses, 'student'))
        if not self.distillation_stopped:
            losses.update(add_prefix(self.distiller.compute_distill_losses(), 'distill'))
        return losses


class _inference_mode:
    """Every module of ``model`` in eval mode inside the block, each put back as it was after (a frozen teacher
    is a training-mode module whose BatchNorms mmrazor keeps in eval mode: ``model.train()`` would not restore
    that). A head's forward may depend on it: RepPoints returns its points in training mode and its boxes,
    which ``predict`` reads, in eval mode."""

    def __init__(self, model: torch.nn.Module):
        self.modes = [(m, m.training) for m in model.modules()]

    def __enter__(self):
        for m, _ in self.modes:
            m.training = False

    def __exit__(self, *exc):
        for m, mode in self.modes:
            m.training = mode


def predict_boxes(detector, batch_inputs: torch.Tensor, data_samples: Sequence) -> List:
    """The detector's predictions (``InstanceData`` with ``bboxes``, ``scores``) in input-image pixels, made as at
    inference (every module in eval mode for the call, :class:`_inference_mode`).

    Heads are called directly (not ``detector.predict``) so that the batch's data samples are not modified.
    """
    with _inference_mode(detector):
        return _predict_boxes(detector, batch_inputs, data_samples)


def _predict_boxes(detector, batch_inputs: torch.Tensor, data_samples: Sequence) -> List:
    feats = detector.extract_feat(batch_inputs)
    if getattr(detector, 'with_rpn', False) and hasattr(detector, 'roi_head'):
        proposals = detector.rpn_head.predict(feats, data_samples, rescale=False)
        # boxes only: a mask head's test-time merge cannot undo a training flip, and ME needs no masks
        metas = [s.metainfo for s in data_samples]
        return detector.roi_head.predict_bbox(feats, metas, proposals, detector.roi_head.test_cfg, rescale=False)
    if hasattr(detector, 'bbox_head'):
        return detector.bbox_head.predict(feats, data_samples, rescale=False)
    samples = detector.predict(batch_inputs, copy.deepcopy(list(data_samples)), rescale=False)
    return [s.pred_instances for s in samples]


@MODELS.register_module()
class DFMSDDistill(FpnTeacherDistill):
    """DFMSD's stage algorithm: ``FpnTeacherDistill`` plus masking enhancement (ME, section 3.4, Eq. 4/8).

    When the distiller (a ``DFMSDDistiller``) carries ``enhance`` settings, every training step:

    1. candidate boxes per image: predictions of ``box_teacher`` (the previous stage's "weaker" teacher, as
       in the paper), of the stage's teacher, or the GT boxes (``enhance['boxes']``), kept above
       ``box_score_thr``;
    2. Eq. (4): summed box area / image area below ``threshold`` -> Gaussian noise (probability
       ``noise_prob``, ``noise_sigma`` in pixels), otherwise a random proportional crop
       (:func:`kdlab.core.enhance.masking_enhancement`);
    3. optional adversarial example (``adversarial``; kdlab's reading of "Following [63, 64], adversarial
       examples are introduced"): one FGSM step of ``adv_eps`` pixels on the augmented image that *increases*
       the teacher-student feature discrepancy (z-scored MSE over the paired FPN outputs), mining the
       knowledge on which they disagree;
    4. the teacher runs backbone+neck on the original and the augmented batch, the student its full loss on
       the original and ``extract_feat`` on the augmented one, all inside the recorders: record 0 of a neck
       recorder is the original pass, record 1 the augmented pass (map ``record_idx=1`` to a loss's
       ``preds_S_enh`` / ``preds_T_enh``).

    Without ``enhance`` it is exactly ``FpnTeacherDistill``. The decisions of the last step are kept in
    ``last_enhancement`` (ratios, what was done to each image) for inspection.

    Args:
        box_teacher (dict, optional): config of the detector whose predictions give the candidate boxes
            (``enhance['boxes'] == 'box_teacher'``). Frozen, eval mode. Defaults to None.
        box_teacher_ckpt (str, optional): its checkpoint. Defaults to None.
        *args, **kwargs: as ``FpnTeacherDistill``.
    """

    def __init__(self, *args, box_teacher: Optional[dict] = None, box_teacher_ckpt: Optional[str] = None,
                 **kwargs):
        super().__init__(*args, **kwargs)
        self.enhance = getattr(self.distiller, 'enhance', None)
        self.box_teacher = None
        if box_teacher is not None:
            model = MODELS.build(box_teacher) if isinstance(box_teacher, dict) else box_teacher
            if box_teacher_ckpt:
                load_checkpoint(model, box_teacher_ckpt, map_location='cpu')
                model._is_init = True
            for p in model.parameters():
                p.requires_grad = False
            self.box_teacher = model
        if self.enhance and self.enhance['boxes'] == 'box_teacher' and self.box_teacher is None:
            raise KdlabError("DFMSD masking enhancement takes its candidate boxes from 'box_teacher' but no "
                             'box_teacher is configured',
                             "set model.box_teacher (the previous stage's teacher), or enhance['boxes'] to "
                             "'teacher' or 'gt'")
        self.last_enhancement: dict = {}

    def train(self, mode: bool = True):
        super().train(mode)
        if self.box_teacher is not None:
            self.box_teacher.eval()
        return self

    # ------------------------------------------------------------------------------------ enhancement
    def _pixel_to_input(self, value: float, like: torch.Tensor) -> torch.Tensor:
        std = getattr(self.data_preprocessor, 'std', None)
        if std is None or not getattr(self.data_preprocessor, '_enable_normalize', True):
            return torch.full((like.shape[1],), float(value), dtype=like.dtype, device=like.device)
        return (float(value) / std.reshape(-1)).to(like)

    def candidate_boxes(self, batch_inputs: torch.Tensor, data_samples: Sequence) -> List[torch.Tensor]:
        """Per image ``(K_i, 4)`` boxes in input pixels, from the configured source."""
        source = self.enhance['boxes']
        if source == 'gt':
            return gt_boxes(data_samples)
        detector = self.box_teacher if source == 'box_teacher' else self.teacher
        with torch.no_grad():
            preds = predict_boxes(detector, batch_inputs, data_samples)
        thr = self.enhance['box_score_thr']
        return [box_tensor(p.bboxes)[p.scores >= thr] for p in preds]

    def adversarial(self, x: torch.Tensor) -> torch.Tensor:
        """One FGSM step of ``adv_eps`` pixels that increases the teacher-student feature discrepancy."""
        eps = self._pixel_to_input(self.enhance['adv_eps'], x)[None, :, None, None]
        x = x.detach().requires_grad_(True)
        with torch.enable_grad():
            fs, ft = self.student.extract_feat(x), self.teacher.extract_feat(x)
            terms = [zscore_mse(s, t) for s, t in zip(fs, ft) if s.shape[1] == t.shape[1]]
            if not terms:
                return x.detach()
            grad, = torch.autograd.grad(sum(terms), x)
        return (x + eps * grad.sign()).detach()

    def enhanced_inputs(self, batch_inputs: torch.Tensor, data_samples: Sequence) -> torch.Tensor:
        """The ME-augmented batch (same shape), per Eq. (4) (+ the adversarial step when on)."""
        enh = self.enhance
        boxes = self.candidate_boxes(batch_inputs, data_samples)
        shapes = image_shapes(data_samples, 'img_shape')
        ratios = [box_area_ratio(b, s) for b, s in zip(boxes, shapes)]
        aug, done = masking_enhancement(
            batch_inputs.detach(), ratios, valid_hws=shapes, threshold=enh['threshold'],
            noise_sigma=self._pixel_to_input(enh['noise_sigma'], batch_inputs), noise_prob=enh['noise_prob'],
            crop_scale=tuple(enh['crop_scale']))
        if enh['adversarial']:
            aug = self.adversarial(aug)
        self.last_enhancement = dict(ratios=ratios, decisions=done, boxes=[len(b) for b in boxes])
        return aug.detach()

    def loss(self, batch_inputs: torch.Tensor, data_samples: Optional[List] = None) -> dict:
        if not self.enhance:
            return super().loss(batch_inputs, data_samples)
        aug = self.enhanced_inputs(batch_inputs, data_samples)
        losses = dict()
        self.distiller.set_deliveries_override(False)
        with self.distiller.teacher_recorders, self.distiller.deliveries:
            with torch.set_grad_enabled(self.teacher_trainable):
                self.teacher.extract_feat(batch_inputs)      # record 0: original image
                self.teacher.extract_feat(aug)               # record 1: enhanced image
        self.distiller.set_deliveries_override(True)
        with self.distiller.student_recorders, self.distiller.deliveries:
            student_losses = self.student(batch_inputs, data_samples, mode='loss')   # record 0
            self.student.extract_feat(aug)                                             # record 1
        losses.update(add_prefix(student_losses, 'student'))
        if not self.distillation_stopped:
            losses.update(add_prefix(self.distiller.compute_distill_losses(), 'distill'))
        return losses
