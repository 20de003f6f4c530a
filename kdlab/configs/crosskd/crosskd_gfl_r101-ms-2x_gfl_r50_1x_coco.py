# CrossKD (Wang et al., CVPR 2024): GFL R101 (2x, multi-scale) -> GFL R50 (1x).
# Released result (github.com/jbwang1997/CrossKD README, config crosskd_r50_gflv1_r101-2x-ms_fpn_1x_coco.py):
# teacher 44.9, student 40.2 -> 43.7; the same row is DCSF-KD's Table 1 CrossKD entry (43.7).
_base_ = ['mmdet::gfl/gfl_r50_fpn_1x_coco.py']

custom_imports = dict(imports=['kdlab.models'], allow_failed_imports=False)

teacher_ckpt = None  # checkpoint of mmdet::gfl/gfl_r101_fpn_ms-2x_coco.py (required)

model = dict(
    _scope_='mmrazor',
    _delete_=True,
    type='CrossKDDistill',
    architecture=dict(cfg_path='mmdet::gfl/gfl_r50_fpn_1x_coco.py', pretrained=False),
    teacher=dict(cfg_path='mmdet::gfl/gfl_r101_fpn_ms-2x_coco.py', pretrained=False),
    teacher_ckpt=teacher_ckpt,
    distiller=dict(
        type='CrossKDDistiller',
        reused_head_idx=3,           # student towers cut after conv 3, teacher's conv 4 onwards
        hold='post_activation',     # the released code's (mmcv's in-place ReLU); the paper's: 'pre_activation'
        # the released config's default branch: KDQualityFocalLoss 1 + KL 4 and no GIoU KD term
        # (QFL 1 + GIoU 2 + KL 3 exists on a non-default branch only: reg_weight=2.0, kl_weight=3.0)
        loss_crosskd=dict(type='CrossKDLoss', cls_weight=1.0, beta=1.0,   # KDQualityFocalLoss
                          reg_loss='giou', reg_weight=0.0,                # no GIoU term on decoded boxes
                          kl_weight=4.0, kl_T=1.0)))                      # KL on side distributions

find_unused_parameters = True

val_cfg = dict(_delete_=True, type='mmrazor.SingleTeacherDistillValLoop')
