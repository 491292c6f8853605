# FCN-HRNetV2-W18-small + random perceptual loss on ADE20K 512x512 (paper Table 6).
_base_ = ['mmseg::hrnet/fcn_hr18s_4xb4-80k_ade20k-512x512.py']
# Inherited as in the paper (Sec. 4.2): SGD lr 0.01, poly power 0.9, 80k iters,
# base batch = 4 GPUs x 4 images = 16.
custom_imports = dict(imports=['mmperc'], allow_failed_imports=False)
model = dict(
    type='PerceptualDistillSegmentor',
    # Teacher: FCN-HRNetV2-W48 of the same recipe, mmseg model zoo (41.90 mIoU).
    teacher=dict(
        config='mmseg::hrnet/fcn_hr48_4xb4-80k_ade20k-512x512.py',
        checkpoint='https://download.openmmlab.com/mmsegmentation/v0.5/hrnet/fcn_hr48_512x512_80k_ade20k/fcn_hr48_512x512_80k_ade20k_20200614_193946-7ba5258d.pth'),  # noqa: E501
    # lambda of Eq. 2
    loss_perc=dict(type='RandomPerceptualLoss', loss_weight=0.1))
