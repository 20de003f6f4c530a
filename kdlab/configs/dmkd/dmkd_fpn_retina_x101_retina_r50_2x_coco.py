# DMKD (Yang et al., ICASSP 2024; no public code, kdlab's reading):
#   retinanet_x101-64x4d_fpn_1x_coco -> retinanet_r50_fpn_2x_coco.
# Reported: 41.5 (DFMSD Table 6) from RetinaNet-R50 37.4.
# Unpublished hyper-parameters chosen by kdlab (docs/methods.md): MGD's alpha 2e-5 and ratio 0.65, FGD's
# attention temperature 0.5, top-ratio masks. Whether the authors inherit the teacher's neck/head is not known:
# kdlab does not.
_base_ = ['mmdet::retinanet/retinanet_r50_fpn_2x_coco.py']

custom_imports = dict(imports=['kdlab.models'], allow_failed_imports=False)

teacher_ckpt = None  # checkpoint of mmdet::retinanet/retinanet_x101-64x4d_fpn_1x_coco.py (required)

model = dict(
    _scope_='mmrazor',
    _delete_=True,
    type='FpnTeacherDistill',
    architecture=dict(cfg_path='mmdet::retinanet/retinanet_r50_fpn_2x_coco.py', pretrained=False),
    teacher=dict(cfg_path='mmdet::retinanet/retinanet_x101-64x4d_fpn_1x_coco.py', pretrained=False),
    teacher_ckpt=teacher_ckpt,
    distiller=dict(
        type='ConfigurableDistiller',
        student_recorders=dict(fpn=dict(type='ModuleOutputs', source='neck')),
        teacher_recorders=dict(fpn=dict(type='ModuleOutputs', source='neck')),
        distill_losses=dict(
            loss_dmkd_P3=dict(type='DMKDLoss', student_channels=256, teacher_channels=256, alpha=2e-05,
                              mask_ratio=0.65, temperature=0.5),
            loss_dmkd_P4=dict(type='DMKDLoss', student_channels=256, teacher_channels=256, alpha=2e-05,
                              mask_ratio=0.65, temperature=0.5),
            loss_dmkd_P5=dict(type='DMKDLoss', student_channels=256, teacher_channels=256, alpha=2e-05,
                              mask_ratio=0.65, temperature=0.5),
            loss_dmkd_P6=dict(type='DMKDLoss', student_channels=256, teacher_channels=256, alpha=2e-05,
                              mask_ratio=0.65, temperature=0.5),
            loss_dmkd_P7=dict(type='DMKDLoss', student_channels=256, teacher_channels=256, alpha=2e-05,
                              mask_ratio=0.65, temperature=0.5),
        ),
        loss_forward_mappings=dict(
            loss_dmkd_P3=dict(
                preds_S=dict(from_student=True, recorder='fpn', data_idx=0),
                preds_T=dict(from_student=False, recorder='fpn', data_idx=0)),
            loss_dmkd_P4=dict(
                preds_S=dict(from_student=True, recorder='fpn', data_idx=1),
                preds_T=dict(from_student=False, recorder='fpn', data_idx=1)),
            loss_dmkd_P5=dict(
                preds_S=dict(from_student=True, recorder='fpn', data_idx=2),
                preds_T=dict(from_student=False, recorder='fpn', data_idx=2)),
            loss_dmkd_P6=dict(
                preds_S=dict(from_student=True, recorder='fpn', data_idx=3),
                preds_T=dict(from_student=False, recorder='fpn', data_idx=3)),
            loss_dmkd_P7=dict(
                preds_S=dict(from_student=True, recorder='fpn', data_idx=4),
                preds_T=dict(from_student=False, recorder='fpn', data_idx=4)),
        )))

find_unused_parameters = True

val_cfg = dict(_delete_=True, type='mmrazor.SingleTeacherDistillValLoop')
