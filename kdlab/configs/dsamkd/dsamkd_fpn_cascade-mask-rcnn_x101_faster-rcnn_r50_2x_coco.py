# DSAMKD (arXiv 2501.07101 v1; abstract only — kdlab's interpretation, docs/methods.md):
#   cascade-mask-rcnn_x101-64x4d_fpn_20e_coco -> faster-rcnn_r50_fpn_2x_coco.
# Abstract: 42.6 with a Cascade Mask R-CNN teacher (student and schedule not published; inferred).
# Scale-aware (max-pool pyramid 1, 2, 4) dual masked feature distillation on all five FPN outputs + masked
# logits distillation on the rpn_head classification maps; FpnHeadTeacherDistill runs the teacher's rpn_head.
_base_ = ['mmdet::faster_rcnn/faster-rcnn_r50_fpn_2x_coco.py']

custom_imports = dict(imports=['kdlab.models'], allow_failed_imports=False)

teacher_ckpt = None  # checkpoint of mmdet::cascade_rcnn/cascade-mask-rcnn_x101-64x4d_fpn_20e_coco.py (required)

model = dict(
    _scope_='mmrazor',
    _delete_=True,
    type='FpnHeadTeacherDistill',
    architecture=dict(cfg_path='mmdet::faster_rcnn/faster-rcnn_r50_fpn_2x_coco.py', pretrained=False),
    teacher=dict(cfg_path='mmdet::cascade_rcnn/cascade-mask-rcnn_x101-64x4d_fpn_20e_coco.py', pretrained=False),
    teacher_ckpt=teacher_ckpt,
    distiller=dict(
        type='ConfigurableDistiller',
        student_recorders=dict(fpn=dict(type='ModuleOutputs', source='neck'),
                               logits=dict(type='ModuleOutputs', source='rpn_head')),
        teacher_recorders=dict(fpn=dict(type='ModuleOutputs', source='neck'),
                               logits=dict(type='ModuleOutputs', source='rpn_head')),
        distill_losses=dict(
            loss_dsamkd_P2=dict(type='DSAMKDLoss', student_channels=256, teacher_channels=256, alpha=5e-07,
                                mask_ratio=0.45, temperature=0.5, scales=(1, 2, 4), logit_weight=1.0,
                                logit_mask_ratio=0.5),
            loss_dsamkd_P3=dict(type='DSAMKDLoss', student_channels=256, teacher_channels=256, alpha=5e-07,
                                mask_ratio=0.45, temperature=0.5, scales=(1, 2, 4), logit_weight=1.0,
                                logit_mask_ratio=0.5),
            loss_dsamkd_P4=dict(type='DSAMKDLoss', student_channels=256, teacher_channels=256, alpha=5e-07,
                                mask_ratio=0.45, temperature=0.5, scales=(1, 2, 4), logit_weight=1.0,
                                logit_mask_ratio=0.5),
            loss_dsamkd_P5=dict(type='DSAMKDLoss', student_channels=256, teacher_channels=256, alpha=5e-07,
                                mask_ratio=0.45, temperature=0.5, scales=(1, 2, 4), logit_weight=1.0,
                                logit_mask_ratio=0.5),
            loss_dsamkd_P6=dict(type='DSAMKDLoss', student_channels=256, teacher_channels=256, alpha=5e-07,
                                mask_ratio=0.45, temperature=0.5, scales=(1, 2, 4), logit_weight=1.0,
                                logit_mask_ratio=0.5),
        ),
        loss_forward_mappings=dict(
            loss_dsamkd_P2=dict(
                preds_S=dict(from_student=True, recorder='fpn', data_idx=0),
                preds_T=dict(from_student=False, recorder='fpn', data_idx=0),
                logits_S=dict(from_student=True, recorder='logits', data_idx=0,
                              connector_idx=0),
                logits_T=dict(from_student=False, recorder='logits', data_idx=0,
                              connector_idx=0)),
            loss_dsamkd_P3=dict(
                preds_S=dict(from_student=True, recorder='fpn', data_idx=1),
                preds_T=dict(from_student=False, recorder='fpn', data_idx=1),
                logits_S=dict(from_student=True, recorder='logits', data_idx=0,
                              connector_idx=1),
                logits_T=dict(from_student=False, recorder='logits', data_idx=0,
                              connector_idx=1)),
            loss_dsamkd_P4=dict(
                preds_S=dict(from_student=True, recorder='fpn', data_idx=2),
                preds_T=dict(from_student=False, recorder='fpn', data_idx=2),
                logits_S=dict(from_student=True, recorder='logits', data_idx=0,
                              connector_idx=2),
                logits_T=dict(from_student=False, recorder='logits', data_idx=0,
                              connector_idx=2)),
            loss_dsamkd_P5=dict(
                preds_S=dict(from_student=True, recorder='fpn', data_idx=3),
                preds_T=dict(from_student=False, recorder='fpn', data_idx=3),
                logits_S=dict(from_student=True, recorder='logits', data_idx=0,
                              connector_idx=3),
                logits_T=dict(from_student=False, recorder='logits', data_idx=0,
                              connector_idx=3)),
            loss_dsamkd_P6=dict(
                preds_S=dict(from_student=True, recorder='fpn', data_idx=4),
                preds_T=dict(from_student=False, recorder='fpn', data_idx=4),
                logits_S=dict(from_student=True, recorder='logits', data_idx=0,
                              connector_idx=4),
                logits_T=dict(from_student=False, recorder='logits', data_idx=0,
                              connector_idx=4)),
        )))

find_unused_parameters = True

val_cfg = dict(_delete_=True, type='mmrazor.SingleTeacherDistillValLoop')
