"""The loss network's input, made a channel chunk at a time inside its first convolution.

With many classes (150 on ADE20K) the class-sized maps dominate the loss's memory: the
softmax of the prediction, the one-hot target, their copies in the first convolution's
blocked layout and the gradient of the softmax. The first convolution is linear in its
input channels, so it is computed as a sum over chunks of classes, each chunk activated
(softmax, sigmoid, one-hot, valid-pixel mask) just before its convolution; the backward
pass writes the input gradient chunk by chunk and applies the activation's backward in
place. Only the logits (held by the caller anyway) and the gradient are class-sized.
"""
from typing import Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor

#: Most classes per chunk of the first convolution; inputs with at most this many run in one
#: call, more are split into equal chunks (150 classes: two of 75). Measured with 150 classes at
#: 512x512 ((1,1,1,1,1), fwd+bwd, peak): chunks of 32 9.1-9.3 s, 700 MiB; 50 8.4 s, 772 MiB;
#: 75 8.1 s, 870 MiB; whole maps 7.7 s, 1466 MiB (the reference's peak: 1459 MiB).
CHUNK = 80
KINDS = ('none', 'softmax', 'sigmoid', 'onehot')


def channels_last(x: Tensor) -> bool:
    """Whether ``x`` (N, C, H, W) is stored channels-last (and not also NCHW-contiguous)."""
    return x.is_contiguous(memory_format=torch.channels_last) and not x.is_contiguous()


def memory_format(x: Tensor) -> torch.memory_format:
    """``torch.channels_last`` for a channels-last ``x``, else ``torch.contiguous_format``."""
    return torch.channels_last if channels_last(x) else torch.contiguous_format


def nhwc(x: Tensor) -> Tensor:
    """The (N, H, W, C) view of ``x``: contiguous when ``x`` is channels-last."""
    return x.permute(0, 2, 3, 1)


