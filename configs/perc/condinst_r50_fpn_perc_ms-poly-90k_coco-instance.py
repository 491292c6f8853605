# CondInst-R50-FPN + random perceptual loss on its n x 1 x H/4 x W/4 instance masks (paper Table 5).
# Ground-truth masks are the targets (the paper's teacher soft masks are not implemented).
_base_ = ['mmdet::condinst/condinst_r50_fpn_ms-poly-90k_coco_instance.py']
custom_imports = dict(imports=['mmperc'], allow_failed_imports=False)
custom_hooks = [dict(type='SafeCheckpointHook')]  # safe --resume under any train script (README)
model = dict(
    mask_head=dict(
        type='PerceptualCondInstMaskHead',
        # lambda = 0.1 as in all the paper's experiments; 1 input channel (Sec. 4.2)
        loss_perc=dict(
            type='RandomPerceptualLoss', in_channels=1, pred_activation='sigmoid', target_activation='none',
            loss_weight=0.1)))
