# The demo's baseline distilled from a PSPNet-R50 teacher through the random perceptual loss
# (Eq. 2). tools/demo.py trains the teacher first and passes its checkpoint with
# --cfg-options model.teacher.checkpoint=work_dirs/demo/teacher/iter_600.pth
_base_ = ['./pspnet_r18-d8_1xb8-300it_scenes-96x96.py']
model = dict(
    type='PerceptualDistillSegmentor',
    teacher=dict(
        config='configs/demo/pspnet_r50-d8_1xb8-600it_scenes-96x96.py',
        checkpoint='work_dirs/demo/teacher/iter_600.pth'),
    loss_perc=dict(type='RandomPerceptualLoss', loss_weight=0.1))
