"""Losses."""
from .pixelwise_kd_loss import PixelwiseKDLoss
from .random_perceptual_loss import RandomPerceptualLoss, labels_to_onehot
from .random_vgg import RandomVGG

__all__ = ['PixelwiseKDLoss', 'RandomPerceptualLoss', 'RandomVGG', 'labels_to_onehot']
