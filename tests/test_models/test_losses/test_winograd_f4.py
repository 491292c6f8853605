from fractions import Fraction
from pathlib import Path
from typing import Callable, Optional

import pytest
import torch
import torch.nn.functional as F
from torch.nn.grad import conv2d_input

from mmperc.models import RandomVGG
from mmperc.models.losses import max_pool_relu, winograd_f4
from mmperc.models.losses.winograd import transform_weight as transform_f2
from mmperc.models.losses.winograd_f4 import (_matrices, f2_matrices, tile_transforms_source, transform_weight,
                                              winograd_f4_conv3x3, winograd_f4_conv3x3_max_pool,
                                              winograd_f4_input_grad, winograd_f4_input_grad_unpool)

needs_ext = pytest.mark.skipif(not winograd_f4.available(), reason='the C++ extension is not built')
HEADER = Path(winograd_f4.__file__).parent / 'csrc' / 'winograd_f4_tiles.h'


def test_matrices_compute_the_correlation_exactly():
    """A^T [(G g) * (B^T d)] == sum_k d[i + k] g[k], in exact rational arithmetic."""
    a_t, g, b_t = _matrices()
    d = [Fraction(v) for v in (3, -1, 4, 1, -5, 9)]
    w = [Fraction(v) for v in (2, -7, 1)]
    gw = [sum(g[j][k] * w[k] for k in range(3)) for j in range(6)]
    bd = [sum(b_t[j][l] * d[l] for l in range(6)) for j in range(6)]
    y = [sum(a_t[i][j] * gw[j] * bd[j] for j in range(6)) for i in range(4)]
    assert y == [sum(d[i + k] * w[k] for k in range(3)) for i in range(4)]


def test_f2_matrices_compute_the_correlation_exactly():
    """The F(2x2, 3x3) matrices the C++ transforms are generated from: those of the PyTorch path."""
    a_t, g, b_t = f2_matrices()
    d = [Fraction(v) for v in (3, -1, 4, 1)]
    w = [Fraction(v) for v in (2, -7, 1)]
    gw = [sum(g[j][k] * w[k] for k in range(3)) for j in range(4)]
    bd = [sum(b_t[j][l] * d[l] for l in range(4)) for j in range(4)]
    y = [sum(a_t[i][j] * gw[j] * bd[j] for j in range(4)) for i in range(2)]
    assert y == [sum(d[i + k] * w[k] for k in range(3)) for i in range(2)]


def test_committed_tile_header_is_the_generated_one():
    assert HEADER.read_text() == tile_transforms_source(), \
        'regenerate: python -m mmperc.models.losses.winograd_f4 > ' + str(HEADER)


def _inputs(c_in: int, c_out: int, size, seed: int = 0, channels_last: bool = True):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(2, c_in, *size, generator=g)
    w = torch.randn(c_out, c_in, 3, 3, generator=g) * (2 / (9 * c_in))**0.5
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    return x, w


def _rel(out: torch.Tensor, ref: torch.Tensor) -> float:
    return float((out.double() - ref).abs().max() / ref.abs().max())


#: The weight transforms whose tiles the C++ extension transforms: F(4x4, 3x3)'s and F(2x2, 3x3)'s
TRANSFORMS = {'f4': transform_weight, 'f2': transform_f2}


