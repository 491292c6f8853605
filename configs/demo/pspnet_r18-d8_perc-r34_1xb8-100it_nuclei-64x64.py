# The nuclei baseline distilled from the nuclei PSPNet-R34 teacher through the random
# perceptual loss (Eq. 2). tools/demo.py trains the teacher first.
_base_ = ['./pspnet_r18-d8_1xb8-100it_nuclei-64x64.py']
model = dict(
    type='PerceptualDistillSegmentor',
    teacher=dict(
        config='./pspnet_r34-d8_1xb8-150it_nuclei-64x64.py',
        checkpoint='work_dirs/demo/nuclei/teacher/iter_150.pth'),
    loss_perc=dict(type='RandomPerceptualLoss', loss_weight=0.1, num_convs=(1, 1, 1, 1, 1)))
