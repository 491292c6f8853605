# The nuclei teacher: PSPNet-R34-d8 trained 1.5x as long as the students with cross-entropy.
# tools/demo.py trains it once and reuses its checkpoint.
_base_ = ['./pspnet_r18-d8_1xb8-100it_nuclei-64x64.py']
model = dict(backbone=dict(depth=34))  # BasicBlock like R18: same head widths
max_iters = 150
param_scheduler = [dict(type='PolyLR', eta_min=1e-4, power=0.9, begin=0, end=max_iters, by_epoch=False)]
train_cfg = dict(type='IterBasedTrainLoop', max_iters=max_iters, val_interval=50)
default_hooks = dict(checkpoint=dict(type='CheckpointHook', by_epoch=False, interval=max_iters))
