# The demo's baseline + the random perceptual loss against one-hot ground truth (no teacher).
_base_ = ['./pspnet_r18-d8_1xb8-100it_scenes-64x64.py']
model = dict(
    decode_head=dict(loss_decode=[
        dict(type='CrossEntropyLoss', use_sigmoid=False, loss_weight=1.0),
        # lambda of Eq. 2; (1, 1, 1, 1, 1): the paper's efficient structure (Table 2)
        dict(type='RandomPerceptualLoss', loss_weight=0.1, num_convs=(1, 1, 1, 1, 1)),
    ]))
