# FCN-HRNetV2-W18-small + random perceptual loss on Cityscapes 512x1024 (paper Table 6).
_base_ = ['mmseg::hrnet/fcn_hr18s_4xb2-40k_cityscapes-512x1024.py']
# Inherited as in the paper (Sec. 4.2): SGD lr 0.01, poly power 0.9, 40k iters,
# base batch = 4 GPUs x 2 images = 8.
# The paper crops Cityscapes to 769x769, but mmseg has no HRNet config (nor
# checkpoint) for that crop: student and teacher keep mmseg's 512x1024 crop.
custom_imports = dict(imports=['mmperc'], allow_failed_imports=False)
custom_hooks = [dict(type='SafeCheckpointHook')]  # safe --resume under any train script (README)
model = dict(
    type='PerceptualDistillSegmentor',
    # Teacher: FCN-HRNetV2-W48 of the same recipe, mmseg model zoo (78.48 mIoU).
    teacher=dict(
        config='mmseg::hrnet/fcn_hr48_4xb2-40k_cityscapes-512x1024.py',
        checkpoint='https://download.openmmlab.com/mmsegmentation/v0.5/hrnet/fcn_hr48_512x1024_40k_cityscapes/fcn_hr48_512x1024_40k_cityscapes_20200601_014240-a989b146.pth'),  # noqa: E501
    # lambda of Eq. 2. (1, 1, 1, 1, 1): the paper's efficient structure (Table 2, PSPNet-R18 on
    # Cityscapes: 70.88 mIoU vs VGG16's 70.68 and VGG19's 71.25), a third of VGG16's cost. Table 6
    # used 16 convs + 5 poolings (Sec. 4.2), VGG19's: --cfg-options model.loss_perc.num_convs="(2,2,4,4,4)".
    loss_perc=dict(type='RandomPerceptualLoss', num_convs=(1, 1, 1, 1, 1), loss_weight=0.1))
