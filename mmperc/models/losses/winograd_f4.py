"""Winograd F(4x4, 3x3) convolution for the loss network's frozen 3x3 weights (CPU, float32).

Each 6x6 input tile gives a 4x4 output tile: 36 matrix products of (tiles x C_in) by
(C_in x C_out) instead of 144, 4x fewer multiply-adds than the direct convolution (F(2x2, 3x3):
2.25x). Its tile transforms have more terms per element, so in eager PyTorch they cost what the
products save; here they run in C++ (``csrc/winograd_f4.cpp``, built by ``pip install
--no-build-isolation -e .``), one pass over memory per block of tile rows, and :func:`available`
says whether that build is importable (else the loss network keeps F(2x2, 3x3), :mod:`.winograd`).

The same C++ passes run F(2x2, 3x3) (4x4 input tiles, 2x2 outputs) from :mod:`.winograd`'s weight
transform: every function here takes either transform (36 or 16 positions). A convolution
followed by a 2x2 max pooling can pool in its output transform
(:func:`winograd_f4_conv3x3_max_pool`): a tile holds its pooling windows whole, so the outputs
are never written, and its backward makes the output gradient's tiles from the pooled gradient
and the pooling's codes (:func:`winograd_f4_input_grad_unpool`).

The interpolation points are (0, 1, -1, 1/2, -2, inf): float32 error about 2e-6 of the output's
rms, against about 7e-6 with the usual (0, 1, -1, 2, -2) (``benchmarks/README.md``). The input
gradient is the algorithm's own transpose, ``B [U^T (A dY A^T)] B^T`` added tile by tile, so it
uses the forward's weight transform and no second one.
"""
from fractions import Fraction
from typing import Callable, List, Optional, Sequence, Tuple

import torch
from torch import Tensor

from . import kernels
from .winograd import _G as F2_G
from .winograd import transform_with

_ext = kernels.load('_winograd_f4')  # the C++ tile transforms (setup.py), or None

_POINTS = (Fraction(0), Fraction(1), Fraction(-1), Fraction(1, 2), Fraction(-2))
#: Bytes of transformed tiles (input or output) per block of tile rows.
BLOCK_BYTES = 8 * 2**20
#: Fewest input and output channels for which the loss network uses it (below, oneDNN's direct
#: convolution; ``benchmarks/bench_winograd_layers.py`` on a 2-core Xeon, batch 2, forward / input
#: gradient: 64 -> 128 at 128x128 11.6 / 12.6 ms against 16.4 / 17.6, 128 -> 256 at 64x64 9.1 / 9.6
#: against 17.2 / 17.9).
MIN_CHANNELS = 64
#: Most input x output channels for which the loss network uses it: its weight transform, kept
#: from the first call, is 4x the weights (F(2x2, 3x3)'s 16/9). 512 -> 512 layers (36 MiB each
#: in F(4x4, 3x3)) keep F(2x2, 3x3): VGG16's kept transforms 124 MiB instead of 224 MiB.
MAX_CHANNEL_PRODUCT = 256 * 512


def available() -> bool:
    """Whether the C++ tile transforms are built."""
    return _ext is not None


def _matrices() -> Tuple[List[List[Fraction]], List[List[Fraction]], List[List[Fraction]]]:
    """``A^T`` (4x6), ``G`` (6x3), ``B^T`` (6x6) of Toom-Cook F(4, 3) on :data:`_POINTS`
    and infinity, exact: ``A^T [(G g) * (B^T d)]`` is the correlation of 6 inputs ``d`` with
    3 weights ``g``."""
    pts = _POINTS
    a_t = [[p**i for p in pts] + [Fraction(int(i == 3))] for i in range(4)]
    scale = [1 / _prod(p - q for q in pts if q != p) for p in pts]
    g = [[p**k * s for k in range(3)] for p, s in zip(pts, scale)] + [[Fraction(0), Fraction(0), Fraction(1)]]
    # B^T's row j: the coefficients of prod_{q != p_j} (x - q), lowest power first; for
    # infinity, those of prod_q (x - q)
    b_t = []
    for j in range(6):
        roots = [q for i, q in enumerate(pts) if i != j] if j < 5 else list(pts)
        coeffs = _poly(roots)  # lowest power first, degree 4 or 5
        coeffs = coeffs + [Fraction(0)] * (6 - len(coeffs))
        b_t.append(coeffs)
    return a_t, g, b_t


