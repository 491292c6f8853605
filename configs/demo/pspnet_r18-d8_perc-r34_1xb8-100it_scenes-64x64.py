# The demo's baseline distilled from the PSPNet-R34 teacher through the random perceptual loss
# (Eq. 2: CE + 0.1 * perceptual(student, teacher)). tools/demo.py trains the teacher first.
_base_ = ['./pspnet_r18-d8_1xb8-100it_scenes-64x64.py']
model = dict(
    type='PerceptualDistillSegmentor',
    teacher=dict(
        config='./pspnet_r34-d8_1xb8-300it_scenes-64x64.py',
        checkpoint='work_dirs/demo/teacher/iter_300.pth'),
    # (1, 1, 1, 1, 1): the paper's efficient structure (Table 2), 4x cheaper than VGG16 on CPU
    loss_perc=dict(type='RandomPerceptualLoss', loss_weight=0.1, num_convs=(1, 1, 1, 1, 1)))
