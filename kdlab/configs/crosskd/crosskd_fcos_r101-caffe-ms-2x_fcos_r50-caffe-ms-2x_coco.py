# CrossKD (Wang et al., CVPR 2024): FCOS R101 (caffe, 2x, multi-scale) -> FCOS R50 (caffe, 2x, multi-scale).
# Released result (github.com/jbwang1997/CrossKD README, config
# crosskd_r50_fcos_r101-2x-ms_caffe_fpn_gn-head_2x_ms_coco.py): teacher 40.8, student 38.5 -> 41.1.
# The released config trains at (1333, 640) / (1333, 800) for 24 epochs with lr 0.01, bias lr x2, clip 35:
# mmdet's fcos_r50-caffe ms-640-800-2x recipe, used here as the student's config.
_base_ = ['mmdet::fcos/fcos_r50-caffe_fpn_gn-head_ms-640-800-2x_coco.py']

custom_imports = dict(imports=['kdlab.models'], allow_failed_imports=False)

teacher_ckpt = None  # checkpoint of mmdet::fcos/fcos_r101-caffe_fpn_gn-head_ms-640-800-2x_coco.py (required)

model = dict(
    _scope_='mmrazor',
    _delete_=True,
    type='CrossKDDistill',
    architecture=dict(cfg_path='mmdet::fcos/fcos_r50-caffe_fpn_gn-head_ms-640-800-2x_coco.py', pretrained=False),
    teacher=dict(cfg_path='mmdet::fcos/fcos_r101-caffe_fpn_gn-head_ms-640-800-2x_coco.py', pretrained=False),
    teacher_ckpt=teacher_ckpt,
    distiller=dict(
        type='CrossKDDistiller',
        reused_head_idx=2,           # student towers cut after conv 2
        hold='post_activation',     # the released code's (mmcv's in-place ReLU); the paper's: 'pre_activation'
        loss_crosskd=dict(type='CrossKDLoss', cls_weight=0.4, beta=1.0,
                          reg_loss='iou', reg_weight=0.75, kl_weight=0.0)))   # IoULoss (-ln IoU)

find_unused_parameters = True

val_cfg = dict(_delete_=True, type='mmrazor.SingleTeacherDistillValLoop')
