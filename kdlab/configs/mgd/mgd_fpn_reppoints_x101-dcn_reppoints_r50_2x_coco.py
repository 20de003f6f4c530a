# MGD (Yang et al., ECCV 2022), mmrazor's MGDLoss + MGDConnector:
#   reppoints-moment_x101-dconv-c3-c5_fpn-gn_head-gn_2x_coco -> reppoints-moment_r50_fpn-gn_head-gn_2x_coco.
# Reported: 42.3 (DFMSD Table 6) from RepPoints-R50 38.6.
# alpha 2e-5, lambda 0.65 (MGD's one-stage setting), all five FPN outputs, hooked at their convs (neck.fpn_convs.i.conv, as the released configs).
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
        student_recorders=dict(
            fpn0=dict(type='ModuleOutputs', source='neck.fpn_convs.0.conv'),
            fpn1=dict(type='ModuleOutputs', source='neck.fpn_convs.1.conv'),
            fpn2=dict(type='ModuleOutputs', source='neck.fpn_convs.2.conv'),
            fpn3=dict(type='ModuleOutputs', source='neck.fpn_convs.3.conv'),
            fpn4=dict(type='ModuleOutputs', source='neck.fpn_convs.4.conv')),
        teacher_recorders=dict(
            fpn0=dict(type='ModuleOutputs', source='neck.fpn_convs.0.conv'),
            fpn1=dict(type='ModuleOutputs', source='neck.fpn_convs.1.conv'),
            fpn2=dict(type='ModuleOutputs', source='neck.fpn_convs.2.conv'),
            fpn3=dict(type='ModuleOutputs', source='neck.fpn_convs.3.conv'),
            fpn4=dict(type='ModuleOutputs', source='neck.fpn_convs.4.conv')),
        connectors=dict(
            s_mgd_P3_connector=dict(type='MGDConnector', student_channels=256, teacher_channels=256, lambda_mgd=0.65),
            s_mgd_P4_connector=dict(type='MGDConnector', student_channels=256, teacher_channels=256, lambda_mgd=0.65),
            s_mgd_P5_connector=dict(type='MGDConnector', student_channels=256, teacher_channels=256, lambda_mgd=0.65),
            s_mgd_P6_connector=dict(type='MGDConnector', student_channels=256, teacher_channels=256, lambda_mgd=0.65),
            s_mgd_P7_connector=dict(type='MGDConnector', student_channels=256, teacher_channels=256, lambda_mgd=0.65),
        ),
        distill_losses=dict(
            loss_mgd_P3=dict(type='MGDLoss', alpha_mgd=2e-05),
            loss_mgd_P4=dict(type='MGDLoss', alpha_mgd=2e-05),
            loss_mgd_P5=dict(type='MGDLoss', alpha_mgd=2e-05),
            loss_mgd_P6=dict(type='MGDLoss', alpha_mgd=2e-05),
            loss_mgd_P7=dict(type='MGDLoss', alpha_mgd=2e-05),
        ),
        loss_forward_mappings=dict(
            loss_mgd_P3=dict(
                preds_S=dict(from_student=True, recorder='fpn0', connector='s_mgd_P3_connector'),
                preds_T=dict(from_student=False, recorder='fpn0')),
            loss_mgd_P4=dict(
                preds_S=dict(from_student=True, recorder='fpn1', connector='s_mgd_P4_connector'),
                preds_T=dict(from_student=False, recorder='fpn1')),
            loss_mgd_P5=dict(
                preds_S=dict(from_student=True, recorder='fpn2', connector='s_mgd_P5_connector'),
                preds_T=dict(from_student=False, recorder='fpn2')),
            loss_mgd_P6=dict(
                preds_S=dict(from_student=True, recorder='fpn3', connector='s_mgd_P6_connector'),
                preds_T=dict(from_student=False, recorder='fpn3')),
            loss_mgd_P7=dict(
                preds_S=dict(from_student=True, recorder='fpn4', connector='s_mgd_P7_connector'),
                preds_T=dict(from_student=False, recorder='fpn4')),
        )))

find_unused_parameters = True

val_cfg = dict(_delete_=True, type='mmrazor.SingleTeacherDistillValLoop')

# the student starts from the teacher's neck and head, as the released configs do (kdlab.models.inherit)
custom_hooks = [dict(type='InheritTeacherHook', modules=['neck', 'bbox_head'])]