@needs_ext
@pytest.mark.parametrize('size', [(8, 8), (7, 9), (1, 1), (2, 5), (13, 4)])
@pytest.mark.parametrize('block_rows', [None, 1, 2])
@pytest.mark.parametrize('channels', [(5, 6), (20, 33)])  # not multiples of the kernel's 16 channels
@pytest.mark.parametrize('kind', ['f4', 'f2'])
def test_forward_and_input_gradient_equal_direct_convolution(size, block_rows, channels, kind, simd_level):
    """Float32 against float64's direct convolution: odd sizes, partial tiles, blocks; F(4x4, 3x3)
    and F(2x2, 3x3)."""
    x, w = _inputs(*channels, size)
    u = TRANSFORMS[kind](w)
    out = winograd_f4_conv3x3(x, u, block_rows=block_rows)
    assert out.is_contiguous(memory_format=torch.channels_last) and out.shape == (2, channels[1], *size)
    assert _rel(out, F.conv2d(x.double(), w.double(), padding=1)) < 1e-5
    grad = torch.randn(2, channels[1], *size, generator=torch.Generator().manual_seed(1))
    grad_in = winograd_f4_input_grad(grad, u, block_rows=block_rows)
    assert grad_in.shape == x.shape
    assert _rel(grad_in, conv2d_input(x.shape, w.double(), grad.double(), padding=1)) < 1e-5


@needs_ext
def test_layer_sized_error_is_near_the_direct_convolutions(simd_level):
    """The loss network's case (post-ReLU input, the paper's init, 256 channels): rms error
    within 5x of oneDNN's own float32 convolution's."""
    x, w = _inputs(256, 256, (16, 20))
    x = x.relu()
    ref = F.conv2d(x.double(), w.double(), padding=1)
    rms = lambda out: float((out.double() - ref).pow(2).mean().sqrt() / ref.pow(2).mean().sqrt())  # noqa: E731
    assert rms(winograd_f4_conv3x3(x, transform_weight(w))) < 5 * max(rms(F.conv2d(x, w, padding=1)), 2e-7)


@needs_ext
def test_either_input_layout():
    x, w = _inputs(6, 7, (9, 10), channels_last=False)
    torch.testing.assert_close(winograd_f4_conv3x3(x, transform_weight(w)), F.conv2d(x, w, padding=1),
                               rtol=1e-5, atol=1e-5)


@needs_ext
def test_bad_inputs_raise():
    x, w = _inputs(5, 6, (8, 8))
    u = transform_weight(w)
    with pytest.raises(ValueError, match='3x3 kernel'):
        transform_weight(torch.randn(4, 3, 5, 5))
    with pytest.raises(ValueError, match='takes 5 channels'):
        winograd_f4_conv3x3(x[:, :4], u)
    with pytest.raises(ValueError, match='takes 6 channels'):
        winograd_f4_input_grad(x, u)
    with pytest.raises(ValueError, match='float32 on the CPU'):
        winograd_f4_conv3x3(x.double(), u)


@needs_ext
@pytest.mark.parametrize('name', ['input_transform', 'output_transform', 'grad_output_transform',
                                  'grad_input_transform'])
def test_kernels_check_their_tensors(name):
    """The C++ side refuses what would read or write out of bounds, for tiles of 4 outputs (36
    positions) and of 2 (16 positions)."""
    def kernel(map_, tiles, r0, m=4):  # the map is the input of the first two, the output of the others
        args = (map_, tiles) if name in ('input_transform', 'grad_output_transform') else (tiles, map_)
        return getattr(winograd_f4._ext, name)(*args, r0, m)

    good_map, good_tiles, f2_tiles = torch.zeros(1, 8, 8, 4), torch.zeros(36, 1, 2, 2, 4), torch.zeros(16, 1, 4, 4, 4)
    kernel(good_map, good_tiles, 0)
    kernel(good_map, f2_tiles, 0, 2)
    for bad_map, bad_tiles, r0, m in [(good_map, good_tiles, 1, 4),  # past the last tile row
                                      (good_map, torch.zeros(36, 1, 2, 3, 4), 0, 4),  # tile columns
                                      (good_map, torch.zeros(36, 1, 2, 2, 5), 0, 4),  # channels
                                      (good_map.double(), good_tiles.double(), 0, 4),
                                      (good_map.transpose(1, 2), good_tiles, 0, 4),
                                      (good_map, good_tiles, 0, 2),  # F(4x4)'s tiles for F(2x2)
                                      (good_map, f2_tiles, 3, 2),  # past the last tile row
                                      (good_map, f2_tiles, 0, 3)]:  # no such tiles
        with pytest.raises(RuntimeError, match=name):
            kernel(bad_map, bad_tiles, r0, m)


