"""mmperc: the random perceptual loss (Liu et al., CVPR 2021) for OpenMMLab.

Importing mmperc registers its modules in mmengine's root registries, which
mmseg's and mmdet's registries search, and makes mmengine checkpoints load
safely with ``torch.load(weights_only=True)``.
"""
from .version import __version__
from .utils import register_safe_globals

register_safe_globals()

from . import engine, evaluation, models  # noqa: E402,F401  (registers modules)

__all__ = ['__version__']