class ClassMaps:
    """``activation(source) * valid``, never materialised whole.

    Args:
        source (Tensor): ``(N, C, H, W)`` float maps, or ``(N, H, W)`` integer labels
            for ``kind='onehot'`` (labels outside ``[0, C)`` give all-zero pixels).
        kind (str): ``'none'``, ``'softmax'`` (over channels), ``'sigmoid'`` or
            ``'onehot'``.
        valid (Tensor, optional): ``(N, H, W)`` bool mask; pixels outside it are zero.
        num_classes (int, optional): Channels of a one-hot input (1: binary labels
            used as they are). Required for ``'onehot'``.
        dtype (torch.dtype, optional): Dtype of the chunks. Defaults to the source's
            (float32 for labels).
    """

    def __init__(self, source: Tensor, kind: str = 'none', valid: Optional[Tensor] = None,
                 num_classes: Optional[int] = None, dtype: Optional[torch.dtype] = None) -> None:
        if kind not in KINDS:
            raise ValueError(f'kind must be one of {KINDS}, but got {kind!r}')
        if kind == 'onehot':
            if num_classes is None or source.dim() != 3 or source.is_floating_point():
                raise ValueError('a one-hot input needs integer labels (N, H, W) and num_classes')
            n, h, w = source.shape
            self.shape = torch.Size((n, num_classes, h, w))
        else:
            self.shape = source.shape
        self.source, self.kind = source, kind
        self.dtype = dtype or (torch.float32 if kind == 'onehot' else source.dtype)
        self.valid = None if valid is None else valid.unsqueeze(1).to(self.dtype)
        self._lse: Optional[Tensor] = None
        if kind == 'softmax' and len(self.chunks()) > 1:  # one chunk: the fused softmax kernel
            self._lse = self._logsumexp()

    @torch.no_grad()
    def _logsumexp(self) -> Tensor:
        """``log(sum_c exp(source_c))`` in the chunks' dtype, a chunk at a time."""
        top = self.source.amax(dim=1, keepdim=True).to(self.dtype)
        total = None
        for a, b in self.chunks():
            part = (self.source[:, a:b].to(self.dtype) - top).exp_().sum(dim=1, keepdim=True)
            total = part if total is None else total.add_(part)
        return total.log_().add_(top)

    def pack(self) -> Tuple[Tensor, ...]:
        """Hand the tensors the backward needs (source, lse, mask) to ``save_for_backward``;
        this object keeps no reference until :meth:`restore`."""
        source = self.source if self.kind in ('softmax', 'sigmoid') else None
        tensors = tuple(t for t in (source, self._lse, self.valid) if t is not None)
        self.source = None
        return tensors

    def restore(self, tensors: Tuple[Tensor, ...]) -> None:
        """Take back the tensors of :meth:`pack` (unpacked by autograd)."""
        it = iter(tensors)
        self.source = next(it) if self.kind in ('softmax', 'sigmoid') else None
        self._lse = None if self._lse is None else next(it)
        self.valid = None if self.valid is None else next(it)

    @property
    def channels(self) -> int:
        return self.shape[1]

    def chunks(self) -> Tuple[Tuple[int, int], ...]:
        """``(start, stop)`` of every chunk of channels."""
        c = self.channels
        size = -(-c // -(-c // CHUNK))  # ceil(c / number of chunks)
        return tuple((a, min(a + size, c)) for a in range(0, c, size))

    @torch.no_grad()
    def chunk(self, start: int, stop: int) -> Tensor:
        """Channels ``[start, stop)`` of the activated, masked input."""
        if self.kind == 'onehot':
            labels = self.source.unsqueeze(1)
            if self.channels == 1:
                x = (labels == 1).to(self.dtype)
            else:
                classes = torch.arange(start, stop, device=labels.device).view(1, -1, 1, 1)
                x = (labels == classes).to(self.dtype)
        elif self.kind == 'none':
            x = self.source[:, start:stop].to(self.dtype)  # may be a view of the source
            return x if self.valid is None else x * self.valid
        else:
            x = self._activated(start, stop)
        return x if self.valid is None else x.mul_(self.valid)

    def whole(self) -> Tensor:
        """The whole activated input (one chunk; the source itself when nothing is applied)."""
        if self.kind == 'none' and self.valid is None and self.source.dtype == self.dtype:
            return self.source
        return self.chunk(0, self.channels)

    @torch.no_grad()
    def backward_(self, grad: Tensor) -> Tensor:
        """Turn the gradient w.r.t. the activated input into the source's, in place."""
        if self.kind == 'onehot':
            raise RuntimeError('labels have no gradient')
        if self.valid is not None:
            grad.mul_(self.valid)
        if self.kind == 'softmax' and len(self.chunks()) == 1:  # the fused softmax backward
            s = self._activated(0, self.channels)
            if channels_last(grad) and channels_last(s):  # as the forward: over the NHWC view
                return torch._softmax_backward_data(nhwc(grad), nhwc(s), 3, s.dtype).permute(0, 3, 1, 2)
            return torch._softmax_backward_data(grad, s, 1, s.dtype)
        if self.kind == 'softmax':  # s * (g - sum_c s_c g_c), a chunk at a time
            dot = None
            for a, b in self.chunks():
                part = (self._activated(a, b) * grad[:, a:b]).sum(dim=1, keepdim=True)
                dot = part if dot is None else dot.add_(part)
            for a, b in self.chunks():
                grad[:, a:b].sub_(dot).mul_(self._activated(a, b))
        elif self.kind == 'sigmoid':  # s * (1 - s) * g
            for a, b in self.chunks():
                s = self._activated(a, b)
                grad[:, a:b].mul_(s).mul_(1 - s)
        return grad

    def _activated(self, start: int, stop: int) -> Tensor:
        """Softmax/sigmoid of channels ``[start, stop)`` without the valid mask (a new tensor)."""
        x = self.source[:, start:stop].to(self.dtype)
        if self.kind == 'softmax' and self._lse is None and channels_last(x):
            # over the NHWC view: channels-last out, as the convolution takes it (x.softmax(1)
            # copies to NCHW first and the convolution copies back)
            return nhwc(x).softmax(dim=3).permute(0, 3, 1, 2)
        if self.kind == 'softmax':
            return x.softmax(dim=1) if self._lse is None else (x - self._lse).exp_()
        return x.sigmoid()


def conv_input_grad(shape: Sequence[int], weight: Tensor, grad: Tensor, stride: int,
                    pad: int) -> Tensor:
    """The input gradient of ``conv2d(input, weight)`` for an input of ``shape``.

    As ``torch.nn.grad.conv2d_input``, but the input it stands in for is an unwritten tensor
    in the weight's memory format: that function's broadcast stand-in is copied into a
    dense one by the convolution's backward (measured 8% of the call on the CPU)."""
    like = torch.empty(shape, dtype=grad.dtype, device=grad.device, memory_format=memory_format(weight))
    return torch.ops.aten.convolution_backward(grad, like, weight.to(grad.dtype), None, (stride, stride),
                                               (pad, pad), (1, 1), False, (0, 0), 1,
                                               (True, False, False))[0]


def first_conv(maps: ClassMaps, weight: Tensor, stride: int, pad: int) -> Tensor:
    """``conv2d(maps, weight)`` as a sum over chunks of input channels (float32 accumulation)."""
    if len(maps.chunks()) == 1:
        return F.conv2d(maps.whole(), weight, stride=stride, padding=pad)
    out: Optional[Tensor] = None
    for a, b in maps.chunks():
        y = F.conv2d(maps.chunk(a, b), weight[:, a:b], stride=stride, padding=pad)
        if out is None:
            dtype = torch.promote_types(y.dtype, torch.float32)
            out = y if y.dtype == dtype else y.to(dtype)
        else:
            out.add_(y)
    return out if out.dtype == y.dtype else out.to(y.dtype)


def first_conv_input_grad(maps: ClassMaps, weight: Tensor, grad: Tensor, stride: int,
                          pad: int) -> Tensor:
    """Gradient w.r.t. the source of ``maps`` from the first convolution's output gradient."""
    n, _, h, w = maps.shape
    if len(maps.chunks()) == 1:
        g = conv_input_grad(maps.shape, weight, grad, stride, pad)
        g = g if g.dtype == maps.dtype else g.to(maps.dtype)
    else:
        g = grad.new_empty(maps.shape, dtype=maps.dtype)
        for a, b in maps.chunks():
            g[:, a:b] = conv_input_grad((n, b - a, h, w), weight[:, a:b], grad, stride, pad)
    return maps.backward_(g)
