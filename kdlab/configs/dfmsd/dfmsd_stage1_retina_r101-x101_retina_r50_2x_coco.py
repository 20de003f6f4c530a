# DFMSD (arXiv 2407.13147; no public code — kdlab's reading, docs/methods.md), SAL stage 1/2:
# retinanet_r101_fpn_2x_coco -> retinanet_r50_fpn_2x_coco.
# Table 6 / 11: RetinaNet-R101 -> RetinaNet-X101 teachers, RetinaNet-R50 37.4 -> 42.0 (DMKD 41.5).
# Losses: DMKD dual masked reconstruction (Eq. 7, alpha 5.0e-5), SFA on P1-P3 (Eq. 5),
# no masking enhancement in this stage (Table 8: last stage only).
_base_ = ['mmdet::retinanet/retinanet_r50_fpn_2x_coco.py']

custom_imports = dict(imports=['kdlab.models'], allow_failed_imports=False)

teacher_ckpt = None  # checkpoint of mmdet::retinanet/retinanet_r101_fpn_2x_coco.py (required)

model = dict(
    _scope_='mmrazor',
    _delete_=True,
    type='DFMSDDistill',
    architecture=dict(cfg_path='mmdet::retinanet/retinanet_r50_fpn_2x_coco.py', pretrained=False),
    teacher=dict(cfg_path='mmdet::retinanet/retinanet_r101_fpn_2x_coco.py', pretrained=False),
    teacher_ckpt=teacher_ckpt,
    distiller=dict(
        type='DFMSDDistiller',
        student_recorders=dict(fpn=dict(type='ModuleOutputs', source='neck')),
        teacher_recorders=dict(fpn=dict(type='ModuleOutputs', source='neck')),
        enhance=None,
        distill_losses=dict(
            loss_dfmsd_P3=dict(type='DFMSDLoss', student_channels=256, teacher_channels=256, alpha=5e-05,
                               beta=2.5e-05, mask_ratio=0.65, temperature=0.5, sfa_weight=1.0, sfa=True),
            loss_dfmsd_P4=dict(type='DFMSDLoss', student_channels=256, teacher_channels=256, alpha=5e-05,
                               beta=2.5e-05, mask_ratio=0.65, temperature=0.5, sfa_weight=1.0, sfa=True),
            loss_dfmsd_P5=dict(type='DFMSDLoss', student_channels=256, teacher_channels=256, alpha=5e-05,
                               beta=2.5e-05, mask_ratio=0.65, temperature=0.5, sfa_weight=1.0, sfa=True),
            loss_dfmsd_P6=dict(type='DFMSDLoss', student_channels=256, teacher_channels=256, alpha=5e-05,
                               beta=2.5e-05, mask_ratio=0.65, temperature=0.5, sfa_weight=1.0, sfa=False),
            loss_dfmsd_P7=dict(type='DFMSDLoss', student_channels=256, teacher_channels=256, alpha=5e-05,
                               beta=2.5e-05, mask_ratio=0.65, temperature=0.5, sfa_weight=1.0, sfa=False),
        ),
        loss_forward_mappings=dict(
            loss_dfmsd_P3=dict(
                preds_S=dict(from_student=True, recorder='fpn', data_idx=0),
                preds_T=dict(from_student=False, recorder='fpn', data_idx=0)),
            loss_dfmsd_P4=dict(
                preds_S=dict(from_student=True, recorder='fpn', data_idx=1),
                preds_T=dict(from_student=False, recorder='fpn', data_idx=1)),
            loss_dfmsd_P5=dict(
                preds_S=dict(from_student=True, recorder='fpn', data_idx=2),
                preds_T=dict(from_student=False, recorder='fpn', data_idx=2)),
            loss_dfmsd_P6=dict(
                preds_S=dict(from_student=True, recorder='fpn', data_idx=3),
                preds_T=dict(from_student=False, recorder='fpn', data_idx=3)),
            loss_dfmsd_P7=dict(
                preds_S=dict(from_student=True, recorder='fpn', data_idx=4),
                preds_T=dict(from_student=False, recorder='fpn', data_idx=4)),
        )))

find_unused_parameters = True

val_cfg = dict(_delete_=True, type='mmrazor.SingleTeacherDistillValLoop')
