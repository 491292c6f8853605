"""The C++ ReLU + 2x2 max pooling kernel: PyTorch's values, argmax and gradient, one byte kept."""
import pytest
import torch
import torch.nn.functional as F

from mmperc.models import RandomVGG
from mmperc.models.losses import class_maps, embed_function, max_pool_relu, winograd_f4
from mmperc.models.losses.class_maps import ClassMaps
from mmperc.models.losses.max_pool_relu import NO_GRADIENT, pool, pop_routing, unpool

needs_ext = pytest.mark.skipif(not max_pool_relu.available(), reason='the C++ extension is not built')
CL = torch.channels_last


def _codes_of(x: torch.Tensor):
    """The kernel's output and codes for channels-last ``x``."""
    out = max_pool_relu.pooled_like(x)
    code = torch.empty(out.shape, dtype=torch.uint8, memory_format=CL)
    max_pool_relu.max_pool_relu(x, out, code)
    return out, code


def _pytorch(x: torch.Tensor, g: torch.Tensor):
    """PyTorch's relu(max_pool2d(x)), its argmax, and the gradient of (output * g).sum(), the
    ReLU's gradient taken where the output is positive (none at NaN, as in the loss's PyTorch
    path; autograd's ReLU would pass it)."""
    x = x.detach().requires_grad_()
    pooled, indices = F.max_pool2d(x, 2, 2, return_indices=True)
    (torch.where(pooled > 0, pooled, 0) * g).sum().backward()
    return pooled.detach().relu(), indices, x.grad


