# ICD (Kang et al., NeurIPS 2021): RetinaNet R101 (3x, multi-scale) -> RetinaNet R50 (1x, multi-scale).
# Released result (github.com/megvii-research/ICD README, Detectron2): teacher 40.4, student 37.4 -> 40.7.
# Detectron2's R-50/R-101 are the MSRA caffe-style backbones and its "1x" trains at 640-800 short sides:
# mmdet's r50-caffe ms-1x / r101-caffe ms-3x configs are the same recipe. Teacher and student normalise
# their inputs identically (the teacher sees the student's preprocessed batch, mmrazor's convention).
_base_ = ['mmdet::retinanet/retinanet_r50-caffe_fpn_ms-1x_coco.py']

custom_imports = dict(imports=['kdlab.models'], allow_failed_imports=False)

teacher_ckpt = None  # checkpoint of mmdet::retinanet/retinanet_r101-caffe_fpn_ms-3x_coco.py (required)

model = dict(
    _scope_='mmrazor',
    _delete_=True,
    type='ICDDistill',
    architecture=dict(cfg_path='mmdet::retinanet/retinanet_r50-caffe_fpn_ms-1x_coco.py', pretrained=False),
    teacher=dict(cfg_path='mmdet::retinanet/retinanet_r101-caffe_fpn_ms-3x_coco.py', pretrained=False),
    teacher_ckpt=teacher_ckpt,
    distiller=dict(
        type='ICDDistiller',
        student_indices=[0, 1, 2, 3, 4],   # P3-P7, all levels
        teacher_indices=[0, 1, 2, 3, 4],
        loss_icd=dict(type='ICDLoss', loss_weight=8.0, temperature=1.0),   # lambda = 8 (one-stage)
        hidden_dims=256, num_heads=8, ffn_dims=1024,
        neg_ratio=5.0, max_instances=300, jitter=0.3, fake_prior='online',
        warmup_iters=1000))

find_unused_parameters = True

val_cfg = dict(_delete_=True, type='mmrazor.SingleTeacherDistillValLoop')

# the detector keeps its SGD; everything ICD adds (distiller.*) gets AdamW with a 0.01 gradient-norm clip
optim_wrapper = dict(
    _delete_=True,
    constructor='SplitOptimWrapperConstructor',
    # the student's own optimizer, as in its baseline config, its gradients clipped element-wise at 1.0
    # (the released configs: SOLVER.CLIP_GRADIENTS.ENABLED, Detectron2's default CLIP_TYPE value, CLIP_VALUE 1.0)
    student=dict(_base_.optim_wrapper, clip_grad=dict(type='value', clip_value=1.0)),
    decoder=dict(type='OptimWrapper',
                 optimizer=dict(type='AdamW', lr=1e-4, weight_decay=1e-4),
                 clip_grad=dict(max_norm=0.01, norm_type=2),
                 prefixes=['distiller.']))

param_scheduler = dict(
    _delete_=True,
    student=_base_.param_scheduler,   # the student's own schedule
    decoder=[
        dict(type='CosineAnnealingLR', T_max=12, eta_min=0.0, by_epoch=True, begin=0, end=12,
             convert_to_iter_based=True)])

# the student starts from the teacher's FPN and head (released code: PRELOAD_FPN / PRELOAD_HEAD)
custom_hooks = [dict(type='InheritTeacherHook', modules=['neck', 'bbox_head'])]
