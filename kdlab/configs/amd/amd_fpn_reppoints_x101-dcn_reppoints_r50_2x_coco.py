# AMD (Yang et al., IJCNN 2023; no public code, kdlab's reading):
#   reppoints-moment_x101-dconv-c3-c5_fpn-gn_head-gn_2x_coco -> reppoints-moment_r50_fpn-gn_head-gn_2x_coco.
# Reported: 42.7 (DFMSD Table 6) from RepPoints-R50 38.6.
# Unpublished hyper-parameters chosen by kdlab (docs/methods.md): MGD's alpha 2e-5 and ratio 0.65, FGD's
# attention temperature 0.5, top-ratio masks. Whether the authors inherit the teacher's neck/head is not known:
# kdlab does not.
_base_ = ['mmdet::reppoints/reppoints-moment_r50_fpn-gn_head-gn_2x_coco.py']

custom_imports = dict(imports=['kdlab.models'], allow_failed_imports=False)

# checkpoint of mmdet::reppoints/reppoints-moment_x101-dconv-c3-c5_fpn-gn_head-gn_2x_coco.py (required)
teacher_ckpt = None

model = dict(
    _scope_='mmrazor',
    _delete_=True,
    type='FpnTeacherDistill',
    architecture=dict(cfg_path='mmdet::reppoints/reppoints-moment_r50_fpn-gn_head-gn_2x_coco.py', pretrained=False),
    teacher=dict(cfg_path='mmdet::reppoints/reppoints-moment_x101-dconv-c3-c5_fpn-gn_head-gn_2x_coco.py',
                 pretrained=False),
    teacher_ckpt=teacher_ckpt,
    distiller=dict(
        type='ConfigurableDistiller',
        student_recorders=dict(fpn=dict(type='ModuleOutputs', source='neck')),
        teacher_recorders=dict(fpn=dict(type='ModuleOutputs', source='neck')),
        distill_losses=dict(
            loss_amd_P3=dict(type='AMDLoss', student_channels=256, teacher_channels=256, alpha=2e-05,
                             mask_ratio=0.65, temperature=0.5),
            loss_amd_P4=dict(type='AMDLoss', student_channels=256, teacher_channels=256, alpha=2e-05,
                             mask_ratio=0.65, temperature=0.5),
            loss_amd_P5=dict(type='AMDLoss', student_channels=256, teacher_channels=256, alpha=2e-05,
                             mask_ratio=0.65, temperature=0.5),
            loss_amd_P6=dict(type='AMDLoss', student_channels=256, teacher_channels=256, alpha=2e-05,
                             mask_ratio=0.65, temperature=0.5),
            loss_amd_P7=dict(type='AMDLoss', student_channels=256, teacher_channels=256, alpha=2e-05,
                             mask_ratio=0.65, temperature=0.5),
        ),
        loss_forward_mappings=dict(
            loss_amd_P3=dict(
                preds_S=dict(from_student=True, recorder='fpn', data_idx=0),
                preds_T=dict(from_student=False, recorder='fpn', data_idx=0)),
            loss_amd_P4=dict(
                preds_S=dict(from_student=True, recorder='fpn', data_idx=1),
                preds_T=dict(from_student=False, recorder='fpn', data_idx=1)),
            loss_amd_P5=dict(
                preds_S=dict(from_student=True, recorder='fpn', data_idx=2),
                preds_T=dict(from_student=False, recorder='fpn', data_idx=2)),
            loss_amd_P6=dict(
                preds_S=dict(from_student=True, recorder='fpn', data_idx=3),
                preds_T=dict(from_student=False, recorder='fpn', data_idx=3)),
            loss_amd_P7=dict(
                preds_S=dict(from_student=True, recorder='fpn', data_idx=4),
                preds_T=dict(from_student=False, recorder='fpn', data_idx=4)),
        )))

find_unused_parameters = True

val_cfg = dict(_delete_=True, type='mmrazor.SingleTeacherDistillValLoop')
