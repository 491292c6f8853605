# The demo's baseline on real images: PSPNet-R18-d8, cross-entropy only, on the nuclei tiles
# (2 classes). Half the scenes' budget: 12 small training tiles are learnt quickly.
_base_ = [
    '../_base_/models/pspnet_r18-d8_demo.py', '../_base_/datasets/nuclei_dsb2018-64x64.py',
    'mmseg::_base_/default_runtime.py', '../_base_/schedules/schedule_demo-200it.py'
]
custom_imports = dict(imports=['mmperc'], allow_failed_imports=False)  # BoundaryFScore metric
custom_hooks = [dict(type='SafeCheckpointHook')]  # safe --resume under any train script (README)
model = dict(decode_head=dict(num_classes=2), auxiliary_head=dict(num_classes=2))
max_iters = 100
param_scheduler = [dict(type='PolyLR', eta_min=1e-4, power=0.9, begin=0, end=max_iters, by_epoch=False)]
train_cfg = dict(type='IterBasedTrainLoop', max_iters=max_iters, val_interval=25)
default_hooks = dict(checkpoint=dict(type='CheckpointHook', by_epoch=False, interval=max_iters))
randomness = dict(seed=0)
