# The demo's student: PSPNet-R18-d8 trained from scratch (nothing is downloaded), plain BN for a
# single CPU process, heads narrowed to the small inputs. Leaf configs set num_classes.
_base_ = ['mmseg::_base_/models/pspnet_r50-d8.py']
norm_cfg = dict(type='BN', requires_grad=True)
model = dict(
    pretrained=None,
    data_preprocessor=dict(size=(64, 64)),  # the datasets' crop_size
    backbone=dict(depth=18, norm_cfg=norm_cfg),
    decode_head=dict(in_channels=512, channels=128, num_classes=19, norm_cfg=norm_cfg),
    auxiliary_head=dict(in_channels=256, channels=64, num_classes=19, norm_cfg=norm_cfg),
    test_cfg=dict(mode='whole'))
