"""Segmentors."""
from .perceptual_distill_segmentor import PerceptualDistillSegmentor
from .teacher import build_teacher, resolve_config_path

__all__ = ['PerceptualDistillSegmentor', 'build_teacher', 'resolve_config_path']