@needs_ext
@pytest.mark.parametrize('size', [(8, 8), (7, 9), (2, 5), (13, 4), (6, 11), (1, 4)])
@pytest.mark.parametrize('block_rows', [None, 1, 2])
@pytest.mark.parametrize('channels', [(5, 6), (20, 33)])
@pytest.mark.parametrize('kind', ['f4', 'f2'])
def test_pooled_in_the_transforms_equals_pooling_after(size, block_rows, channels, kind, simd_level):
    """The convolution pooled in its output transform, and its input gradient routed from the
    pooled gradient in the output gradient's transform, equal the convolution then the pooling
    kernel (and back), bitwise: odd sizes (rows and columns in no window), tiles holding windows
    past the pooled map, one or two tile rows per block, channels off the 16-channel blocks."""
    x, w = _inputs(*channels, size, seed=sum(size))
    u = TRANSFORMS[kind](w)
    y = winograd_f4_conv3x3(x, u, block_rows=block_rows)  # the same blocks: the same matrix products
    expected = max_pool_relu.pooled_like(y)
    expected_code = torch.empty(expected.shape, dtype=torch.uint8).contiguous(memory_format=torch.channels_last)
    max_pool_relu.max_pool_relu(y, expected, expected_code)
    code = torch.full(expected.shape, 9, dtype=torch.uint8).contiguous(memory_format=torch.channels_last)
    pooled = winograd_f4_conv3x3_max_pool(x, u, code, block_rows=block_rows)
    assert torch.equal(pooled, expected) and torch.equal(code, expected_code)
    assert torch.equal(winograd_f4_conv3x3_max_pool(x, u, block_rows=block_rows), expected)  # no codes
    g = torch.randn(expected.shape, generator=torch.Generator().manual_seed(1))
    dy = max_pool_relu.max_pool_relu_backward(g, code, y.shape)
    grad = winograd_f4_input_grad_unpool(g, code, u, x.shape, block_rows=block_rows)
    assert grad.shape == x.shape and torch.equal(grad, winograd_f4_input_grad(dy, u, block_rows=block_rows))


@needs_ext
def test_pooling_transforms_check_their_tensors():
    """The C++ side refuses pooled maps, codes or tiles that do not fit, with the kernel's name."""
    tiles, pooled = torch.zeros(36, 1, 2, 2, 4), torch.zeros(1, 4, 4, 4)
    code = torch.zeros(1, 4, 4, 4, dtype=torch.uint8)
    winograd_f4._ext.output_transform_max_pool(tiles, pooled, code, 0, 8, 8)
    winograd_f4._ext.grad_output_transform_unpool(pooled, code, tiles, 0, 8, 8)
    bad = [(tiles, torch.zeros(1, 3, 4, 4), code, 0, 8, 8),  # not the map pooled
           (tiles, pooled, code[:, :3], 0, 8, 8),  # codes of another shape
           (tiles, pooled, code.float(), 0, 8, 8),  # codes not bytes
           (tiles, pooled, code, 1, 8, 8),  # past the last tile row
           (tiles, torch.zeros(1, 6, 6, 4), torch.zeros(1, 6, 6, 4, dtype=torch.uint8), 0, 12, 12),  # more tiles
           (tiles, pooled.transpose(1, 2), code, 0, 8, 8)]
    for t, p, c, r0, h, w in bad:
        with pytest.raises(RuntimeError, match='output_transform_max_pool'):
            winograd_f4._ext.output_transform_max_pool(t, p, c, r0, h, w)
        with pytest.raises(RuntimeError, match='grad_output_transform_unpool'):
            winograd_f4._ext.grad_output_transform_unpool(p, c, t, r0, h, w)


def test_without_the_extension_a_clear_error(monkeypatch):
    monkeypatch.setattr(winograd_f4, '_ext', None)
    x, w = _inputs(5, 6, (8, 8))
    with pytest.raises(RuntimeError, match='pip install --no-build-isolation -e .'):
        winograd_f4_conv3x3(x, transform_weight(w))


