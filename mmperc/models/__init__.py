"""Models: the random perceptual loss and the distillation segmentor."""
from .losses import PixelwiseKDLoss, RandomPerceptualLoss, RandomVGG
from .segmentors import PerceptualDistillSegmentor

__all__ = ['PixelwiseKDLoss', 'RandomPerceptualLoss', 'RandomVGG', 'PerceptualDistillSegmentor']
