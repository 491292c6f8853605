# PSPNet-R18-d8 trained with cross-entropy only: the demo's baseline (tools/demo.py).
_base_ = [
    'mmseg::_base_/models/pspnet_r50-d8.py', '../_base_/datasets/scenes_cityscapes-64x64.py',
    'mmseg::_base_/default_runtime.py', 'mmseg::_base_/schedules/schedule_40k.py'
]
custom_imports = dict(imports=['mmperc'], allow_failed_imports=False)  # BoundaryFScore metric
crop_size = (64, 64)
norm_cfg = dict(type='BN', requires_grad=True)  # a single CPU process
model = dict(
    pretrained=None,  # trained from scratch: nothing is downloaded
    data_preprocessor=dict(size=crop_size),
    backbone=dict(depth=18, norm_cfg=norm_cfg),
    decode_head=dict(in_channels=512, channels=128, num_classes=19, norm_cfg=norm_cfg),
    auxiliary_head=dict(in_channels=256, channels=64, num_classes=19, norm_cfg=norm_cfg),
    test_cfg=dict(mode='whole'))
# 200 iterations x 8 images, validated every 50: a few minutes on 2 CPU cores.
max_iters = 200
optim_wrapper = dict(optimizer=dict(lr=0.02))
param_scheduler = [dict(type='PolyLR', eta_min=1e-4, power=0.9, begin=0, end=max_iters, by_epoch=False)]
train_cfg = dict(type='IterBasedTrainLoop', max_iters=max_iters, val_interval=50)
default_hooks = dict(
    logger=dict(type='LoggerHook', interval=10, log_metric_by_epoch=False),
    checkpoint=dict(type='CheckpointHook', by_epoch=False, interval=max_iters))
randomness = dict(seed=0)
