# PSPNet-R18-d8 trained with cross-entropy only, 200 iterations: the student of the evidence studies
# (benchmarks/evidence.py); the demo runs the 100-iteration config.
_base_ = [
    '../_base_/models/pspnet_r18-d8_demo.py', '../_base_/datasets/scenes_cityscapes-64x64.py',
    'mmseg::_base_/default_runtime.py', '../_base_/schedules/schedule_demo-200it.py'
]
custom_imports = dict(imports=['mmperc'], allow_failed_imports=False)  # BoundaryFScore metric
custom_hooks = [dict(type='SafeCheckpointHook')]  # safe --resume under any train script (README)
randomness = dict(seed=0)
