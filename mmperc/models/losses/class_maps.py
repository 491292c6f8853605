"""The loss network's input, activated a band of rows at a time inside its first convolution.

With many classes (150 on ADE20K) the class-sized maps dominate the loss's time and memory: the
softmax of the prediction, the one-hot target, their copies in the convolution's layout, the
softmax's gradient. The activations (softmax over the classes, sigmoid, one-hot, the valid-pixel
mask) act on each pixel alone, and a row of a ``k x k`` convolution's output needs only the
input rows within ``k // 2`` of it, so the first convolution runs on bands of rows: each band,
with the kernel's reach above and below, is activated just before its convolution and its own
rows of the output are kept. The backward computes the input gradient a band at a time the same
way and applies the activation's backward there, recomputing the band's softmax. Only the logits
(held by the caller anyway) and their gradient are class-sized; a band stays in the cache from
its activation to its convolution, and no class-sized temporary is allocated (on Linux a fresh
large tensor costs its page faults: measured as much as a softmax over it).
"""
from typing import Callable, List, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor

from . import winograd_f4
from .layout import channels_last, memory_format
from .max_pool_relu import max_pool_relu, max_pool_relu_backward, new_codes, pooled_like, takes
from .onehot_conv import gathers, onehot_conv2d
from .winograd import winograd_conv3x3
from .winograd_f4 import winograd_f4_conv3x3, winograd_f4_input_grad

