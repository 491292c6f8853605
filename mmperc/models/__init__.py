"""Models: the random perceptual loss and the distillation segmentor."""
from .dense_heads import PerceptualCondInstMaskHead
from .losses import PixelwiseKDLoss, RandomPerceptualLoss, RandomVGG
from .segmentors import PerceptualDistillSegmentor

__all__ = ['PerceptualCondInstMaskHead', 'PixelwiseKDLoss', 'RandomPerceptualLoss', 'RandomVGG',
           'PerceptualDistillSegmentor']
