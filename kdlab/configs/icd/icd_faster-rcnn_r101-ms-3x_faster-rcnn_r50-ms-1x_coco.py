# ICD (Kang et al., NeurIPS 2021): Faster R-CNN R101 (3x, multi-scale) -> Faster R-CNN R50 (1x, multi-scale).
# Released result (github.com/megvii-research/ICD README, Detectron2): teacher 42.0, student 37.9 -> 40.9.
# The student is mmdet's faster-rcnn_r50_fpn_1x with Detectron2's multi-scale 640-800 training; the teacher
# mmdet's faster-rcnn_r101_fpn_ms-3x. Both normalise inputs the same way (the teacher sees the student's batch).
_base_ = ['mmdet::faster_rcnn/faster-rcnn_r50_fpn_1x_coco.py']

custom_imports = dict(imports=['kdlab.models'], allow_failed_imports=False)

teacher_ckpt = None  # checkpoint of mmdet::faster_rcnn/faster-rcnn_r101_fpn_ms-3x_coco.py (required)

train_pipeline = [
    dict(type='LoadImageFromFile', backend_args=_base_.backend_args),
    dict(type='LoadAnnotations', with_bbox=True),
    dict(type='RandomChoiceResize',
         scales=[(1333, 640), (1333, 672), (1333, 704), (1333, 736), (1333, 768), (1333, 800)],
         keep_ratio=True),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackDetInputs')
]
train_dataloader = dict(dataset=dict(pipeline=train_pipeline))

model = dict(
    _scope_='mmrazor',
    _delete_=True,
    type='ICDDistill',
    architecture=dict(cfg_path='mmdet::faster_rcnn/faster-rcnn_r50_fpn_1x_coco.py', pretrained=False),
    teacher=dict(cfg_path='mmdet::faster_rcnn/faster-rcnn_r101_fpn_ms-3x_coco.py', pretrained=False),
    teacher_ckpt=teacher_ckpt,
    distiller=dict(
        type='ICDDistiller',
        student_indices=[0, 1, 2, 3, 4],   # P2-P6, all levels
        teacher_indices=[0, 1, 2, 3, 4],
        loss_icd=dict(type='ICDLoss', loss_weight=3.0, temperature=1.0),   # lambda = 3 (two-stage)
        hidden_dims=256, num_heads=8, ffn_dims=1024,
        neg_ratio=5.0, max_instances=100, jitter=0.3, fake_prior='online',
        warmup_iters=1000))   # max_instances: MAX_LABELS of the released R-CNN config

find_unused_parameters = True

val_cfg = dict(_delete_=True, type='mmrazor.SingleTeacherDistillValLoop')

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

# the student starts from the teacher's FPN, RPN and RoI heads (released code: PRELOAD_FPN / PRELOAD_HEAD)
custom_hooks = [dict(type='InheritTeacherHook', modules=['neck', 'rpn_head', 'roi_head'])]
