# CrossKD (Wang et al., CVPR 2024): RetinaNet R101 (2x) -> RetinaNet R50 (2x).
# Released result (github.com/jbwang1997/CrossKD README, config crosskd_r50_retinanet_r101_fpn_2x_coco.py):
# teacher 38.9, student 37.4 -> 39.7.
_base_ = ['mmdet::retinanet/retinanet_r50_fpn_2x_coco.py']

custom_imports = dict(imports=['kdlab.models'], allow_failed_imports=False)

teacher_ckpt = None  # checkpoint of mmdet::retinanet/retinanet_r101_fpn_2x_coco.py (required)

model = dict(
    _scope_='mmrazor',
    _delete_=True,
    type='CrossKDDistill',
    architecture=dict(cfg_path='mmdet::retinanet/retinanet_r50_fpn_2x_coco.py', pretrained=False),
    teacher=dict(cfg_path='mmdet::retinanet/retinanet_r101_fpn_2x_coco.py', pretrained=False),
    teacher_ckpt=teacher_ckpt,
    distiller=dict(
        type='CrossKDDistiller',
        reused_head_idx=3,
        hold='post_activation',     # the released code's (mmcv's in-place ReLU); the paper's: 'pre_activation'
        loss_crosskd=dict(type='CrossKDLoss', cls_weight=1.0, beta=1.0,
                          reg_loss='giou', reg_weight=1.0, kl_weight=0.0)))

find_unused_parameters = True

val_cfg = dict(_delete_=True, type='mmrazor.SingleTeacherDistillValLoop')