#: Bytes of activated class maps per band of rows on the CPU; maps up to this size run in one
#: piece. Sized for its caches: a band stays there from its activation to its convolution.
BAND_BYTES = 8 * 2**20
#: The same on other devices (GPUs): a GPU gains nothing from a band in its cache but pays a
#: kernel launch per op and band, so bands there bound the memory of the class-sized maps, and
#: through them that of the first block's full-resolution maps, 64 / C times as much per map of
#: 64 channels (counted at the classes alone, unlike the CPU's: at 769x769, batch 8, 2 bands with
#: 19 classes, 11 with 150 for a lone first convolution and 12 for a banded first block);
#: ``benchmarks/sweep_bands.py`` measures the choice (H200: 256 MiB against 8, 64 MiB and whole
#: maps).
DEVICE_BAND_BYTES = 256 * 2**20
#: Fewest rows per band, per row of the kernel's reach, so that the reach (its rows activated and
#: convolved by both neighbouring bands) costs at most 1/8 more: at 769x769 with 150 classes the
#: byte budget alone gave bands of 7 rows, 11-12% slower than bands of 16 or 33 (first layer).
ROWS_PER_REACH = 16
KINDS = ('none', 'softmax', 'sigmoid', 'onehot')


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
        dtype (torch.dtype, optional): Dtype of the activated maps. Defaults to the
            source's (float32 for labels).
        layout (torch.memory_format, optional): Layout of the activated rows:
            ``torch.channels_last`` for channels-last weights (the CPU's and CUDA's), whose
            convolution would otherwise transpose each band itself; NCHW rows are then
            transposed before their activation (:func:`to_channels_last`) and one-hot
            rows written along the classes. None keeps the source's layout (labels:
            NCHW). The gradient keeps the source's layout. Defaults to None.
    """

    def __init__(self, source: Tensor, kind: str = 'none', valid: Optional[Tensor] = None,
                 num_classes: Optional[int] = None, dtype: Optional[torch.dtype] = None,
                 layout: Optional[torch.memory_format] = None) -> None:
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
        self.valid = None if valid is None else valid.bool()
        self.device = source.device
        #: the source's layout, the gradient's
        self.grad_format = torch.contiguous_format if kind == 'onehot' else memory_format(source)
        #: whether the activated rows are channels-last
        self.channels_last = (self.grad_format if layout is None else layout) == torch.channels_last

    def pack(self) -> Tuple[Tensor, ...]:
        """Hand the tensors the backward needs (source, mask) to ``save_for_backward``; this
        object keeps no reference until :meth:`restore`."""
        source = self.source if self.kind in ('softmax', 'sigmoid') else None
        tensors = tuple(t for t in (source, self.valid) if t is not None)
        self.source = None
        return tensors

    def restore(self, tensors: Tuple[Tensor, ...]) -> None:
        """Take back the tensors of :meth:`pack` (unpacked by autograd)."""
        it = iter(tensors)
        self.source = next(it) if self.kind in ('softmax', 'sigmoid') else None
        self.valid = None if self.valid is None else next(it)

    @property
    def channels(self) -> int:
        return self.shape[1]

    def bands(self, reach: int, align: int = 1, width: int = 0) -> Tuple[Tuple[int, int], ...]:
        """``(start, stop)`` of equal bands of rows, each (with ``reach`` rows above and
        below) at most :data:`BAND_BYTES` (:data:`DEVICE_BAND_BYTES` off the CPU) of activated
        maps, and all but the last at least
        :data:`ROWS_PER_REACH` rows per row of reach and a multiple of ``align`` rows (the
        last one at least ``align`` rows); one band when the maps fit. On the CPU the rows are
        counted at ``width`` channels when the maps have fewer: the widest maps a band carries
        (the first block's convolutions), which the cache budget holds too (VGG16 with 19
        classes at 256x256: a first call's peak of about 218 MiB instead of 229, the time
        unchanged, 0.97-1.00x)."""
        n, c, h, w = self.shape
        itemsize = torch.empty((), dtype=self.dtype).element_size()
        fewest = ROWS_PER_REACH * max(reach, 1)
        cpu = self.device.type == 'cpu'
        budget = BAND_BYTES if cpu else DEVICE_BAND_BYTES
        channels = max(c, width) if cpu else c
        rows = max(budget // max(n * channels * w * itemsize, 1) - 2 * reach, fewest)
        if rows >= h:
            return ((0, h), )
        size = max(-(-h // -(-h // rows)), fewest)  # ceil(h / number of bands)
        size += -size % align
        bands = [(a, min(a + size, h)) for a in range(0, h, size)]
        if len(bands) > 1 and bands[-1][1] - bands[-1][0] < align:  # into the band before
            bands[-2:] = [(bands[-2][0], h)]
        return tuple(bands)

    @torch.no_grad()
    def rows(self, start: int, stop: int) -> Tensor:
        """Rows ``[start, stop)`` of the activated, masked input, all channels."""
        if self.kind == 'onehot':
            labels = self.source[:, start:stop].unsqueeze(1)
            if self.channels == 1:
                x = (labels == 1).to(self.dtype)
            elif self.channels_last:  # written along the classes: (N, rows, W, C)
                classes = torch.arange(self.channels, device=labels.device)
                x = (labels.squeeze(1).unsqueeze(-1) == classes).to(self.dtype).permute(0, 3, 1, 2)
            else:
                classes = torch.arange(self.channels, device=labels.device).view(1, -1, 1, 1)
                x = (labels == classes).to(self.dtype)
        elif self.kind == 'none':
            x = self._source_rows(start, stop, self.channels_last)  # may be a view of the source
            return x if self.valid is None else x * self._valid(start, stop)
        else:
            x = self._activated(start, stop)
        return x if self.valid is None else x.mul_(self._valid(start, stop))

    def conv_rows(self, start: int, stop: int, weight: Tensor, pad: int, stride: int = 1,
                  op: str = 'conv') -> Tensor:
        """``conv2d(rows [start, stop), weight)`` with zero padding ``pad`` (or ``op`` with its
        ``weight``: :func:`plan_conv`); a one-hot input's (direct, stride 1, enough classes:
        :func:`gathers`) summed from the weight's columns by label (:func:`onehot_conv2d`),
        without its one-hot rows, in the layout the convolution gives (channels-last if the rows
        or the weight are)."""
        if self.kind == 'onehot' and op == 'conv' and stride == 1 and gathers(self.channels, weight.shape[-1]):
            valid = None if self.valid is None else self.valid[:, start:stop]
            y = onehot_conv2d(self.source[:, start:stop], self.channels, weight, pad, valid)
            return y if self.channels_last or channels_last(weight) else y.contiguous()
        x = self.whole() if (start, stop) == (0, self.shape[2]) else self.rows(start, stop)
        return plan_conv(x, op, weight, stride, pad)

    def whole(self) -> Tensor:
        """The whole activated input (the source itself when nothing is applied)."""
        if self.kind == 'none' and self.valid is None and self.source.dtype == self.dtype:
            return self.source
        return self.rows(0, self.shape[2])

    @torch.no_grad()
    def backward_rows(self, grad: Tensor, start: int, stop: int, out: Optional[Tensor] = None) -> Tensor:
        """The gradient w.r.t. rows ``[start, stop)`` of the source from the gradient
        w.r.t. those activated rows (``grad``, which may be overwritten; cast to the maps'
        dtype first, e.g. from bf16 under autocast), in the source's layout: written to
        ``out`` when given (those rows of the whole gradient) and returned."""
        if self.kind == 'onehot':
            raise RuntimeError('labels have no gradient')
        grad = grad.to(self.dtype)  # the tensor itself when the dtype matches
        if self.valid is not None:
            grad = grad.mul_(self._valid(start, stop))
        # recomputed in the source's layout: for NCHW logits with channels-last rows, that
        # costs less than transposing the rows again, then the gradient back (measured)
        source_cl = self.grad_format == torch.channels_last
        if self.kind == 'softmax':
            s = self._activated(start, stop, source_cl)
            if source_cl:  # as the forward: over the NHWC view
                into = out if out is not None and _images_nhwc(out) else torch.empty_like(s)
                grad = _per_image_nhwc(into, lambda k, res: torch.ops.aten._softmax_backward_data.out(
                    _image_nhwc(grad, k), _image_nhwc(s, k), 2, s.dtype, grad_input=res))
                if grad is out:
                    return out
            else:
                grad = torch._softmax_backward_data(grad, s, 1, s.dtype)
        elif self.kind == 'sigmoid':  # s * (1 - s) * g
            s = self._activated(start, stop, source_cl)
            grad = grad.mul_(s).mul_(s.neg_().add_(1))
        return grad.contiguous(memory_format=self.grad_format) if out is None else out.copy_(grad)

    def _valid(self, start: int, stop: int) -> Tensor:
        """The valid mask of rows ``[start, stop)`` as ``(N, 1, rows, W)`` in the maps' dtype."""
        return self.valid[:, start:stop].unsqueeze(1).to(self.dtype)

    def new_grad(self) -> Tensor:
        """An unwritten tensor for the gradient w.r.t. the source (its shape and layout)."""
        return torch.empty(self.shape, dtype=self.dtype, device=self.device, memory_format=self.grad_format)

    def _source_rows(self, start: int, stop: int, cl: bool) -> Tensor:
        """Rows ``[start, stop)`` of the source in the maps' dtype, channels-last if ``cl`` (a view
        of the source when it has both)."""
        x = self.source[:, :, start:stop]
        if cl and not _images_nhwc(x):
            return to_channels_last(x, self.dtype)
        return x.to(self.dtype)

    def _activated(self, start: int, stop: int, cl: Optional[bool] = None) -> Tensor:
        """Softmax/sigmoid of rows ``[start, stop)`` without the valid mask (a new tensor),
        channels-last if ``cl`` (None: as the rows)."""
        cl = self.channels_last if cl is None else cl
        x = self._source_rows(start, stop, cl)
        if self.kind == 'sigmoid':
            return x.sigmoid()
        if cl:
            # over the NHWC view: channels-last out, as the convolution takes it (x.softmax(1)
            # copies to NCHW first and the convolution copies back)
            return _per_image_nhwc(torch.empty_like(x, memory_format=torch.channels_last),
                                   lambda k, res: torch.ops.aten._softmax.out(_image_nhwc(x, k), 2, False, out=res))
        return x.softmax(dim=1)


