# FGD (Yang et al., CVPR 2022):
#   retinanet_x101-64x4d_fpn_1x_coco -> retinanet_r50_fpn_2x_coco.
# Reported: 40.4 (DCSF-KD Table 1), 40.7 (DFMSD Table 6) from RetinaNet-R50 37.4.
# FGD's released retinanet hyper-parameters; all five FPN outputs, hooked at their convs (neck.fpn_convs.i.conv, as the released configs); the GT boxes reach the loss through kdlab's
# DataSamplesRecorder (mmrazor 1.0.0's recorders cannot hand them over).
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
        student_recorders=dict(
            fpn0=dict(type='ModuleOutputs', source='neck.fpn_convs.0.conv'),
            fpn1=dict(type='ModuleOutputs', source='neck.fpn_convs.1.conv'),
            fpn2=dict(type='ModuleOutputs', source='neck.fpn_convs.2.conv'),
            fpn3=dict(type='ModuleOutputs', source='neck.fpn_convs.3.conv'),
            fpn4=dict(type='ModuleOutputs', source='neck.fpn_convs.4.conv'),
            samples=dict(type='DataSamples')),
        teacher_recorders=dict(
            fpn0=dict(type='ModuleOutputs', source='neck.fpn_convs.0.conv'),
            fpn1=dict(type='ModuleOutputs', source='neck.fpn_convs.1.conv'),
            fpn2=dict(type='ModuleOutputs', source='neck.fpn_convs.2.conv'),
            fpn3=dict(type='ModuleOutputs', source='neck.fpn_convs.3.conv'),
            fpn4=dict(type='ModuleOutputs', source='neck.fpn_convs.4.conv')),
        distill_losses=dict(
            loss_fgd_P3=dict(type='FGDLoss', student_channels=256, teacher_channels=256, temp=0.5, alpha_fgd=0.001,
                             beta_fgd=0.0005, gamma_fgd=0.0005, lambda_fgd=5e-06),
            loss_fgd_P4=dict(type='FGDLoss', student_channels=256, teacher_channels=256, temp=0.5, alpha_fgd=0.001,
                             beta_fgd=0.0005, gamma_fgd=0.0005, lambda_fgd=5e-06),
            loss_fgd_P5=dict(type='FGDLoss', student_channels=256, teacher_channels=256, temp=0.5, alpha_fgd=0.001,
                             beta_fgd=0.0005, gamma_fgd=0.0005, lambda_fgd=5e-06),
            loss_fgd_P6=dict(type='FGDLoss', student_channels=256, teacher_channels=256, temp=0.5, alpha_fgd=0.001,
                             beta_fgd=0.0005, gamma_fgd=0.0005, lambda_fgd=5e-06),
            loss_fgd_P7=dict(type='FGDLoss', student_channels=256, teacher_channels=256, temp=0.5, alpha_fgd=0.001,
                             beta_fgd=0.0005, gamma_fgd=0.0005, lambda_fgd=5e-06),
        ),
        loss_forward_mappings=dict(
            loss_fgd_P3=dict(
                preds_S=dict(from_student=True, recorder='fpn0'),
                preds_T=dict(from_student=False, recorder='fpn0'),
                data_samples=dict(from_student=True, recorder='samples')),
            loss_fgd_P4=dict(
                preds_S=dict(from_student=True, recorder='fpn1'),
                preds_T=dict(from_student=False, recorder='fpn1'),
                data_samples=dict(from_student=True, recorder='samples')),
            loss_fgd_P5=dict(
                preds_S=dict(from_student=True, recorder='fpn2'),
                preds_T=dict(from_student=False, recorder='fpn2'),
                data_samples=dict(from_student=True, recorder='samples')),
            loss_fgd_P6=dict(
                preds_S=dict(from_student=True, recorder='fpn3'),
                preds_T=dict(from_student=False, recorder='fpn3'),
                data_samples=dict(from_student=True, recorder='samples')),
            loss_fgd_P7=dict(
                preds_S=dict(from_student=True, recorder='fpn4'),
                preds_T=dict(from_student=False, recorder='fpn4'),
                data_samples=dict(from_student=True, recorder='samples')),
        )))

find_unused_parameters = True

val_cfg = dict(_delete_=True, type='mmrazor.SingleTeacherDistillValLoop')

# the student starts from the teacher's neck and head, as the released configs do (kdlab.models.inherit)
custom_hooks = [dict(type='InheritTeacherHook', modules=['neck', 'bbox_head'])]
