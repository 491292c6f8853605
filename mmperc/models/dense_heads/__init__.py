"""Dense heads (mmdet)."""
from .perceptual_condinst_mask_head import PerceptualCondInstMaskHead

__all__ = ['PerceptualCondInstMaskHead']
