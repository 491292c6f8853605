"""Winograd F(2x2, 3x3) convolution for the loss network's frozen 3x3 weights (CPU, float32).

A 3x3 convolution (stride 1, padding 1) computed on 4x4 input tiles that each give a 2x2
output tile: 16 matrix products of (tiles x C_in) by (C_in x C_out) instead of 36, so 2.25x
fewer multiply-adds (Lavin & Gray, "Fast Algorithms for Convolutional Neural Networks", CVPR
2016). The weights of the loss network never change, so their transform is computed once. The
input gradient is the same convolution with the weight flipped and transposed, whose transform
is the forward one transposed, with the 4x4 tile positions permuted: the tiles are transformed
into the permuted positions instead, so no second transform is made.

The tile transforms are elementwise passes over the input and output, so the scheme pays only
where the matrix products dominate: many channels on small maps. Rows of tiles are processed a
block at a time, so that the transformed tiles stay small at any input size. Where mmperc's C++
extension is built, the loss network runs these tile transforms there instead, with the same
weight transform (:mod:`.winograd_f4`, :func:`.class_maps.plan_conv`); this PyTorch path is the
one without it.
"""
from typing import Optional, Sequence

import torch
from torch import Tensor

# F(2, 3): y = A^T [(G g) * (B^T d)], d the 4 inputs, g the 3 weights, y the 2 outputs
_G = ((1.0, 0.0, 0.0), (0.5, 0.5, 0.5), (0.5, -0.5, 0.5), (0.0, 0.0, 1.0))
#: Flipping the 3 weights permutes G's rows: 0 <-> 3 (rows 1 and 2 are symmetric).
_FLIP = (3, 1, 2, 0)
#: Bytes of transformed tiles (input or output) per block of tile rows (1-4 MiB measured slower:
#: smaller matrix products; 64 MiB slower at 512-769-pixel inputs).
BLOCK_BYTES = 8 * 2**20
#: Fewest input and output channels for which the loss network uses it. Measured against oneDNN's
#: direct channels-last convolution (2-core AVX2 CPU, batch 2, forward and input gradient, maps
#: of 16-128 pixels): 1.2-1.7x from 256 channels, 0.9-1.1x with 128, 0.6x with 64. On a 2-core
#: AVX-512 Xeon (the default loss's layers at 256x256 input): 1.12-1.14x at 256 -> 512, 1.44-1.64x
#: at 512 -> 512, 0.92x at 128 -> 256, 0.46-0.55x at 64 -> 128.
MIN_CHANNELS = 256


def transform_weight(weight: Tensor) -> Tensor:
    """``(C_out, C_in, 3, 3)`` -> ``U = G g G^T`` as ``(16, C_in, C_out)`` (computed in float64)."""
    return transform_with(weight, _G, 'F(2x2, 3x3)')


def transform_with(weight: Tensor, g: Sequence[Sequence[float]], name: str) -> Tensor:
    """``U = G g G^T`` of a ``(C_out, C_in, 3, 3)`` weight for the Winograd algorithm ``name``
    whose ``G`` is ``g`` (t x 3), as ``(t * t, C_in, C_out)``, computed in float64."""
    if weight.shape[-2:] != (3, 3):
        raise ValueError(f'Winograd {name} needs a 3x3 kernel, but got {tuple(weight.shape)}')
    g = torch.tensor(g, dtype=torch.float64, device=weight.device)
    u = torch.einsum('ai,kcij,bj->abck', g, weight.to(torch.float64), g)
    return u.reshape(len(g)**2, weight.shape[1], weight.shape[0]).to(weight.dtype).contiguous()


def _tile_transform(d: Sequence[Tensor], out: Sequence[Tensor]) -> None:
    """``B^T d`` along the 4 inputs ``d[0..3]`` of every tile, written to ``out[0..3]``."""
    torch.sub(d[0], d[2], out=out[0])
    torch.add(d[1], d[2], out=out[1])
    torch.sub(d[2], d[1], out=out[2])
    torch.sub(d[1], d[3], out=out[3])


