# Monocular depth (NYU) with SiLog + the random perceptual loss on the 1-channel depth map
# (paper Sec. 3.1 "Depth estimation", Table 7). mmseg 1.2's only depth model, VPD, needs a
# Stable-Diffusion backbone; this config keeps mmseg's DepthEstimator, NYU data and VPD depth
# head, on a ResNet-18 whose four feature strides (4, 8, 16, 32) match what the head expects.
_base_ = ['mmseg::_base_/datasets/nyu.py', 'mmseg::_base_/default_runtime.py']
custom_imports = dict(imports=['mmperc'], allow_failed_imports=False)
custom_hooks = [dict(type='SafeCheckpointHook')]  # safe --resume under any train script (README)
crop_size = (480, 480)
norm_cfg = dict(type='SyncBN', requires_grad=True)
model = dict(
    type='DepthEstimator',
    data_preprocessor=dict(
        type='SegDataPreProcessor',
        mean=[123.675, 116.28, 103.53],
        std=[58.395, 57.12, 57.375],
        bgr_to_rgb=True,
        pad_val=0,
        seg_pad_val=0,
        size=crop_size),
    backbone=dict(
        type='ResNetV1c',
        depth=18,
        num_stages=4,
        out_indices=(0, 1, 2, 3),
        norm_cfg=norm_cfg,
        init_cfg=dict(type='Pretrained', checkpoint='open-mmlab://resnet18_v1c')),
    decode_head=dict(
        type='VPDDepthHead',
        max_depth=10,
        in_channels=[64, 128, 256, 512],
        embed_dim=32,  # narrower than VPD's 192/1536 (feature_dim = 8 x embed_dim): a ResNet-18 head
        feature_dim=256,
        num_deconv_layers=2,  # features at stride 16: x4 by deconvs, x4 by the head's upsamplings
        num_deconv_filters=(32, 32),
        loss_decode=[
            dict(type='SiLogLoss'),
            # 1 input channel, depth as is, missing depth (0) excluded from both sides (Sec. 4.2)
            dict(type='RandomPerceptualLoss', in_channels=1, pred_activation='none',
                 target_activation='none', invalid_value=0.0, loss_weight=0.1),
        ]),
    test_cfg=dict(mode='whole'))
# No Albu (albumentations is not a dependency): flip, crop and depth mix as in mmseg's NYU base.
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadDepthAnnotation', depth_rescale_factor=1e-3),
    dict(type='RandomDepthMix', prob=0.25),
    dict(type='RandomFlip', prob=0.5),
    dict(type='RandomCrop', crop_size=crop_size),
    dict(type='PackSegInputs', meta_keys=('img_path', 'depth_map_path', 'ori_shape', 'img_shape', 'pad_shape',
                                          'scale_factor', 'flip', 'flip_direction', 'category_id')),
]
train_dataloader = dict(batch_size=8, dataset=dict(pipeline=train_pipeline))  # base batch = 4 GPUs x 8
optim_wrapper = dict(type='OptimWrapper', optimizer=dict(type='AdamW', lr=5e-4, weight_decay=0.1))
param_scheduler = [dict(type='PolyLR', eta_min=0, power=1.0, begin=0, end=25000, by_epoch=False)]
train_cfg = dict(type='IterBasedTrainLoop', max_iters=25000, val_interval=5000)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')
default_hooks = dict(checkpoint=dict(type='CheckpointHook', by_epoch=False, interval=5000, max_keep_ckpts=1))
