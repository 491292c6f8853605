# PSPNet-R18-D8 baseline on Cityscapes 769x769, 40k (paper Table 6).
# mmseg ships R18 only with 80k: this is mmseg's own R18 switch on its R50 40k config.
_base_ = ['mmseg::pspnet/pspnet_r50-d8_4xb2-40k_cityscapes-769x769.py']
custom_imports = dict(imports=['mmperc'], allow_failed_imports=False)
custom_hooks = [dict(type='SafeCheckpointHook')]  # safe --resume under any train script (README)
# Inherited as in the paper (Sec. 4.2): SGD lr 0.01, poly power 0.9, 40k iters,
# base batch = 4 GPUs x 2 images = 8.
model = dict(
    pretrained='open-mmlab://resnet18_v1c',
    backbone=dict(depth=18),
    # R18 stage 4 gives 512 channels (R50: 2048), stage 3 gives 256 (R50: 1024).
    decode_head=dict(in_channels=512, channels=128),
    auxiliary_head=dict(in_channels=256, channels=64))