def _output_transform(m: Sequence[Tensor], out0: Tensor, out1: Tensor) -> None:
    """``A^T m`` along the 4 products ``m[0..3]``: the two outputs of every tile."""
    torch.add(m[0], m[1], out=out0).add_(m[2])
    torch.sub(m[1], m[2], out=out1).sub_(m[3])


def winograd_conv3x3(x: Tensor, u: Tensor, transpose: bool = False,
                     block_rows: Optional[int] = None) -> Tensor:
    """``conv2d(x, weight, padding=1)`` from ``u = transform_weight(weight)``, or with
    ``transpose`` its input gradient (``x`` then is the output's gradient).

    Args:
        x (Tensor): ``(N, C_in, H, W)`` (``C_out`` channels with ``transpose``), best
            channels-last (the tiles are read along the channels).
        u (Tensor): ``(16, C_in, C_out)`` weight transform.
        transpose (bool): Convolve with the flipped, transposed weight.
            Defaults to False.
        block_rows (int, optional): Tile rows per block. None sizes blocks to
            :data:`BLOCK_BYTES`.

    Returns:
        Tensor: ``(N, C_out, H, W)`` (``C_in`` with ``transpose``), channels-last.
    """
    if transpose:
        u, order = u.transpose(1, 2), _FLIP
    else:
        order = (0, 1, 2, 3)
    n, c, h, w = x.shape
    k = u.shape[-1]
    if u.shape[1] != c:
        raise ValueError(f'the weight transform takes {u.shape[1]} channels, but x has {c}')
    if x.numel() == 0 or k == 0:  # an empty batch, map or channels: nothing to tile
        return x.new_zeros(n, k, h, w).contiguous(memory_format=torch.channels_last)
    th, tw = (h + 1) // 2, (w + 1) // 2
    # (N, 2*th + 2, 2*tw + 2, C): the padding of the convolution, and an odd edge's tile; only
    # the border is zeroed (F.pad fills the whole tensor first)
    xp = x.new_empty(n, 2 * th + 2, 2 * tw + 2, c)
    xp[:, 1:h + 1, 1:w + 1] = x.permute(0, 2, 3, 1)
    for border in (xp[:, :1], xp[:, h + 1:], xp[:, 1:h + 1, :1], xp[:, 1:h + 1, w + 1:]):
        border.zero_()
    out = x.new_empty(n, 2 * th, 2 * tw, k)
    if block_rows is None:
        block_rows = max(1, BLOCK_BYTES // (16 * n * tw * max(c, k) * x.element_size()))
    block_rows = min(block_rows, th)
    rows = x.new_empty(4, n, block_rows, 2 * tw + 2, c)
    tiles = x.new_empty(4, 4, n, block_rows, tw, c)
    half = x.new_empty(4, n, block_rows, 2, tw, k)
    for r0 in range(0, th, block_rows):
        r = min(block_rows, th - r0)
        t, v, s = rows[:, :, :r], tiles[:, :, :, :r], half[:, :, :r]
        _tile_transform([xp[:, 2 * r0 + i:2 * (r0 + r) + i:2] for i in range(4)], [t[j] for j in order])
        v_cols = v.transpose(0, 1)
        _tile_transform([t[:, :, :, i:i + 2 * tw:2] for i in range(4)], [v_cols[j] for j in order])
        m = torch.bmm(v.reshape(16, n * r * tw, c), u).view(4, 4, n, r, tw, k)
        _output_transform([m[j] for j in order], s[:, :, :, 0], s[:, :, :, 1])
        y = out[:, 2 * r0:2 * (r0 + r)].view(n, r, 2, tw, 2, k)
        _output_transform([s[j] for j in order], y[..., 0, :], y[..., 1, :])
    if 2 * th != h or 2 * tw != w:
        out = out[:, :h, :w].contiguous()
    return out.permute(0, 3, 1, 2)
