"""Keep the batch norms' running statistics identical on every rank when BN stands in for SyncBN."""
from typing import Optional

from mmengine.dist import all_reduce_params, is_distributed
from mmengine.hooks import Hook
from mmengine.registry import HOOKS


@HOOKS.register_module()
class SyncBuffersEveryIterHook(Hook):
    """Average the model's floating-point buffers over the ranks after every training iteration.

    Without CUDA mmperc's tools run BN instead of SyncBN (gloo has no SyncBN) and DDP without
    broadcasting buffers, so each rank's running statistics follow its own batches: the
    checkpoint held rank 0's while every rank validated its share of the images with its own,
    and the logged mIoU was not the checkpoint's. Averaged after each iteration, before
    ``CheckpointHook`` saves and before validation, they are the same on every rank, each
    update made with the mean of the ranks' batch statistics (mmengine's ``SyncBuffersHook``
    averages only before validation, after the checkpoint was written).
    """

    priority = 'ABOVE_NORMAL'  # before CheckpointHook (VERY_LOW) and the validation after the hooks

    def after_train_iter(self, runner, batch_idx: int, data_batch: Optional[dict] = None,
                         outputs: Optional[dict] = None) -> None:
        if not is_distributed():
            return
        buffers = [b for b in runner.model.buffers() if b.is_floating_point()]
        if buffers:
            all_reduce_params(buffers, op='mean')
