"""CondInst mask head with the random perceptual loss on its instance masks (paper Table 5)."""
from typing import List

from mmdet.models.dense_heads.condinst_head import CondInstMaskHead
from mmdet.utils import ConfigType, InstanceList, OptConfigType
from mmengine.registry import MODELS
from torch import Tensor

DEFAULT_LOSS_PERC = dict(
    type='RandomPerceptualLoss', in_channels=1, pred_activation='sigmoid', target_activation='none',
    loss_weight=0.1)


@MODELS.register_module()
class PerceptualCondInstMaskHead(CondInstMaskHead):
    """mmdet's ``CondInstMaskHead`` plus ``loss_perc`` between sigmoid masks and their targets.

    Liu et al. (CVPR 2021), Sec. 3.1: the perceptual-loss input is the
    ``n x 1 x H/4 x W/4`` instance masks of the training batch. The targets are
    the ground-truth masks at mask-head resolution, the same ones the Dice loss
    uses (the same positives, the same sub-sampling). Logged as ``loss_perc``.

    Args:
        loss_perc (dict): The perceptual loss. Defaults to
            ``RandomPerceptualLoss(in_channels=1, pred_activation='sigmoid',
            target_activation='none', loss_weight=0.1)``.
        Other args: as :class:`mmdet.models.dense_heads.CondInstMaskHead`.
    """

    def __init__(self,
                 mask_feature_head: ConfigType,
                 num_layers: int = 3,
                 feat_channels: int = 8,
                 mask_out_stride: int = 4,
                 size_of_interest: int = 8,
                 max_masks_to_train: int = -1,
                 topk_masks_per_img: int = -1,
                 loss_mask: ConfigType = None,
                 loss_perc: ConfigType = DEFAULT_LOSS_PERC,
                 train_cfg: OptConfigType = None,
                 test_cfg: OptConfigType = None) -> None:
        super().__init__(
            mask_feature_head=mask_feature_head,
            num_layers=num_layers,
            feat_channels=feat_channels,
            mask_out_stride=mask_out_stride,
            size_of_interest=size_of_interest,
            max_masks_to_train=max_masks_to_train,
            topk_masks_per_img=topk_masks_per_img,
            loss_mask=loss_mask,
            train_cfg=train_cfg,
            test_cfg=test_cfg)
        self.loss_perc = MODELS.build(loss_perc)

    def loss_by_feat(self, mask_preds: List[Tensor], batch_gt_instances: InstanceList,
                     batch_img_metas: List[dict], positive_infos: InstanceList, **kwargs) -> dict:
        """Dice loss as in mmdet, plus the perceptual loss on the same masks and targets."""
        if positive_infos is None:
            raise ValueError('positive_infos should not be None in PerceptualCondInstMaskHead')
        loss_mask, loss_perc, total_pos = 0., 0., 0
        for mask_pred, gt_instances, positive_info in zip(mask_preds, batch_gt_instances, positive_infos):
            mask_pred, targets, num_pos = self._get_targets_single(mask_pred, gt_instances, positive_info)
            total_pos += num_pos
            if num_pos == 0 or targets is None:  # as mmdet: a zero without gradient (mask_pred is a stand-in)
                zero = mask_pred.new_zeros(1).mean()
                loss_mask, loss_perc = loss_mask + zero, loss_perc + zero
                continue
            loss_mask = loss_mask + self.loss_mask(mask_pred, targets, reduction_override='none').sum()
            # per-instance mean of the embedding distance, summed like the Dice loss
            loss_perc = loss_perc + num_pos * self.loss_perc(mask_pred.unsqueeze(1), targets.unsqueeze(1))
        total_pos = max(total_pos, 1)  # avoid nan, as mmdet
        return dict(loss_mask=loss_mask / total_pos, loss_perc=loss_perc / total_pos)
