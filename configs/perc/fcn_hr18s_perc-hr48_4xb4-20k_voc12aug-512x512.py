# FCN-HRNetV2-W18-small + random perceptual loss on Pascal VOC 2012 aug 512x512 (paper Table 6).
_base_ = ['mmseg::hrnet/fcn_hr18s_4xb4-20k_voc12aug-512x512.py']
# Inherited as in the paper (Sec. 4.2): SGD lr 0.01, poly power 0.9, 20k iters,
# base batch = 4 GPUs x 4 images = 16.
custom_imports = dict(imports=['mmperc'], allow_failed_imports=False)
model = dict(
    type='PerceptualDistillSegmentor',
    # Teacher: FCN-HRNetV2-W48 of the same recipe, mmseg model zoo (75.87 mIoU).
    teacher=dict(
        config='mmseg::hrnet/fcn_hr48_4xb4-20k_voc12aug-512x512.py',
        checkpoint='https://download.openmmlab.com/mmsegmentation/v0.5/hrnet/fcn_hr48_512x512_20k_voc12aug/fcn_hr48_512x512_20k_voc12aug_20200617_224419-89de05cd.pth'),  # noqa: E501
    # lambda of Eq. 2
    loss_perc=dict(type='RandomPerceptualLoss', loss_weight=0.1))