@needs_ext
@pytest.mark.parametrize('shape', [(2, 16, 8, 8), (1, 7, 5, 9), (2, 37, 11, 6), (3, 64, 2, 3), (1, 3, 3, 2)])
@pytest.mark.parametrize('values', ['normal', 'ties', 'nan'])
def test_equals_pytorch(shape, values, simd_level):
    """Output, argmax (the first of equal maxima in row-major order, NaN winning) and gradient of
    PyTorch's ops, bitwise: channel counts off the kernel's 16-channel blocks, odd heights and
    widths (the last row and column in no window: gradient 0), ties (integer values) and NaN.
    The code is 4 exactly where PyTorch's output is not positive."""
    g = torch.Generator().manual_seed(sum(shape))
    x = torch.randn(shape, generator=g)
    if values == 'ties':
        x = torch.randint(-1, 2, shape, generator=g).float()
    elif values == 'nan':
        x[torch.rand(shape, generator=g) < 0.1] = float('nan')
    x = x.contiguous(memory_format=CL)
    out, code = _codes_of(x)
    grad = torch.randn(out.shape, generator=g).contiguous(memory_format=CL)
    expected, indices, expected_grad = _pytorch(x, grad)
    torch.testing.assert_close(out, expected, rtol=0, atol=0, equal_nan=True)
    assert torch.equal(code != NO_GRADIENT, expected > 0)
    w = shape[-1]
    local = (indices // w % 2 * 2 + indices % w % 2).to(torch.uint8)
    assert torch.equal(code[code != NO_GRADIENT], local[code != NO_GRADIENT])
    dx = torch.full(shape, float('nan')).contiguous(memory_format=CL)  # every element must be written
    max_pool_relu.max_pool_relu_backward(grad, code, shape, out=dx)
    assert torch.equal(dx, expected_grad)
    without = max_pool_relu.max_pool_relu(x)  # no codes: the same output
    torch.testing.assert_close(without, expected, rtol=0, atol=0, equal_nan=True)


@needs_ext
def test_bands_of_rows_in_place(simd_level):
    """A band of rows of a channels-last map (its batch and row strides those of the whole map),
    pooled into, and routed back from, rows of larger tensors, leaving the others untouched."""
    x = torch.randn(2, 24, 12, 10).contiguous(memory_format=CL)
    out = torch.zeros(2, 24, 6, 5).contiguous(memory_format=CL)
    code = torch.zeros(out.shape, dtype=torch.uint8).contiguous(memory_format=CL)
    max_pool_relu.max_pool_relu(x[:, :, 4:8], out[:, :, 2:4], code[:, :, 2:4])
    whole, whole_code = _codes_of(x)
    assert torch.equal(out[:, :, 2:4], whole[:, :, 2:4]) and torch.equal(code[:, :, 2:4], whole_code[:, :, 2:4])
    assert not out[:, :, :2].any() and not out[:, :, 4:].any() and not code[:, :, :2].any()
    grad = torch.randn(whole.shape).contiguous(memory_format=CL)
    dx = torch.full((2, 24, 12, 10), 7.0).contiguous(memory_format=CL)
    max_pool_relu.max_pool_relu_backward(grad[:, :, 2:4], whole_code[:, :, 2:4], (2, 24, 4, 10), out=dx[:, :, 4:8])
    expected = max_pool_relu.max_pool_relu_backward(grad, whole_code, x.shape)
    assert torch.equal(dx[:, :, 4:8], expected[:, :, 4:8]) and (dx[:, :, :4] == 7).all() and (dx[:, :, 8:] == 7).all()


@needs_ext
def test_bad_input_raises():
    """Maps whose rows are not channels-last, another dtype, or an output of the wrong size are
    refused with the reason, never read out of bounds."""
    x = torch.randn(1, 8, 4, 4)
    with pytest.raises(RuntimeError, match='channels-last rows'):
        max_pool_relu.max_pool_relu(x.contiguous(), torch.empty(1, 8, 2, 2).contiguous(memory_format=CL))
    with pytest.raises(RuntimeError, match='Float'):
        max_pool_relu.max_pool_relu(x.double().contiguous(memory_format=CL))
    with pytest.raises(RuntimeError, match='pooled'):
        max_pool_relu.max_pool_relu(x.contiguous(memory_format=CL),
                                    torch.empty(1, 8, 3, 2).contiguous(memory_format=CL))
    code = torch.zeros(1, 8, 2, 2, dtype=torch.uint8).contiguous(memory_format=CL)
    with pytest.raises(RuntimeError, match='pooled'):
        max_pool_relu.max_pool_relu_backward(torch.zeros(1, 8, 2, 2).contiguous(memory_format=CL), code, (1, 8, 6, 4))


def test_takes_cpu_float32_channels_last_rows_only():
    """The kernel runs where it is built, on float32 CPU maps with channels-last rows; PyTorch's
    ops (argmax and mask kept) everywhere else, with the same values."""
    x = torch.randn(2, 8, 6, 6).contiguous(memory_format=CL)
    assert max_pool_relu.takes(x) == max_pool_relu.available()
    assert max_pool_relu.takes(x[:, :, 2:4]) == max_pool_relu.available()
    assert not max_pool_relu.takes(x.contiguous()) and not max_pool_relu.takes(x.bfloat16())
    assert not max_pool_relu.takes(x.double())
    for maps in (x, x.contiguous(), x.double()):
        saved = []
        out = pool(maps, saved)
        routing = pop_routing(saved)
        assert not saved and len(routing) == (1 if max_pool_relu.takes(maps) else 2)
        torch.testing.assert_close(out, F.max_pool2d(maps, 2, 2).relu(), rtol=0, atol=0)
        grad = torch.randn(out.shape, dtype=out.dtype)
        expected = _pytorch(maps, grad)[2]
        assert torch.equal(unpool(grad, routing, maps.shape), expected)


@needs_ext
@pytest.mark.parametrize('num_convs', [(1, 1, 1), (2, 2, 1)])
@pytest.mark.parametrize('banded', [False, True])
@pytest.mark.parametrize('logits', ['random', 'regions'])
@pytest.mark.parametrize('channels', [(16, 24, 32), (64, 64, 128)])
def test_network_equals_pytorch_pooling(num_convs, banded, logits, channels, monkeypatch, simd_level):
    """The loss network's features and input gradient in float32 are those of PyTorch's pooling
    (the kernel monkeypatched away), bitwise: with the first block banded or whole, one or two
    convolutions in it, logits constant over regions (as a one-hot target is), which tie
    windows, and (64 channels) F(4x4, 3x3) convolutions that pool in their output transform."""
    g = torch.Generator().manual_seed(3)
    net = RandomVGG(in_channels=5, num_convs=num_convs, channels=channels)
    if banded:
        monkeypatch.setattr(class_maps, 'BAND_BYTES', 2 * 5 * 30 * 4 * 8)
    assert (len(ClassMaps(torch.zeros(2, 5, 30, 30)).bands(1, align=2)) > 1) == banded
    if logits == 'regions':
        labels = torch.randint(0, 5, (2, 5, 5), generator=g).repeat_interleave(6, 1).repeat_interleave(6, 2)
        source = F.one_hot(labels, 5).permute(0, 3, 1, 2).float() * 4
    else:
        source = torch.randn(2, 5, 30, 30, generator=g)
    results, pooled_in_transform = [], []
    real = embed_function.winograd_f4_conv3x3_max_pool
    monkeypatch.setattr(embed_function, 'winograd_f4_conv3x3_max_pool',
                        lambda *args, **kwargs: pooled_in_transform.append(1) or real(*args, **kwargs))
    for ext in (max_pool_relu._ext, None):
        monkeypatch.setattr(max_pool_relu, '_ext', ext)
        x = source.clone().requires_grad_()
        feats = net(ClassMaps(x, 'softmax'))
        sum((f * (i + 1)).sum() for i, f in enumerate(feats)).backward()
        with torch.no_grad():  # as the target runs: no codes
            assert all(torch.equal(a, b) for a, b in zip(net(ClassMaps(source, 'softmax')), feats))
        results.append(feats + [x.grad])
    for a, b in zip(*results):
        assert torch.equal(a, b)
    assert bool(pooled_in_transform) == (channels[1] == 64 and winograd_f4.available())


@needs_ext
def test_simd_level_is_checked():
    """Only the versions this CPU runs can be chosen, with the reason."""
    for bad in (-1, 2):
        with pytest.raises(RuntimeError, match='x86-64-v3'):
            max_pool_relu._ext.set_simd_level(bad)
    assert max_pool_relu._ext.simd_level() in (0, 1)


@needs_ext
@pytest.mark.parametrize('size', [2, 3])
def test_first_block_pooled_to_one_pixel(size, monkeypatch):
    """A first block pooled to 1x1 (its map both channels-last and NCHW): the codes stay
    channels-last rows for the kernel (a review found this raising), and the gradient is that of
    PyTorch's pooling."""
    net = RandomVGG(in_channels=3, num_convs=(2, ), channels=(16, ))
    source = torch.randn(2, 3, size, size, generator=torch.Generator().manual_seed(size))
    grads = []
    for ext in (max_pool_relu._ext, None):
        monkeypatch.setattr(max_pool_relu, '_ext', ext)
        x = source.clone().requires_grad_()
        net(x)[-1].square().sum().backward()
        grads.append(x.grad)
    assert torch.equal(grads[0], grads[1])