def to_channels_last(x: Tensor, dtype: torch.dtype) -> Tensor:
    """``x`` (e.g. a band of rows of NCHW maps) copied channels-last, in ``dtype``.

    When a channel's plane spans a multiple of 4 KiB (float maps of 256x256 pixels: 256 KiB;
    also 512x512, 512x1024, 640x640), the C values of a pixel that the copy gathers all fall in
    the same cache sets, which PyTorch's direct copy thrashes; the rows are then first copied
    (a plain copy) into a buffer whose planes are 64 bytes longer, and transposed from there
    (150 classes at 256x256, with the softmax after it: 59 vs 100 ms per map; at 769x769,
    whose planes do not align, the direct copy is kept: 400 vs 557 ms). A CPU's caches only."""
    n, c, h, w = x.shape
    if c > 1 and x.device.type == 'cpu' and x.stride(1) * x.element_size() % 4096 == 0:
        buffer = torch.empty((n, c, h * w + 64 // x.element_size()), dtype=x.dtype, device=x.device)
        x = buffer[:, :, :h * w].view(n, c, h, w).copy_(x)
    return x.to(dtype, memory_format=torch.channels_last)


def _images_nhwc(x: Tensor) -> bool:
    """Whether every image of ``x`` is channels-last and dense (a band of rows of channels-last
    maps is, though the band as a whole is not)."""
    return all(_image_nhwc(x, k).is_contiguous() for k in range(x.shape[0]))


def _image_nhwc(x: Tensor, k: int) -> Tensor:
    """Image ``k`` of channels-last ``x`` as ``(H, W, C)``: contiguous even when ``x`` is a band of
    rows of a larger map (the band of the whole batch is not)."""
    return x[k].permute(1, 2, 0)


def _per_image_nhwc(out: Tensor, op: Callable[[int, Tensor], object]) -> Tensor:
    """``op(k, image k of out as (H, W, C))`` for every image of channels-last ``out``; returns
    ``out``. Softmax and its backward over a band of channels-last rows run image by image:
    given the whole band, PyTorch's kernels first copy it to a contiguous tensor (150 classes at
    256x256: 22 ms of copies per pass)."""
    for k in range(out.shape[0]):
        op(k, _image_nhwc(out, k))
    return out


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


def _bands(maps: ClassMaps, stride: int, pad: int, align: int = 1,
           width: int = 0) -> List[Tuple[int, int, int, int]]:
    """The first convolution's (or block's) bands ``(start, stop, a, b)``: rows ``[start, stop)``
    and the rows ``[a, b)`` within the reach ``pad`` of them (one band unless stride 1; ``width``:
    :meth:`ClassMaps.bands`)."""
    h = maps.shape[2]
    bands = maps.bands(pad, align, width) if stride == 1 else ((0, h), )
    return [(start, stop, max(start - pad, 0), min(stop + pad, h)) for start, stop in bands]


def first_conv(maps: ClassMaps, weight: Tensor, stride: int, pad: int, op: str = 'conv') -> Tensor:
    """``conv2d(maps, weight)`` (or ``op``: :func:`plan_conv`), a band of rows at a time (stride 1)."""
    bands = _bands(maps, stride, pad)
    if len(bands) == 1:
        return maps.conv_rows(0, maps.shape[2], weight, pad, stride, op)
    out: Optional[Tensor] = None
    for start, stop, a, b in bands:
        # rows [a, b) with zero padding: exact on rows [start, stop), the band's own
        y = maps.conv_rows(a, b, weight, pad, op=op)
        if out is None:
            n, k, _, w = y.shape
            out = torch.empty((n, k, maps.shape[2], w), dtype=y.dtype, device=y.device,
                              memory_format=memory_format(y))
        out[:, :, start:stop] = y[:, :, start - a:stop - a]
    return out


def first_conv_input_grad(maps: ClassMaps, weight: Tensor, grad: Tensor, stride: int,
                          pad: int, op: str = 'conv') -> Tensor:
    """Gradient w.r.t. the source of ``maps`` from the first convolution's output gradient."""
    n, c, h, w = maps.shape
    bands = _bands(maps, stride, pad)
    if len(bands) == 1:
        return maps.backward_rows(plan_conv_input_grad(maps.shape, op, weight, grad, stride, pad), 0, h)
    out = maps.new_grad()
    for start, stop, a, b in bands:
        # the output rows that reach rows [start, stop) are all in [a, b)
        g = plan_conv_input_grad((n, c, b - a, w), op, weight, grad[:, :, a:b], 1, pad)[:, :, start - a:stop - a]
        maps.backward_rows(g, start, stop, out=out[:, :, start:stop])
    return out


def _cpp_tiles(op: str) -> bool:
    """Whether a convolution of ``op`` runs its Winograd tile transforms in C++: ``'wino4'``
    always (it needs them), ``'wino'`` where they are built (else in PyTorch)."""
    return op == 'wino4' or (op == 'wino' and winograd_f4.available())


def plan_conv(x: Tensor, op: str, weight: Tensor, stride: int, pad: int) -> Tensor:
    """A loss-network convolution of ``op``: ``'conv'`` (direct), or ``'wino'`` / ``'wino4'``
    (``weight`` its Winograd F(2x2, 3x3) / F(4x4, 3x3) transform; stride 1), whose tile
    transforms run in C++ where it is built (F(2x2, 3x3) else in PyTorch)."""
    if _cpp_tiles(op):
        return winograd_f4_conv3x3(x, weight)
    if op == 'wino':
        return winograd_conv3x3(x, weight)
    return F.conv2d(x, weight, stride=stride, padding=pad)


def plan_conv_input_grad(shape: Sequence[int], op: str, weight: Tensor, grad: Tensor, stride: int,
                         pad: int) -> Tensor:
    """The input gradient of :func:`plan_conv` for an input of ``shape``."""
    if _cpp_tiles(op):
        return winograd_f4_input_grad(grad, weight)
    if op == 'wino':
        return winograd_conv3x3(grad, weight, transpose=True)
    return conv_input_grad(shape, weight, grad, stride, pad)


def out_channels(op: str, weight: Tensor) -> int:
    """Output channels of a loss-network convolution of ``op`` (a Winograd transform is
    ``(tiles, C_in, C_out)``, a weight ``(C_out, C_in, k, k)``)."""
    return weight.shape[-1] if op in ('wino', 'wino4') else weight.shape[0]


def _block_bands(maps: ClassMaps, layers: Sequence[Tuple[str, Tensor]], pad: int) -> List[Tuple[int, int, int, int]]:
    """The first block's bands (:func:`_bands`), the same in its forward and backward: starting on
    even rows, with the reach of all its convolutions ``layers``, counted (on the CPU) at their
    widest output."""
    widest = max(out_channels(op, weight) for op, weight in layers)
    return _bands(maps, 1, pad * len(layers), align=2, width=widest)


def first_block_max_pool(maps: ClassMaps, layers: Sequence[Tuple[str, Tensor]], pad: int,
                         saved: Optional[List[Tensor]] = None) -> Tensor:
    """The first block, a band of rows at a time: ``relu(max_pool2d(conv2d(...), 2, 2))`` after
    the convolutions ``layers`` (``(op, weight)``: ``'conv'``, or ``'wino4'`` with its Winograd
    transform; stride 1, each but the last followed by a ReLU).

    Each band, with the reach of all the block's convolutions above and below, runs through
    them; bands start on even rows, so each band's own rows are then pooled on their own, and no
    full-resolution map of the block is held whole (batch 2 at 256x256: 32 MiB per map and
    branch, as much for each gradient: copies, zero fills and page faults each call). Each image
    of a channels-last band is pooled straight into its rows of the pooled map (a slice of one
    image is contiguous, so no copy is made). Without ``saved`` no argmax is computed. With
    ``saved``, appends what the whole-map path
    does: the ReLU mask (bool) of each convolution but the last, then, pooled by the C++ kernel
    (:mod:`.max_pool_relu`, float32 channels-last maps on the CPU), its codes (uint8), else
    PyTorch's argmax over the whole map (flat ``row * W + col``) and where the pooled map is
    positive."""
    n, c, h, w = maps.shape
    out: Optional[Tensor] = None
    indices: Optional[Tensor] = None  # PyTorch's argmax, or the C++ kernel's codes
    masks: List[Tensor] = []
    images = [slice(None)]
    fused = False
    for start, stop, a, b in _block_bands(maps, layers, pad):
        y = maps.conv_rows(a, b, layers[0][1], pad, op=layers[0][0])
        for j, (op, weight) in enumerate(layers):  # exact on rows [start, stop) at the end
            if j:
                y = plan_conv(y, op, weight, 1, pad)
            if j + 1 < len(layers):
                y = y.relu_()
                if saved is not None:
                    if len(masks) == j:
                        masks.append(torch.empty((n, y.shape[1], h, w), dtype=torch.bool, device=y.device,
                                                 memory_format=memory_format(y)))
                    masks[j][:, :, start:stop] = y[:, :, start - a:stop - a] > 0
        lo, hi = start // 2, stop // 2  # start is even; an odd last row is not pooled
        if out is None:
            fused = takes(y)
            out = pooled_like(y, h // 2) if fused else torch.empty(
                (n, y.shape[1], h // 2, w // 2), dtype=y.dtype, device=y.device, memory_format=memory_format(y))
            if saved is not None:  # the argmax only for the backward (the target has none)
                indices = new_codes(out.shape, y.device) if fused else torch.empty(
                    out.shape, dtype=torch.int64, device=y.device, memory_format=memory_format(out))
            if channels_last(y):
                images = [slice(k, k + 1) for k in range(n)]
        if fused:  # the C++ kernel: the whole band, ReLU and codes included
            max_pool_relu(y[:, :, start - a:stop - a], out[:, :, lo:hi],
                          None if indices is None else indices[:, :, lo:hi])
            continue
        for k in images:
            rows = y[k, :, start - a:stop - a]
            if indices is None:
                out[k, :, lo:hi] = F.max_pool2d(rows, 2, 2)
            elif out[k, :, lo:hi].is_contiguous(memory_format=memory_format(out)):
                # one image's rows of a channels-last map (or the whole map): dense, written in place
                torch.ops.aten.max_pool2d_with_indices.out(rows, [2, 2], [2, 2], [0, 0], [1, 1], False,
                                                           out=out[k, :, lo:hi], indices=indices[k, :, lo:hi])
            else:  # rows of NCHW maps are not dense: CUDA's kernel would write a dense block from
                # the slice's start instead, over other rows and channels
                out[k, :, lo:hi], indices[k, :, lo:hi] = F.max_pool2d(rows, 2, 2, return_indices=True)
        if indices is not None:
            indices[:, :, lo:hi].add_(start * w)
    if fused:
        if saved is not None:
            saved += masks + [indices]
        return out
    out.relu_()
    if saved is not None:
        saved += masks + [indices, out > 0]
    return out


def first_block_max_pool_input_grad(maps: ClassMaps, layers: Sequence[Tuple[str, Tensor]], grad: Tensor,
                                    routing: Sequence[Tensor], masks: Sequence[Tensor], pad: int) -> Tensor:
    """Gradient w.r.t. the source of ``maps`` from the gradient w.r.t. the pooled output of
    :func:`first_block_max_pool`, a band of rows at a time: each band routes the pooled gradient of
    the windows around it back to full resolution, by the codes of the C++ kernel (``routing``
    ``[codes]``) or the pooling kernel's own backward (``[argmax]``, the last ReLU's mask
    applied to ``grad`` already), then through the convolutions and the ReLU ``masks``."""
    n, c, h, w = maps.shape
    bands = _block_bands(maps, layers, pad)
    out = maps.new_grad() if len(bands) > 1 else None
    for start, stop, a, b in bands:
        top, bottom = a - a % 2, min(b + b % 2, h)  # the whole pooling windows over rows [a, b)
        lo, hi = top // 2, top // 2 + (bottom - top) // 2
        shape = (n, grad.shape[1], bottom - top, w)
        if routing[0].dtype == torch.uint8:
            g = max_pool_relu_backward(grad[:, :, lo:hi], routing[0][:, :, lo:hi], shape)
        else:
            like = torch.empty(shape, dtype=grad.dtype, device=grad.device, memory_format=memory_format(routing[0]))
            g = torch.ops.aten.max_pool2d_with_indices_backward(grad[:, :, lo:hi], like, [2, 2], [2, 2], [0, 0],
                                                                [1, 1], False, routing[0][:, :, lo:hi] - top * w)
        for j in reversed(range(len(layers))):  # exact on rows [start, stop) at the end
            op, weight = layers[j]
            g = plan_conv_input_grad((n, weight.shape[1], bottom - top, w), op, weight, g, 1, pad)
            if j:
                g = torch.where(masks[j - 1][:, :, top:bottom], g, g.new_zeros(()), out=g)
        g = g[:, :, start - top:stop - top]
        if out is None:
            return maps.backward_rows(g, start, stop)
        maps.backward_rows(g, start, stop, out=out[:, :, start:stop])
    return out
