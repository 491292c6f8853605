"""Figures for the demo and the evidence scripts."""
from .demo_plots import colorize, plot_curves, plot_predictions

__all__ = ['colorize', 'plot_curves', 'plot_predictions']
