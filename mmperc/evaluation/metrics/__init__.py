"""Metrics."""
from .boundary_fscore import BoundaryFScore, boundary_fscore, label_boundaries

__all__ = ['BoundaryFScore', 'boundary_fscore', 'label_boundaries']