def _net(**kwargs) -> RandomVGG:
    return RandomVGG(in_channels=3, num_convs=(2, 2, 1), channels=(64, 64, 256), **kwargs)


def _ops(net: RandomVGG, dtype=torch.float32):
    return [op for op, _, _ in net._plan(dtype, torch.device('cpu'), net.num_blocks)]


@needs_ext
def test_plan_uses_f4_from_64_channels_first_too_but_not_on_labels():
    """F(4x4, 3x3) from 64 channels, in the first block too (banded with its pooling), the first
    convolution included (on 64 classes or more), except on one-hot labels, whose convolution
    gathers the weight's columns."""
    assert _ops(_net()) == ['conv', 'wino4', 'max', 'out', 'wino4', 'wino4', 'max', 'out', 'wino4', 'max', 'out']
    wide = RandomVGG(in_channels=64, num_convs=(1, 1), channels=(64, 64))
    assert _ops(wide)[0] == 'wino4'
    assert wide._plan(torch.float32, torch.device('cpu'), 2, onehot=True)[0][0] == 'conv'
    assert _ops(RandomVGG(in_channels=63, num_convs=(1, 1), channels=(64, 64)))[0] == 'conv'
    assert 'wino4' not in _ops(_net(), torch.float64)
    assert 'wino4' not in _ops(_net(winograd=False))
    assert 'wino4' not in _ops(RandomVGG(in_channels=3, num_convs=(1, 1), channels=(8, 32)))


def test_plan_falls_back_to_f2_without_the_extension(monkeypatch):
    monkeypatch.setattr(winograd_f4, '_ext', None)
    ops = _ops(RandomVGG(in_channels=3, num_convs=(1, 2), channels=(64, 256)))
    assert ops == ['conv', 'max', 'out', 'conv', 'wino', 'max', 'out']  # 64 -> 256 below F(2x2, 3x3)'s 256


def _small_bands(monkeypatch, band_bytes: Optional[int]) -> None:
    """Bands of as few as 2 rows per row of reach within ``band_bytes`` (None: the defaults)."""
    from mmperc.models.losses import class_maps
    if band_bytes is not None:
        monkeypatch.setattr(class_maps, 'ROWS_PER_REACH', 2)
        monkeypatch.setattr(class_maps, 'BAND_BYTES', band_bytes)


def _assert_matches_direct(fast: RandomVGG, direct: RandomVGG, source: torch.Tensor,
                           wrap: Callable[[torch.Tensor], object] = lambda s: s) -> None:
    """The block outputs of ``fast`` on ``wrap(source)`` within float32 rounding of ``direct``'s,
    and so the gradient w.r.t. a float ``source`` of the sum of their squares."""
    grads, feats = [], []
    for net in (fast, direct):
        s = source.clone().requires_grad_() if source.is_floating_point() else source
        out = net(wrap(s))
        if s.requires_grad:
            sum(o.square().sum() for o in out).backward()
            grads.append(s.grad)
        feats.append(out)
    for a, b in zip(*feats):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5 * float(b.abs().max()))
    for a, b in zip(grads[:1], grads[1:]):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5 * float(b.abs().max()))


@needs_ext
@pytest.mark.parametrize('band_bytes', [None, 2 * 3 * 20 * 8 * 4])  # the default (one band here), or several
def test_network_matches_direct_convolutions(band_bytes, monkeypatch, simd_level):
    """Features and input gradient of a network using F(4x4, 3x3), in the banded first block too,
    within float32 rounding of the direct network's; the transforms are kept once per weight and
    dropped on a move."""
    from mmperc.models.losses import class_maps
    _small_bands(monkeypatch, band_bytes)
    fast = _net()
    x = torch.randn(2, 3, 24, 20, generator=torch.Generator().manual_seed(0))
    if band_bytes is not None:
        assert len(class_maps.ClassMaps(x).bands(1, align=2)) > 2
    _assert_matches_direct(fast, _net(winograd=False), x)
    assert sorted(op for _, op in fast._transforms) == ['wino4'] * 4
    fast.double()
    assert not fast._transforms


