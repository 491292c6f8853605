# The demo's baseline + the random perceptual loss against one-hot ground truth (no teacher).
_base_ = ['./pspnet_r18-d8_1xb8-300it_scenes-96x96.py']
model = dict(
    decode_head=dict(loss_decode=[
        dict(type='CrossEntropyLoss', use_sigmoid=False, loss_weight=1.0),
        dict(type='RandomPerceptualLoss', loss_weight=0.1),  # lambda of Eq. 2
    ]))
