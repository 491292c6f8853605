# DeepLabV3+-R50-D8 + random perceptual loss on Pascal VOC 2012 aug 512x512 (paper Table 6).
_base_ = ['mmseg::deeplabv3plus/deeplabv3plus_r50-d8_4xb4-20k_voc12aug-512x512.py']
# Inherited as in the paper (Sec. 4.2): SGD lr 0.01, poly power 0.9, 20k iters,
# base batch = 4 GPUs x 4 images = 16.
custom_imports = dict(imports=['mmperc'], allow_failed_imports=False)
custom_hooks = [dict(type='SafeCheckpointHook')]  # safe --resume under any train script (README)
model = dict(
    type='PerceptualDistillSegmentor',
    # Paper: 'the same architecture, but the backbone is replaced with ResNet101'.
    # Teacher: DeepLabV3+-R101-D8 of the same recipe, mmseg model zoo (77.22 mIoU).
    teacher=dict(
        config='mmseg::deeplabv3plus/deeplabv3plus_r101-d8_4xb4-20k_voc12aug-512x512.py',
        checkpoint='https://download.openmmlab.com/mmsegmentation/v0.5/deeplabv3plus/deeplabv3plus_r101-d8_512x512_20k_voc12aug/deeplabv3plus_r101-d8_512x512_20k_voc12aug_20200617_102345-c7ff3d56.pth'),  # noqa: E501
    # lambda of Eq. 2. (1, 1, 1, 1, 1): the paper's efficient structure (Table 2, PSPNet-R18 on
    # Cityscapes: 70.88 mIoU vs VGG16's 70.68 and VGG19's 71.25), a third of VGG16's cost. Table 6
    # used 16 convs + 5 poolings (Sec. 4.2), VGG19's: --cfg-options model.loss_perc.num_convs="(2,2,4,4,4)".
    loss_perc=dict(type='RandomPerceptualLoss', num_convs=(1, 1, 1, 1, 1), loss_weight=0.1))