def _prod(values) -> Fraction:
    out = Fraction(1)
    for v in values:
        out *= v
    return out


def _poly(roots: Sequence[Fraction]) -> List[Fraction]:
    """Coefficients of ``prod (x - r)``, lowest power first."""
    coeffs = [Fraction(1)]
    for r in roots:
        coeffs = [(coeffs[i - 1] if i > 0 else 0) - r * (coeffs[i] if i < len(coeffs) else 0)
                  for i in range(len(coeffs) + 1)]
    return coeffs


def _term(coeff: Fraction, operand: str) -> str:
    """``+ coeff * operand`` as C++ (no product for +-1)."""
    sign = '-' if coeff < 0 else '+'
    return f'{sign}{operand}' if abs(coeff) == 1 else f'{sign}{float(abs(coeff))!r}f*{operand}'


def _transform_2d(name: str, m: List[List[Fraction]]) -> List[str]:
    """C++ for ``out = M in M^T`` over ``L`` channels, ``in`` (k x k) -> ``out`` (r x r), M r x k."""
    rows, k = len(m), len(m[0])
    lines = [f'MMPERC_INLINE void {name}(const float (*in)[L], float (*out)[L]) {{', f'  float t[{rows * k}][L];']
    for a in range(rows):  # t = M in: along the tile's rows
        for j in range(k):
            expr = ''.join(_term(m[a][i], f'in[{i * k + j}][c]') for i in range(k) if m[a][i] != 0)
            lines.append(f'  for (int c = 0; c < L; ++c) t[{a * k + j}][c] = {expr.lstrip("+")};')
    for a in range(rows):  # out = t M^T: along its columns
        for b in range(rows):
            expr = ''.join(_term(m[b][j], f't[{a * k + j}][c]') for j in range(k) if m[b][j] != 0)
            lines.append(f'  for (int c = 0; c < L; ++c) out[{a * rows + b}][c] = {expr.lstrip("+")};')
    return lines + ['}']


def f2_matrices() -> Tuple[List[List[Fraction]], List[List[Fraction]], List[List[Fraction]]]:
    """``A^T`` (2x4), ``G`` (4x3), ``B^T`` (4x4) of F(2, 3), those of :mod:`.winograd` (whose weight
    transform the C++ F(2x2, 3x3) shares), exact."""
    f = [[Fraction(v) for v in row] for row in ((1, 1, 1, 0), (0, 1, -1, -1))]
    g = [[Fraction(v) for v in row] for row in F2_G]
    b_t = [[Fraction(v) for v in row] for row in ((1, 0, -1, 0), (0, 1, 1, 0), (0, -1, 1, 0), (0, 1, 0, -1))]
    return f, g, b_t


def tile_transforms_source() -> str:
    """The C++ of the four tile transforms of F(4x4, 3x3) and of F(2x2, 3x3) (names ending in 2),
    ``csrc/winograd_f4_tiles.h`` (a test keeps the two equal; write it with ``python -m
    mmperc.models.losses.winograd_f4``)."""
    lines = ['// Generated by `python -m mmperc.models.losses.winograd_f4 > THIS_FILE`: do not edit.',
             '// Winograd F(4x4, 3x3) tile transforms on points (0, 1, -1, 1/2, -2, inf), and F(2x2, 3x3)\'s',
             '// (names ending in 2), L channels at a time.', '#pragma once', '', '#include "simd_levels.h"', '']
    for suffix, (a_t, _, b_t) in (('', _matrices()), ('2', f2_matrices())):
        a = [list(col) for col in zip(*a_t)]
        b = [list(col) for col in zip(*b_t)]
        for name, m in (('input_tf', b_t), ('output_tf', a_t), ('grad_output_tf', a), ('grad_input_tf', b)):
            lines += _transform_2d(name + suffix, m) + ['']
    return '\n'.join(lines)


