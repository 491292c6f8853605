"""Evaluation: boundary-quality metric."""
from .metrics import BoundaryFScore, boundary_fscore, label_boundaries

__all__ = ['BoundaryFScore', 'boundary_fscore', 'label_boundaries']