@needs_ext
@pytest.mark.parametrize('kind', ['softmax', 'none', 'onehot'])
@pytest.mark.parametrize('downsample', ['maxpool', 'avgpool'])  # banded with the pooling, or not
@pytest.mark.parametrize('band_bytes', [None, 2 * 64 * 20 * 8 * 4])  # one band, or several
def test_first_convolution_on_class_maps_matches_direct(kind, downsample, band_bytes, monkeypatch, simd_level):
    """With 64 classes the first convolution runs F(4x4, 3x3) on the activated, masked class
    maps, band by band: features and logits' gradient within float32 rounding of the direct
    network's; on one-hot labels it stays direct (its columns gathered by label)."""
    from mmperc.models.losses import class_maps
    _small_bands(monkeypatch, band_bytes)
    gen = torch.Generator().manual_seed(0)
    logits = torch.randn(2, 64, 22, 20, generator=gen).contiguous(memory_format=torch.channels_last)
    labels = torch.randint(0, 64, (2, 22, 20), generator=gen)
    valid = torch.rand(2, 22, 20, generator=gen) > 0.2
    kwargs = dict(in_channels=64, num_convs=(2, 1), channels=(64, 64), downsample=downsample)
    fast = RandomVGG(**kwargs)
    if band_bytes is not None:
        assert len(class_maps.ClassMaps(logits).bands(2, align=2)) > 2
    _assert_matches_direct(fast, RandomVGG(winograd=False, **kwargs), labels if kind == 'onehot' else logits,
                           lambda s: class_maps.ClassMaps(s, kind, valid, num_classes=64, layout=torch.channels_last))
    first = [op for i, op in fast._transforms if i == 0]
    assert first == ([] if kind == 'onehot' else ['wino4'])


@needs_ext
def test_plan_keeps_f2_for_the_largest_layers():
    """512 -> 512 layers keep F(2x2, 3x3), whose kept transform is 16/9 of the weight, not 4x."""
    net = RandomVGG(in_channels=3, num_convs=(1, 1, 2), channels=(8, 256, 512))
    assert _ops(net) == ['conv', 'max', 'out', 'conv', 'max', 'out', 'wino4', 'wino', 'max', 'out']


@pytest.mark.parametrize('shape', [(0, 5, 8, 8), (2, 5, 0, 8), (2, 5, 8, 0)])
def test_empty_inputs_give_empty_outputs(shape):
    """An empty batch or map: the shapes a direct convolution gives, no division by zero (F(2x2, 3x3) too)."""
    from mmperc.models.losses.winograd import transform_weight as transform_f2
    from mmperc.models.losses.winograd import winograd_conv3x3
    x, w = torch.zeros(shape), torch.randn(6, 5, 3, 3)
    assert winograd_conv3x3(x, transform_f2(w)).shape == (shape[0], 6, *shape[2:])
    assert winograd_conv3x3(torch.zeros(shape[0], 6, *shape[2:]), transform_f2(w), transpose=True).shape == shape
    if winograd_f4.available():
        assert winograd_f4_conv3x3(x, transform_weight(w)).shape == (shape[0], 6, *shape[2:])
        assert winograd_f4_input_grad(torch.zeros(shape[0], 6, *shape[2:]), transform_weight(w)).shape == shape
        pooled = (shape[0], 6, shape[2] // 2, shape[3] // 2)
        assert winograd_f4_conv3x3_max_pool(x, transform_weight(w)).shape == pooled
        code = torch.zeros(pooled, dtype=torch.uint8).contiguous(memory_format=torch.channels_last)
        assert winograd_f4_input_grad_unpool(torch.zeros(pooled), code, transform_weight(w), shape).shape == shape
