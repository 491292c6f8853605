"""Which memory layout a loss-network map is in."""
import torch
from torch import Tensor


def channels_last(x: Tensor) -> bool:
    """Whether ``x`` (N, C, H, W) is stored channels-last (and not also NCHW-contiguous)."""
    return x.is_contiguous(memory_format=torch.channels_last) and not x.is_contiguous()


def memory_format(x: Tensor) -> torch.memory_format:
    """``torch.channels_last`` for a channels-last ``x``, else ``torch.contiguous_format``."""
    return torch.channels_last if channels_last(x) else torch.contiguous_format
