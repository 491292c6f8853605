"""``relu(max_pool2d(x, 2, 2))`` of the loss network, and its gradient, routed by one byte per output.

PyTorch's pooling keeps an int64 argmax per output for its backward, the ReLU after it a bool
mask (9 bytes kept per output), and the backward zero-fills the whole input gradient before it
writes each window's winner. mmperc's C++ kernel (``csrc/max_pool_relu.cpp``, built by
``setup.py``) keeps one byte per output, its *code*: where in its window the maximum is (0-3,
row-major; the first of equal maxima, NaN winning, as PyTorch picks), or 4 where the ReLU stops
the gradient; its backward writes every element of the input gradient once. It takes float32
maps on the CPU whose rows are channels-last (:func:`takes`); other maps (CUDA, bf16, NCHW)
and a build without the extension keep PyTorch's ops, with an argmax and a mask.
"""
from typing import List, Optional, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from . import kernels
from .layout import memory_format

#: The code of an output whose ReLU passes no gradient (not positive); 0-3 give the argmax.
NO_GRADIENT = 4

_ext = kernels.load('_max_pool_relu')  # the C++ kernel (setup.py), or None: PyTorch's ops


def available() -> bool:
    """Whether mmperc's C++ pooling kernel was built (``pip install --no-build-isolation -e .``)."""
    return _ext is not None


def _rows_channels_last(x: Tensor) -> bool:
    """Whether the channels of ``x`` (N, C, H, W) are innermost and its pixels dense along a row."""
    return x.dim() == 4 and x.stride(1) == 1 and x.stride(3) == x.shape[1]


def takes(x: Tensor) -> bool:
    """Whether the C++ kernel pools ``x``: float32 on the CPU, channels-last rows (a channels-last
    map, or a band of its rows), and the extension built."""
    return (_ext is not None and x.device.type == 'cpu' and x.dtype == torch.float32
            and _rows_channels_last(x))


def pooled_like(x: Tensor, rows: Optional[int] = None) -> Tensor:
    """An unwritten channels-last tensor for the pooling of ``x`` (``rows`` rows of it; default all)."""
    n, c, h, w = x.shape
    return torch.empty((n, c, h // 2 if rows is None else rows, w // 2), dtype=x.dtype, device=x.device,
                       memory_format=torch.channels_last)


def new_codes(shape: Sequence[int], device: torch.device) -> Tensor:
    """An unwritten uint8 tensor for the codes of a pooled map of ``shape`` (N, C, H, W), its rows
    channels-last as the kernels take them (also where the map is 1x1, both layouts at once)."""
    return torch.empty(shape, dtype=torch.uint8, device=device, memory_format=torch.channels_last)


def max_pool_relu(x: Tensor, out: Optional[Tensor] = None, code: Optional[Tensor] = None) -> Tensor:
    """``relu(max_pool2d(x, 2, 2))`` by the C++ kernel (:func:`takes` ``x``), written to ``out``
    (default: a new channels-last tensor) and returned; with ``code`` (uint8, ``out``'s shape),
    each output's code written there too."""
    out = pooled_like(x) if out is None else out
    _ext.max_pool_relu(x, out, code)
    return out


def max_pool_relu_backward(grad: Tensor, code: Tensor, shape: Sequence[int], out: Optional[Tensor] = None) -> Tensor:
    """The gradient w.r.t. the input (of ``shape``) of :func:`max_pool_relu` from its output's
    ``grad`` and ``code``, every element written (to ``out`` when given: channels-last rows)."""
    if out is None:
        out = torch.empty(shape, dtype=torch.float32, device=grad.device, memory_format=torch.channels_last)
    if not _rows_channels_last(grad) or grad.dtype != torch.float32:
        grad = grad.to(torch.float32, memory_format=torch.channels_last)
    _ext.max_pool_relu_backward(grad, code, out)
    return out


def pool(x: Tensor, saved: Optional[List[Tensor]]) -> Tensor:
    """``relu(max_pool2d(x, 2, 2))``, equal to pooling after the ReLU (ReLU is monotone), at a
    quarter of the ReLU's cost. With ``saved``, appends what :func:`unpool` needs: the codes
    (uint8) from the C++ kernel, else the argmax indices (computed by PyTorch's pooling anyway)
    and where the pooled map is positive (the ReLU's gradient)."""
    if takes(x):
        out = pooled_like(x)
        code = None if saved is None else new_codes(out.shape, x.device)
        max_pool_relu(x, out, code)
        if saved is not None:
            saved.append(code)
        return out
    if saved is None:
        return F.max_pool2d(x, 2, 2).relu_()
    pooled, indices = F.max_pool2d(x, 2, 2, return_indices=True)
    pooled.relu_()
    saved += [indices, pooled > 0]
    return pooled


def pop_routing(saved: List[Tensor]) -> List[Tensor]:
    """Pop what one :func:`pool` appended to ``saved``: ``[code]`` or ``[indices, positive]``."""
    last = saved.pop()
    return [last] if last.dtype == torch.uint8 else [saved.pop(), last]


def unpool(grad: Tensor, routing: Sequence[Tensor], shape: torch.Size) -> Tensor:
    """The gradient of :func:`pool` w.r.t. its input of ``shape`` from its output's ``grad``:
    routed by the codes, or the ReLU's mask then the pooling kernel's own backward (each
    window's winner, as ``max_pool2d`` picks it)."""
    if len(routing) == 1:
        return max_pool_relu_backward(grad, routing[0], shape)
    indices, positive = routing
    grad = torch.where(positive, grad, grad.new_zeros(()))
    # the kernel reads only the size and memory format of the input: an unwritten stand-in
    like = torch.empty(shape, dtype=grad.dtype, device=grad.device, memory_format=memory_format(indices))
    return torch.ops.aten.max_pool2d_with_indices_backward(grad, like, [2, 2], [2, 2], [0, 0], [1, 1],
                                                           False, indices)

