# DSAMKD (arXiv 2501.07101 v1; abstract only — kdlab's interpretation, docs/methods.md):
#   reppoints-moment_x101-dconv-c3-c5_fpn-gn_head-gn_2x_coco -> reppoints-moment_r50_fpn-gn_head-gn_2x_coco.
# Abstract: 42.9 with a RepPoints teacher (student and schedule not published; inferred).
# Scale-aware (max-pool pyramid 1, 2, 4) dual masked feature distillation on all five FPN outputs + masked
# logits distillation on the bbox_head classification maps; FpnHeadTeacherDistill runs the teacher's bbox_head.
_base_ = ['mmdet::reppoints/reppoints-moment_r50_fpn-gn_head-gn_2x_coco.py']

custom_imports = dict(imports=['kdlab.models'], allow_failed_imports=False)

# checkpoint of mmdet::reppoints/reppoints-moment_x101-dconv-c3-c5_fpn-gn_head-gn_2x_coco.py (required)
teacher_ckpt = None

model = dict(
    _scope_='mmrazor',
    _delete_=True,
    type='FpnHeadTeacherDistill',
    architecture=dict(cfg_path='mmdet::reppoints/reppoints-moment_r50_fpn-gn_head-gn_2x_coco.py', pretrained=False),
    teacher=dict(cfg_path='mmdet::reppoints/reppoints-moment_x101-dconv-c3-c5_fpn-gn_head-gn_2x_coco.py',
                 pretrained=False),
    teacher_ckpt=teacher_ckpt,
    distiller=dict(
        type='ConfigurableDistiller',
        student_recorders=dict(fpn=dict(type='ModuleOutputs', source='neck'),
                               logits=dict(type='ModuleOutputs', source='bbox_head')),
        teacher_recorders=dict(fpn=dict(type='ModuleOutputs', source='neck'),
                               logits=dict(type='ModuleOutputs', source='bbox_head')),
        distill_losses=dict(
            loss_dsamkd_P3=dict(type='DSAMKDLoss', student_channels=256, teacher_channels=256, alpha=2e-05,
                                mask_ratio=0.65, temperature=0.5, scales=(1, 2, 4), logit_weight=1.0,
                                logit_mask_ratio=0.5),
            loss_dsamkd_P4=dict(type='DSAMKDLoss', student_channels=256, teacher_channels=256, alpha=2e-05,
                                mask_ratio=0.65, temperature=0.5, scales=(1, 2, 4), logit_weight=1.0,
                                logit_mask_ratio=0.5),
            loss_dsamkd_P5=dict(type='DSAMKDLoss', student_channels=256, teacher_channels=256, alpha=2e-05,
                                mask_ratio=0.65, temperature=0.5, scales=(1, 2, 4), logit_weight=1.0,
                                logit_mask_ratio=0.5),
            loss_dsamkd_P6=dict(type='DSAMKDLoss', student_channels=256, teacher_channels=256, alpha=2e-05,
                                mask_ratio=0.65, temperature=0.5, scales=(1, 2, 4), logit_weight=1.0,
                                logit_mask_ratio=0.5),
            loss_dsamkd_P7=dict(type='DSAMKDLoss', student_channels=256, teacher_channels=256, alpha=2e-05,
                                mask_ratio=0.65, temperature=0.5, scales=(1, 2, 4), logit_weight=1.0,
                                logit_mask_ratio=0.5),
        ),
        loss_forward_mappings=dict(
            loss_dsamkd_P3=dict(
                preds_S=dict(from_student=True, recorder='fpn', data_idx=0),
                preds_T=dict(from_student=False, recorder='fpn', data_idx=0),
                logits_S=dict(from_student=True, recorder='logits', data_idx=0,
                              connector_idx=0),
                logits_T=dict(from_student=False, recorder='logits', data_idx=0,
                              connector_idx=0)),
            loss_dsamkd_P4=dict(
                preds_S=dict(from_student=True, recorder='fpn', data_idx=1),
                preds_T=dict(from_student=False, recorder='fpn', data_idx=1),
                logits_S=dict(from_student=True, recorder='logits', data_idx=0,
                              connector_idx=1),
                logits_T=dict(from_student=False, recorder='logits', data_idx=0,
                              connector_idx=1)),
            loss_dsamkd_P5=dict(
                preds_S=dict(from_student=True, recorder='fpn', data_idx=2),
                preds_T=dict(from_student=False, recorder='fpn', data_idx=2),
                logits_S=dict(from_student=True, recorder='logits', data_idx=0,
                              connector_idx=2),
                logits_T=dict(from_student=False, recorder='logits', data_idx=0,
                              connector_idx=2)),
            loss_dsamkd_P6=dict(
                preds_S=dict(from_student=True, recorder='fpn', data_idx=3),
                preds_T=dict(from_student=False, recorder='fpn', data_idx=3),
                logits_S=dict(from_student=True, recorder='logits', data_idx=0,
                              connector_idx=3),
                logits_T=dict(from_student=False, recorder='logits', data_idx=0,
                              connector_idx=3)),
            loss_dsamkd_P7=dict(
                preds_S=dict(from_student=True, recorder='fpn', data_idx=4),
                preds_T=dict(from_student=False, recorder='fpn', data_idx=4),
                logits_S=dict(from_student=True, recorder='logits', data_idx=0,
                              connector_idx=4),
                logits_T=dict(from_student=False, recorder='logits', data_idx=0,
                              connector_idx=4)),
        )))

find_unused_parameters = True

val_cfg = dict(_delete_=True, type='mmrazor.SingleTeacherDistillValLoop')
