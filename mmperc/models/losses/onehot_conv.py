"""The loss network's first convolution of a one-hot target, computed from the labels.

A ``k x k`` convolution of a one-hot map adds, per output pixel, one column of the weight for
each of the ``k * k`` pixels under the kernel: the column of that pixel's class at that kernel
position (nothing for a pixel outside the image, ignored or masked). So it is a sum of ``k * k``
rows of a table of the weight's columns, gathered by label (``F.embedding_bag``): ``k * k``
additions of ``C_out`` values per pixel instead of ``k * k * C`` multiply-adds, and no one-hot
map. The same sums as the convolution's, in another order.
"""
from typing import Optional

import torch
import torch.nn.functional as F
from torch import Tensor


def gathers(num_classes: int, kernel_size: int) -> bool:
    """Whether :func:`onehot_conv2d` beats one-hot maps and a convolution: from ``2 * k + 2``
    classes. Its cost grows with ``k * k`` (the table rows gathered per pixel), the
    convolution's with ``k * k * C``; measured (2-core Xeon, 256x256, batch 2, 64 output
    channels, against channels-last one-hot rows and oneDNN's convolution) 1.19x / 1.76x /
    2.28x for 8 / 19 / 32 classes with k = 3, 1.01x / 1.30x / 1.76x for 8 / 12 / 19 with k = 5,
    1.15x / 1.64x for 12 / 19 with k = 7, slower below (0.45-0.97x); 150 classes, k = 3: 16 vs
    167 ms."""
    return num_classes >= 2 * kernel_size + 2


def onehot_conv2d(labels: Tensor, num_classes: int, weight: Tensor, padding: int,
                  valid: Optional[Tensor] = None) -> Tensor:
    """``conv2d(one_hot(labels) * valid, weight, padding=padding)`` (stride 1, no bias).

    Under autocast the table holds the weight rounded to the autocast dtype, as the
    convolution of the prediction's maps uses it, so a prediction equal to the one-hot target
    still embeds to the same features; the sums are float32, the result in the autocast dtype.
    Not so for TF32: on CUDA in float32, cuDNN's convolutions (PyTorch's default,
    ``torch.backends.cudnn.allow_tf32``) round the prediction's maps and the weight to TF32,
    while the table keeps float32 weights, so the two first-layer features of a prediction equal
    to the target differ by about 2e-4 of their size (TF32's rounding simulated on the CPU, not
    measured on a GPU): a floor of the loss far below its values in training; set
    ``allow_tf32 = False`` for exact float32 on both sides.

    Args:
        labels (Tensor): Integer labels; those outside ``[0, num_classes)`` are all-zero
            pixels.
        num_classes (int): Classes of the one-hot map (``weight``'s input channels).
        weight (Tensor): Float weight.
        padding (int): Zero padding on every side.
        valid (Tensor, optional): Bool mask; pixels outside it are all-zero.

    Shape:
        - labels, valid: ``(N, H, W)``.
        - weight: ``(C_out, num_classes, k, k)``.
        - Output: ``(N, C_out, H + 2 * padding - k + 1, W + 2 * padding - k + 1)``,
          channels-last, in ``weight``'s dtype (under autocast its dtype, unless float64).
    """
    c_out, c, kh, kw = weight.shape
    if c != num_classes:
        raise ValueError(f'the weight takes {c} channels, but the labels have {num_classes} classes')
    n, h, w = labels.shape
    oh, ow = h + 2 * padding - kh + 1, w + 2 * padding - kw + 1
    if oh < 1 or ow < 1:
        raise ValueError(f'labels of size {(h, w)} with padding {padding} are smaller than the kernel {(kh, kw)}')
    device = labels.device.type
    autocast = torch.is_autocast_enabled(device) and weight.dtype != torch.float64
    dtype = torch.get_autocast_dtype(device) if autocast else weight.dtype  # the convolution's
    if autocast:  # float32 sums of the weights the convolution would take
        weight = weight.to(dtype).float()
    # one table of C + 1 rows per kernel position: the weight's column of each class, then zeros
    table = weight.new_zeros(kh * kw, c + 1, c_out)
    table[:, :c] = weight.permute(2, 3, 1, 0).reshape(kh * kw, c, c_out)
    labels = labels.long()  # C may not fit the labels' dtype (uint8 with 256 classes or more)
    inside = (labels >= 0) & (labels < c)
    if valid is not None:
        inside &= valid
    classes = labels.new_full((n, h + 2 * padding, w + 2 * padding), c, dtype=torch.int32)
    classes[:, padding:padding + h, padding:padding + w] = torch.where(inside, labels, c)
    rows = torch.empty((n, oh, ow, kh * kw), dtype=torch.int32, device=labels.device)
    for i in range(kh):
        for j in range(kw):
            torch.add(classes[:, i:i + oh, j:j + ow], (i * kw + j) * (c + 1), out=rows[..., i * kw + j])
    out = F.embedding_bag(rows.view(-1, kh * kw), table.view(-1, c_out), mode='sum')
    out = out.view(n, oh, ow, c_out).permute(0, 3, 1, 2)
    return out.to(dtype)