def transform_weight(weight: Tensor) -> Tensor:
    """``(C_out, C_in, 3, 3)`` -> ``U = G g G^T`` as ``(36, C_in, C_out)`` (computed in float64)."""
    return transform_with(weight, [[float(v) for v in row] for row in _matrices()[1]], 'F(4x4, 3x3)')


#: Outputs per side of a tile, by the positions of a weight transform: F(4x4, 3x3), F(2x2, 3x3)
_TILE = {36: 4, 16: 2}


def _blocks(n: int, th: int, tw: int, channels: int, positions: int, block_rows: Optional[int]) -> int:
    if block_rows is None:
        block_rows = max(1, BLOCK_BYTES // (positions * n * tw * channels * 4))
    return max(1, min(block_rows, th))


def _check(x: Tensor, u: Tensor, channels: int) -> int:
    """Refuse what the C++ transforms do not take; the outputs per side of ``u``'s tiles."""
    if _ext is None:
        raise RuntimeError('Winograd F(4x4, 3x3) needs mmperc\'s C++ extension: run `pip install '
                           '--no-build-isolation -e .` in the mmperc checkout (needs a C++ compiler)')
    if x.dtype != torch.float32 or u.dtype != torch.float32 or x.device.type != 'cpu':
        raise ValueError(f'Winograd F(4x4, 3x3) runs float32 on the CPU, but got {x.dtype} on {x.device}')
    if x.dim() != 4 or u.dim() != 3 or u.shape[0] not in _TILE or x.shape[1] != channels:
        raise ValueError(f'the weight transform {tuple(u.shape)} (36 or 16 positions) takes {channels} channels, '
                         f'but x has shape {tuple(x.shape)}')
    return _TILE[u.shape[0]]


def _by_tile_rows(shape: Sequence[int], u: Tensor, to_tiles: Callable[[Tensor, int], None],
                  from_tiles: Callable[[Tensor, int], None], block_rows: Optional[int]) -> None:
    """Blocks of tile rows of a map of ``shape`` (N, C, H, W), in tiles of ``m x m`` outputs (``u``
    (T * T, C, K), T = m + 2: 36 positions for F(4x4, 3x3), 16 for F(2x2, 3x3)): ``to_tiles(v,
    r0)`` writes the block's tiles ``v`` (T * T, N, R, TW, C) from tile row ``r0`` on, the T * T
    products with ``u`` are taken, and ``from_tiles(p, r0)`` reads them back (T * T, N, R, TW, K)."""
    n, c, h, w = shape
    t, k = u.shape[0], u.shape[2]
    m = _TILE[t]
    if n * c * h * w == 0 or k == 0:  # nothing to transform (an empty batch, map or channels)
        return
    th, tw = (h + m - 1) // m, (w + m - 1) // m
    rows = _blocks(n, th, tw, max(c, k), t, block_rows)
    tiles = u.new_empty(t * n * rows * tw * c)
    products = u.new_empty(t * n * rows * tw * k)
    for r0 in range(0, th, rows):
        r = min(rows, th - r0)
        v = tiles[:t * n * r * tw * c].view(t, n, r, tw, c)
        p = products[:t * n * r * tw * k].view(t, n, r, tw, k)
        to_tiles(v, r0)
        torch.bmm(v.view(t, -1, c), u, out=p.view(t, -1, k))
        from_tiles(p, r0)


def _nhwc(x: Tensor) -> Tensor:
    """``x`` (N, C, H, W) as a contiguous (N, H, W, C) tensor (a view when it is channels-last)."""
    return x.permute(0, 2, 3, 1).contiguous()


def winograd_f4_conv3x3(x: Tensor, u: Tensor, block_rows: Optional[int] = None) -> Tensor:
    """``conv2d(x, weight, padding=1)`` from ``u = transform_weight(weight)``.

    Args:
        x (Tensor): ``(N, C_in, H, W)`` float32 on the CPU, best channels-last.
        u (Tensor): ``(36, C_in, C_out)`` weight transform (:func:`transform_weight`), or
            ``(16, C_in, C_out)``, F(2x2, 3x3)'s (:func:`.winograd.transform_weight`), whose tile
            transforms the C++ extension runs too.
        block_rows (int, optional): Tile rows per block. None sizes blocks to
            :data:`BLOCK_BYTES`.

    Returns:
        Tensor: ``(N, C_out, H, W)``, channels-last.
    """
    m = _check(x, u, u.shape[1])
    n, _, h, w = x.shape
    src, out = _nhwc(x), x.new_empty(n, h, w, u.shape[2])
    _by_tile_rows(x.shape, u, lambda v, r0: _ext.input_transform(src, v, r0, m),
                  lambda p, r0: _ext.output_transform(p, out, r0, m), block_rows)
    return out.permute(0, 3, 1, 2)


def winograd_f4_conv3x3_max_pool(x: Tensor, u: Tensor, code: Optional[Tensor] = None,
                                 block_rows: Optional[int] = None) -> Tensor:
    """``relu(max_pool2d(conv2d(x, weight, padding=1), 2, 2))``, the convolution's outputs pooled
    as its output transform makes them, never written whole; with ``code`` (uint8, the pooled
    shape, channels-last), each pooled output's code (:mod:`.max_pool_relu`) written there.
    Arguments as :func:`winograd_f4_conv3x3`; returns ``(N, C_out, H // 2, W // 2)``, channels-last."""
    m = _check(x, u, u.shape[1])
    n, _, h, w = x.shape
    src, pooled = _nhwc(x), x.new_empty(n, h // 2, w // 2, u.shape[2])
    codes = None if code is None else code.permute(0, 2, 3, 1)
    _by_tile_rows(x.shape, u, lambda v, r0: _ext.input_transform(src, v, r0, m),
                  lambda p, r0: _ext.output_transform_max_pool(p, pooled, codes, r0, h, w, m), block_rows)
    return pooled.permute(0, 3, 1, 2)


def winograd_f4_input_grad(grad: Tensor, u: Tensor, block_rows: Optional[int] = None) -> Tensor:
    """The input gradient of :func:`winograd_f4_conv3x3`, given its output's ``grad``
    ``(N, C_out, H, W)``; ``(N, C_in, H, W)``, channels-last. The same convolution with the flipped,
    transposed weight, computed as the transpose of the forward's tile algorithm."""
    m = _check(grad, u, u.shape[2])
    n, _, h, w = grad.shape
    src = _nhwc(grad)
    out = grad.new_zeros(n, h, w, u.shape[1])  # the tiles overlap: their gradients are added
    _by_tile_rows((n, u.shape[2], h, w), u.transpose(1, 2), lambda v, r0: _ext.grad_output_transform(src, v, r0, m),
                  lambda p, r0: _ext.grad_input_transform(p, out, r0, m), block_rows)
    return out.permute(0, 3, 1, 2)


def winograd_f4_input_grad_unpool(grad: Tensor, code: Tensor, u: Tensor, shape: Sequence[int],
                                  block_rows: Optional[int] = None) -> Tensor:
    """The input gradient (of ``shape``, N x C_in x H x W) of :func:`winograd_f4_conv3x3_max_pool`
    from its pooled output's ``grad`` and ``code``, routed to the tiles of the convolution's
    output gradient as they are made, which is never written whole; channels-last."""
    m = _check(grad, u, u.shape[2])
    n, _, h, w = shape
    src, codes = _nhwc(grad), code.permute(0, 2, 3, 1)
    out = grad.new_zeros(n, h, w, u.shape[1])
    _by_tile_rows((n, u.shape[2], h, w), u.transpose(1, 2),
                  lambda v, r0: _ext.grad_output_transform_unpool(src, codes, v, r0, h, w, m),
                  lambda p, r0: _ext.grad_input_transform(p, out, r0, m), block_rows)
    return out.permute(0, 3, 1, 2)


if __name__ == '__main__':
    print(tile_transforms_source(), end='')
