# FGD (Yang et al., CVPR 2022):
#   faster-rcnn_r101_fpn_2x_coco -> faster-rcnn_r50_fpn_2x_coco.
# Reported: 40.4 (DCSF-KD Table 1) from Faster R-CNN-R50 2x 38.4.
# FGD's released faster_rcnn hyper-parameters; the four FPN outputs of an FPN conv, P2-P5 (its released config:
# neck.fpn_convs.0-3; P6 is a max-pool); the GT boxes reach the loss through kdlab's
# DataSamplesRecorder (mmrazor 1.0.0's recorders cannot hand them over).
_base_ = ['mmdet::faster_rcnn/faster-rcnn_r50_fpn_2x_coco.py']

custom_imports = dict(imports=['kdlab.models'], allow_failed_imports=False)

teacher_ckpt = None  # checkpoint of mmdet::faster_rcnn/faster-rcnn_r101_fpn_2x_coco.py (required)

model = dict(
    _scope_='mmrazor',
    _delete_=True,
    type='FpnTeacherDistill',
    architecture=dict(cfg_path='mmdet::faster_rcnn/faster-rcnn_r50_fpn_2x_coco.py', pretrained=False),
    teacher=dict(cfg_path='mmdet::faster_rcnn/faster-rcnn_r101_fpn_2x_coco.py', pretrained=False),
    teacher_ckpt=teacher_ckpt,
    distiller=dict(
        type='ConfigurableDistiller',
        student_recorders=dict(
            fpn0=dict(type='ModuleOutputs', source='neck.fpn_convs.0.conv'),
            fpn1=dict(type='ModuleOutputs', source='neck.fpn_convs.1.conv'),
            fpn2=dict(type='ModuleOutputs', source='neck.fpn_convs.2.conv'),
            fpn3=dict(type='ModuleOutputs', source='neck.fpn_convs.3.conv'),
            samples=dict(type='DataSamples')),
        teacher_recorders=dict(
            fpn0=dict(type='ModuleOutputs', source='neck.fpn_convs.0.conv'),
            fpn1=dict(type='ModuleOutputs', source='neck.fpn_convs.1.conv'),
            fpn2=dict(type='ModuleOutputs', source='neck.fpn_convs.2.conv'),
            fpn3=dict(type='ModuleOutputs', source='neck.fpn_convs.3.conv')),
        distill_losses=dict(
            loss_fgd_P2=dict(type='FGDLoss', student_channels=256, teacher_channels=256, temp=0.5, alpha_fgd=5e-05,
                             beta_fgd=2.5e-05, gamma_fgd=5e-05, lambda_fgd=5e-07),
            loss_fgd_P3=dict(type='FGDLoss', student_channels=256, teacher_channels=256, temp=0.5, alpha_fgd=5e-05,
                             beta_fgd=2.5e-05, gamma_fgd=5e-05, lambda_fgd=5e-07),
            loss_fgd_P4=dict(type='FGDLoss', student_channels=256, teacher_channels=256, temp=0.5, alpha_fgd=5e-05,
                             beta_fgd=2.5e-05, gamma_fgd=5e-05, lambda_fgd=5e-07),
            loss_fgd_P5=dict(type='FGDLoss', student_channels=256, teacher_channels=256, temp=0.5, alpha_fgd=5e-05,
                             beta_fgd=2.5e-05, gamma_fgd=5e-05, lambda_fgd=5e-07),
        ),
        loss_forward_mappings=dict(
            loss_fgd_P2=dict(
                preds_S=dict(from_student=True, recorder='fpn0'),
                preds_T=dict(from_student=False, recorder='fpn0'),
                data_samples=dict(from_student=True, recorder='samples')),
            loss_fgd_P3=dict(
                preds_S=dict(from_student=True, recorder='fpn1'),
                preds_T=dict(from_student=False, recorder='fpn1'),
                data_samples=dict(from_student=True, recorder='samples')),
            loss_fgd_P4=dict(
                preds_S=dict(from_student=True, recorder='fpn2'),
                preds_T=dict(from_student=False, recorder='fpn2'),
                data_samples=dict(from_student=True, recorder='samples')),
            loss_fgd_P5=dict(
                preds_S=dict(from_student=True, recorder='fpn3'),
                preds_T=dict(from_student=False, recorder='fpn3'),
                data_samples=dict(from_student=True, recorder='samples')),
        )))

find_unused_parameters = True

val_cfg = dict(_delete_=True, type='mmrazor.SingleTeacherDistillValLoop')

# the student starts from the teacher's neck and heads, as the released configs do (kdlab.models.inherit)
custom_hooks = [dict(type='InheritTeacherHook', modules=['neck', 'rpn_head', 'roi_head'])]
