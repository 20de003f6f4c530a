# ICD (Kang et al., NeurIPS 2021): FCOS R101 -> FCOS R50 (1x, multi-scale).
# Released result (github.com/megvii-research/ICD README, AdelaiDet): student 39.4 -> 42.9. The README's FCOS
# teacher is an R101 of unstated schedule; kdlab uses mmdet's fcos_r101-caffe ms-640-800-2x. The student is
# mmdet's fcos_r50-caffe 1x with multi-scale 640-800 training (AdelaiDet's 1x); both normalise alike.
_base_ = ['mmdet::fcos/fcos_r50-caffe_fpn_gn-head_1x_coco.py']

custom_imports = dict(imports=['kdlab.models'], allow_failed_imports=False)

teacher_ckpt = None  # checkpoint of mmdet::fcos/fcos_r101-caffe_fpn_gn-head_ms-640-800-2x_coco.py (required)

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
    architecture=dict(cfg_path='mmdet::fcos/fcos_r50-caffe_fpn_gn-head_1x_coco.py', pretrained=False),
    teacher=dict(cfg_path='mmdet::fcos/fcos_r101-caffe_fpn_gn-head_ms-640-800-2x_coco.py', pretrained=False),
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

custom_hooks = [dict(type='InheritTeacherHook', modules=['neck', 'bbox_head'])]
