"""CrossKD — Wang et al., "CrossKD: Cross-Head Knowledge Distillation for Dense Object Detection", CVPR 2024
(arXiv 2306.11369; code github.com/jbwang1997/CrossKD). Models: :class:`kdlab.models.crosskd.CrossKDDistill`,
:class:`kdlab.models.losses.crosskd.CrossKDLoss`.

The student's head features (after conv ``reused_head_idx``; after its activation as the released code, or
before it as the paper: ``hold``), re-standardised to the
teacher's statistics, run through the rest of the frozen teacher head; the cross-head predictions mimic the
teacher's (QFL, GIoU / -ln IoU, KL for GFL). The student's own head gets only the GT losses. Teacher and
student must have the same dense head type (RetinaNet, GFL or FCOS). Every ``None`` parameter takes the value
of the released config for the student's detector (:data:`kdlab.methods.official.OFFICIAL`).
"""
from __future__ import annotations

from kdlab.errors import KdlabError
from kdlab.methods import register_method
from kdlab.methods._common import add_custom_imports

HEADS = ('RetinaHead', 'GFLHead', 'FCOSHead')


def configure_crosskd(cfg, **params) -> None:
    """Check the pair (same dense head type) and that every parameter has a value (one still ``None`` has no
    released value for this student: kdlab.methods.official); the builder put them into the distiller."""
    head = cfg.model.architecture.get('bbox_head', {}).get('type')
    if head not in HEADS:
        raise KdlabError(f'CrossKD needs a dense one-stage student with one of {list(HEADS)}, got head '
                         f'{head!r} ({cfg.kdlab_method["student"]})', 'distil a RetinaNet, GFL or FCOS student')
    t_head = cfg.model.teacher.get('bbox_head', {}).get('type')
    if t_head != head:
        raise KdlabError(f'CrossKD runs the student\'s head features through the teacher\'s head: both must be '
                         f'{head}, the teacher ({cfg.kdlab_method["teacher"]}) has {t_head!r}',
                         'pair detectors of the same family')
    missing = sorted(k for k, v in params.items() if v is None)
    if missing:
        raise KdlabError(f'CrossKD has no released value of {", ".join(missing)} for the student '
                         f'{cfg.kdlab_method["student"]}', 'pass them to distill_config (a row: switches)')
    add_custom_imports(cfg)


@register_method('crosskd', algorithm='CrossKDDistill', configure=configure_crosskd, compares='predictions',
                 defaults=dict(reused_head_idx=None, cls_weight=None, beta=1.0, reg_loss=None, reg_weight=None,
                               kl_weight=None, kl_T=1.0, hold='post_activation'))
def crosskd(pairs, *, reused_head_idx, cls_weight, beta, reg_loss, reg_weight, kl_weight, kl_T, hold):
    """CrossKD on the dense head (all levels; the level pairs are not used): a ``CrossKDDistiller``."""
    return dict(type='CrossKDDistiller', reused_head_idx=reused_head_idx, hold=hold,
                loss_crosskd=dict(type='CrossKDLoss', cls_weight=cls_weight, beta=beta, reg_loss=reg_loss,
                                  reg_weight=reg_weight, kl_weight=kl_weight, kl_T=kl_T))
