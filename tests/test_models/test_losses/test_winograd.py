import pytest
import torch
import torch.nn.functional as F
from torch.nn.grad import conv2d_input

from mmperc.models import RandomVGG
from mmperc.models.losses import winograd_f4
from mmperc.models.losses.winograd import MIN_CHANNELS, transform_weight, winograd_conv3x3


def _inputs(c_in: int, c_out: int, size, dtype=torch.float64, channels_last: bool = True):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(2, c_in, *size, generator=g, dtype=dtype)
    w = torch.randn(c_out, c_in, 3, 3, generator=g, dtype=dtype)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    return x, w


@pytest.mark.parametrize('size', [(8, 8), (7, 9), (1, 1), (2, 5)])
@pytest.mark.parametrize('block_rows', [None, 1, 3])
@pytest.mark.parametrize('channels_last', [True, False])
def test_equals_direct_convolution(size, block_rows, channels_last):
    """In float64 the algorithm is exact up to rounding: odd sizes, blocks, either layout."""
    x, w = _inputs(5, 6, size, channels_last=channels_last)
    out = winograd_conv3x3(x, transform_weight(w), block_rows=block_rows)
    assert out.is_contiguous(memory_format=torch.channels_last)
    torch.testing.assert_close(out, F.conv2d(x, w, padding=1), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize('size', [(8, 8), (7, 9)])
@pytest.mark.parametrize('block_rows', [None, 2])
def test_transpose_equals_input_gradient(size, block_rows):
    grad, _ = _inputs(6, 5, size)  # the gradient of a 5 -> 6 convolution's output
    w = torch.randn(6, 5, 3, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    out = winograd_conv3x3(grad, transform_weight(w), transpose=True, block_rows=block_rows)
    expected = conv2d_input((2, 5, *size), w, grad, padding=1)
    torch.testing.assert_close(out, expected, rtol=1e-12, atol=1e-12)


def test_float32_error_is_small():
    """The loss network's case: float32, 256 channels in and out."""
    x, w = _inputs(256, 256, (16, 16), dtype=torch.float32)
    w = w * (2 / (9 * 256))**0.5
    out = winograd_conv3x3(x, transform_weight(w))
    ref = F.conv2d(x, w, padding=1)
    assert float((out - ref).abs().max() / ref.abs().max()) < 1e-5


def test_bad_inputs_raise():
    with pytest.raises(ValueError, match='3x3 kernel'):
        transform_weight(torch.randn(4, 3, 5, 5))
    x, w = _inputs(5, 6, (8, 8))
    with pytest.raises(ValueError, match='takes 5 channels'):
        winograd_conv3x3(x[:, :4], transform_weight(w))


def _net(**kwargs) -> RandomVGG:
    return RandomVGG(in_channels=3, num_convs=(1, 2), channels=(8, MIN_CHANNELS), **kwargs)


@pytest.fixture
def without_f4(monkeypatch):
    """F(2x2, 3x3) is the loss network's Winograd where F(4x4, 3x3)'s C++ transforms are not built."""
    monkeypatch.setattr(winograd_f4, '_ext', None)


def test_plan_uses_winograd_where_it_pays_only(without_f4):
    """Only convolutions with >= MIN_CHANNELS in and out, never the first, on the CPU in float32."""
    net = _net()
    ops = [op for op, _, _ in net._plan(torch.float32, torch.device('cpu'), 2)]
    assert ops == ['conv', 'max', 'out', 'conv', 'wino', 'max', 'out']  # 8 -> 256 stays direct
    assert [op for op, _, _ in net._plan(torch.float64, torch.device('cpu'), 2)].count('wino') == 0
    with torch.autocast('cpu', dtype=torch.bfloat16):
        assert [op for op, _, _ in net._plan(torch.float32, torch.device('cpu'), 2)].count('wino') == 0
    assert [op for op, _, _ in _net(winograd=False)._plan(torch.float32, torch.device('cpu'), 2)].count('wino') == 0


def test_winograd_network_matches_direct_and_keeps_no_state(without_f4):
    """Features and input gradient within float32 rounding of the direct network; the weight
    transforms are made once, are not in the state dict and are dropped on a move."""
    fast, direct = _net(), _net(winograd=False)
    x = torch.randn(2, 3, 16, 20, generator=torch.Generator().manual_seed(0))
    grads, feats = [], []
    for net in (fast, direct):
        xi = x.clone().requires_grad_()
        out = net(xi)
        out[-1].square().sum().backward()
        grads.append(xi.grad)
        feats.append(out[-1])
    torch.testing.assert_close(feats[0], feats[1], rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(grads[0], grads[1], rtol=1e-4, atol=1e-5 * float(grads[1].abs().max()))
    assert len(fast._transforms) == 1 and not direct._transforms
    assert fast.state_dict() == {}
    fast.double()
    assert not fast._transforms
