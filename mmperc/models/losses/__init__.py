"""Losses."""
from .random_perceptual_loss import RandomPerceptualLoss, labels_to_onehot
from .random_vgg import RandomVGG

__all__ = ['RandomPerceptualLoss', 'RandomVGG', 'labels_to_onehot']
