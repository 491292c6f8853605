"""Models: the random perceptual loss and the distillation segmentor."""
from .losses import RandomPerceptualLoss, RandomVGG
from .segmentors import PerceptualDistillSegmentor

__all__ = ['RandomPerceptualLoss', 'RandomVGG', 'PerceptualDistillSegmentor']
