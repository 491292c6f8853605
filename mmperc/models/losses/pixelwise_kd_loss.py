"""Pixel-wise knowledge-distillation loss (KL divergence between softened class maps)."""
from typing import Optional

import torch.nn as nn
import torch.nn.functional as F
from mmengine.registry import MODELS
from torch import Tensor


#: A softmax over one channel is the constant 1: the KL divergence would be 0 with no gradient.
ONE_CHANNEL_MESSAGE = ('PixelwiseKDLoss compares softmax class maps, which are constant for one channel '
                       '(a binary head with out_channels=1 and a sigmoid): drop loss_kd, or predict 2 '
                       'classes with out_channels=2')


@MODELS.register_module()
class PixelwiseKDLoss(nn.Module):
    """``T^2 * KL(softmax(t / T) || softmax(s / T))`` per pixel, averaged over valid pixels.

    The pixel-wise distillation term of structured-KD work the paper builds on
    (its ref. [18]); off by default in :class:`PerceptualDistillSegmentor`.

    Args:
        temperature (float): Softening temperature ``T``. Defaults to 1.0.
        loss_weight (float): Weight of the loss. Defaults to 1.0.
        loss_name (str): Name of the loss item. Defaults to ``'loss_kd'``.

    Shape:
        - pred, target: ``(N, C, H, W)`` logits.
        - valid_mask: ``(N, H, W)`` bool, optional.
        - output: scalar.
    """

    def __init__(self, temperature: float = 1.0, loss_weight: float = 1.0, loss_name: str = 'loss_kd') -> None:
        super().__init__()
        if temperature <= 0:
            raise ValueError(f'temperature must be positive, but got {temperature}')
        if not loss_name.startswith('loss_'):
            raise ValueError(f"loss_name must start with 'loss_' to be back-propagated, got {loss_name!r}")
        self.temperature = float(temperature)
        self.loss_weight = loss_weight
        self._loss_name = loss_name

    @property
    def loss_name(self) -> str:
        """Name of the loss item."""
        return self._loss_name

    def forward(self, pred: Tensor, target: Tensor, valid_mask: Optional[Tensor] = None) -> Tensor:
        """Compute the loss (the target branch gets no gradient)."""
        if pred.shape != target.shape:
            raise ValueError(f'pred {tuple(pred.shape)} and target {tuple(target.shape)} must match: '
                             'resize the teacher logits to the student\'s')
        if pred.shape[1] == 1:
            raise ValueError(ONE_CHANNEL_MESSAGE)
        t = self.temperature
        log_p = F.log_softmax(pred.float() / t, dim=1)
        log_q = F.log_softmax(target.detach().float() / t, dim=1)
        kl = (log_q.exp() * (log_q - log_p)).sum(dim=1)
        if valid_mask is not None:
            weight = valid_mask.to(kl.dtype)
            kl = (kl * weight).sum() / weight.sum().clamp(min=1)
        else:
            kl = kl.mean()
        return self.loss_weight * t * t * kl
