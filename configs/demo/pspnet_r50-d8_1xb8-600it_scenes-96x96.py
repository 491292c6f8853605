# The demo's teacher: PSPNet-R50-d8 trained twice as long as the students, with cross-entropy.
_base_ = ['./pspnet_r18-d8_1xb8-300it_scenes-96x96.py']
norm_cfg = dict(type='BN', requires_grad=True)
model = dict(
    backbone=dict(depth=50),
    decode_head=dict(in_channels=2048, channels=512),
    auxiliary_head=dict(in_channels=1024, channels=256))
max_iters = 600
param_scheduler = [dict(type='PolyLR', eta_min=1e-4, power=0.9, begin=0, end=max_iters, by_epoch=False)]
train_cfg = dict(type='IterBasedTrainLoop', max_iters=max_iters, val_interval=100)
default_hooks = dict(checkpoint=dict(type='CheckpointHook', by_epoch=False, interval=max_iters))
