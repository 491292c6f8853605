"""Tests of the frozen random VGG network (structure, seeding, init statistics)."""
import math

import pytest
import torch
import torch.nn.functional as F

from mmperc.models import RandomVGG
from mmperc.models.losses import max_pool_relu


@pytest.mark.parametrize('num_convs,channels', [((2, 2, 3, 3, 3), (64, 128, 256, 512, 512)),
                                                ((1, 1, 1, 1, 1), (8, 16, 32, 32, 32)),
                                                ((2, 2, 4, 4, 4), (8, 8, 8, 8, 8))])
@pytest.mark.parametrize('downsample', ['maxpool', 'avgpool', 'conv'])
def test_structure_and_shapes(num_convs, channels, downsample):
    net = RandomVGG(in_channels=3, num_convs=num_convs, channels=channels, downsample=downsample)
    extra = len(num_convs) if downsample == 'conv' else 0
    assert len(net.weights()) == sum(num_convs) + extra
    feats = net(torch.rand(2, 3, 64, 96))
    assert [tuple(f.shape) for f in feats] == [
        (2, c, 64 // 2**(i + 1), 96 // 2**(i + 1)) for i, c in enumerate(channels)]


@pytest.mark.parametrize('kernel_size', [1, 3, 5, 7])
def test_kernel_size_keeps_size(kernel_size):
    net = RandomVGG(in_channels=2, num_convs=(1, ), channels=(4, ), kernel_size=kernel_size)
    assert net.weights()[0].shape == (4, 2, kernel_size, kernel_size)
    assert net(torch.rand(1, 2, 10, 12))[0].shape == (1, 4, 5, 6)


def test_nothing_in_state_dict_and_no_parameters():
    net = RandomVGG(in_channels=3)
    assert net.state_dict() == {}
    assert list(net.parameters()) == []
    assert list(net.buffers()) == []  # plain tensors: EMA/SWA pair buffers by position
    assert len(net.weights()) == 16 and not any(w.requires_grad for w in net.weights())  # VGG19's 16 convs


def test_same_seed_identical_lazy_or_explicit_and_rng_untouched():
    torch.manual_seed(123)
    state = torch.get_rng_state()
    explicit = RandomVGG(in_channels=5, seed=7)
    lazy = RandomVGG(seed=7)
    lazy(torch.rand(1, 5, 32, 32, generator=torch.Generator().manual_seed(0)))
    assert torch.equal(torch.get_rng_state(), state)
    assert lazy.in_channels == 5
    for a, b in zip(explicit.weights(), lazy.weights()):
        assert torch.equal(a, b)
    other = RandomVGG(in_channels=5, seed=8)
    assert not torch.equal(explicit.weights()[0], other.weights()[0])


@pytest.mark.parametrize('init,expected_std', [
    ('paper', lambda cin, cout, k: math.sqrt(2 / (k * k * cin))),
    ('xavier', lambda cin, cout, k: math.sqrt(2 / (k * k * (cin + cout)))),
    (dict(type='normal', std=0.01), lambda cin, cout, k: 0.01),
    (dict(type='uniform', a=0.1), lambda cin, cout, k: 0.1 / math.sqrt(3)),
])
def test_init_statistics(init, expected_std):
    net = RandomVGG(in_channels=64, num_convs=(2, ), channels=(128, ), init=init)
    for weight in net.weights():
        cout, cin, k, _ = weight.shape
        assert weight.mean().item() == pytest.approx(0, abs=5e-3 * expected_std(cin, cout, k) * 10)
        assert weight.std().item() == pytest.approx(expected_std(cin, cout, k), rel=0.03)
    if isinstance(init, dict) and init['type'] == 'uniform':
        assert net.weights()[0].abs().max() <= 0.1


def _output_second_moment_ratio(init):
    """``E[phi(x)^2] / E[x^2]`` at the last block of VGG19 (16 convs) on softmax maps."""
    net = RandomVGG(in_channels=19, num_convs=(2, 2, 4, 4, 4), init=init)
    x = torch.randn(2, 19, 64, 64, generator=torch.Generator().manual_seed(1)).softmax(1)
    return (net(x)[-1].pow(2).mean() / x.pow(2).mean()).item()


def test_paper_variance_argument():
    """Section 3.2, Eq. 5: ``Var[e_L] = Var[e_1] prod_l (n_l Var[w_l] / 2)``.

    Measured through a VGG19-depth stack (16 convs + 5 max-poolings, 19-class
    softmax input, 64x64), ratio of the embedding's second moment to the
    input's, per block:

    - ``init='paper'``: 2.05, 2.84, 3.11, 3.58, 2.27 (stays within a small factor);
    - ``dict(type='normal', std=1.0)``: 5e4, 1.2e10, 1.1e22, 1.8e35, inf (float32 overflow);
    - ``dict(type='normal', std=0.01)``: 5e-4, 1.2e-6, 1.1e-10, 1.8e-13, 3.3e-16;
    - ``'xavier'`` (for reference): 0.23 ... 4.7e-6.
    """
    paper = _output_second_moment_ratio('paper')
    exploding = _output_second_moment_ratio(dict(type='normal', std=1.0))
    vanishing = _output_second_moment_ratio(dict(type='normal', std=0.01))
    assert 0.2 < paper < 10
    assert exploding > 1e30
    assert vanishing < 1e-12


@pytest.mark.parametrize('kwargs,error', [
    (dict(num_convs=(1, 1), channels=(4, )), ValueError),
    (dict(kernel_size=4), ValueError),
    (dict(downsample='stride'), ValueError),
    (dict(init='kaiming'), ValueError),
    (dict(init=dict(type='normal', sigma=1)), ValueError),
    (dict(init=0.1), TypeError),
    (dict(in_channels=0), ValueError),
])
def test_bad_options_raise(kwargs, error):
    with pytest.raises(error):
        RandomVGG(**kwargs)


def test_too_small_input_names_fix():
    net = RandomVGG(in_channels=1)
    with pytest.raises(ValueError, match='smaller than 32'):
        net(torch.rand(1, 1, 16, 64))


def _lean_and_autograd(net: RandomVGG, x: torch.Tensor, num_blocks: int):
    """Features and input gradient of FrozenVGGEmbed, and the same from autograd through the
    plain ops (conv, ReLU, pooling) with the same weights."""
    with torch.no_grad():
        reference_feats = net(x)
    weights = [torch.randn_like(f) for f in reference_feats]
    lean_x = x.clone().requires_grad_()
    feats = net(lean_x)
    sum((f * w).sum() for f, w in zip(feats, weights)).backward()
    auto_x = x.clone().requires_grad_()
    h, grads_feats = auto_x, []
    winograd, net.winograd = net.winograd, False  # the reference: direct convolutions
    plan = net._plan(auto_x.dtype, auto_x.device, num_blocks)
    net.winograd = winograd
    for op, weight, stride in plan:
        if op == 'conv':
            h = F.relu(F.conv2d(h, weight, stride=stride, padding=net.kernel_size // 2))
        elif op == 'max':
            h = F.max_pool2d(h, 2, 2)
        elif op == 'avg':
            h = F.avg_pool2d(h, 2, 2)
        else:
            grads_feats.append(h)
    sum((f * w).sum() for f, w in zip(grads_feats, weights)).backward()
    for a, b in zip(feats, reference_feats):
        torch.testing.assert_close(a, b)
    return lean_x.grad, auto_x.grad


@pytest.mark.parametrize('downsample', ['maxpool', 'avgpool', 'conv'])
@pytest.mark.parametrize('size', [(32, 32), (37, 45)])
def test_memory_lean_backward_equals_autograd(downsample, size):
    """FrozenVGGEmbed's hand-written backward == autograd through the same ops (float64)."""
    net = RandomVGG(in_channels=3, num_convs=(2, 1, 1), channels=(4, 8, 8), downsample=downsample)
    x = torch.randn(2, 3, *size, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    lean, auto = _lean_and_autograd(net, x, 3)
    torch.testing.assert_close(lean, auto)


@pytest.mark.parametrize('size', [(32, 32), (35, 43)])
@pytest.mark.parametrize('channels_last', [True, False])
def test_max_pool_ties_routed_as_autograd(size, channels_last):
    """Piecewise-constant input (one-hot labels, flat regions) makes equal maxima in a pooling
    window; the gradient goes where max_pool2d's own backward sends it (float32; channels-last
    weights as on the CPU, NCHW as on other devices)."""
    net = RandomVGG(in_channels=3, num_convs=(1, 2, 1), channels=(8, 16, 16))
    assert all(w.is_contiguous(memory_format=torch.channels_last) for w in net.weights())
    if not channels_last:
        net._weights = [w.contiguous() for w in net.weights()]
    g = torch.Generator().manual_seed(0)
    labels = torch.randint(0, 3, (2, size[0] // 8 + 1, size[1] // 8 + 1), generator=g)
    labels = labels.repeat_interleave(8, 1).repeat_interleave(8, 2)[:, :size[0], :size[1]]
    x = F.one_hot(labels, 3).permute(0, 3, 1, 2).float()
    with torch.no_grad():  # the premise: some windows hold equal positive maxima
        h = F.relu(F.conv2d(x, net.weights()[0], padding=1))
        top = F.max_pool2d(h, 2, 2)
        ties = sum((h[..., dy:2 * top.shape[-2]:2, dx:2 * top.shape[-1]:2] == top).int()
                   for dy in (0, 1) for dx in (0, 1))
        assert bool(((ties > 1) & (top > 0)).any())
    lean, auto = _lean_and_autograd(net, x, 3)
    torch.testing.assert_close(lean, auto, rtol=1e-5, atol=1e-6)


def test_weights_channels_last_on_cpu_only():
    """oneDNN is faster with channels-last weights; on other devices the weights stay NCHW."""
    net = RandomVGG(in_channels=5, num_convs=(1, 1), channels=(4, 8))
    assert all(w.is_contiguous(memory_format=torch.channels_last) and not w.is_contiguous()
               for w in net.weights())
    moved = net.to('meta')
    assert all(w.is_contiguous() for w in moved.weights())


def test_weights_follow_the_inputs_device(monkeypatch):
    """Plain tensors are moved by .to() like buffers; a copy that .to() never saw (DataParallel's
    replicas, FSDP's device_id) moves them on its first call instead of failing on a device mismatch.
    The other device here is 'meta' (torch has no autocast state for it, so none is asked)."""
    monkeypatch.setattr(torch, 'is_autocast_enabled', lambda *args: False)
    net = RandomVGG(in_channels=3, num_convs=(1, 1), channels=(4, 8))
    out = net(torch.empty(1, 3, 8, 8, device='meta'))
    assert out[-1].device.type == 'meta' and all(w.device.type == 'meta' for w in net.weights())
    assert all(w.is_contiguous() for w in net.weights())  # NCHW off the CPU


@pytest.mark.parametrize('kernel', [True, False])
@pytest.mark.parametrize('downsample', ['maxpool', 'avgpool', 'conv'])
def test_backward_keeps_masks_and_pooling_indices_only(downsample, kernel, monkeypatch):
    """Only bool masks and what max pooling routes by are kept: a byte per ReLU output (autograd:
    4 for its input and 4 for its output), or, before a max pooling, one byte per window (the C++
    kernel's code) or 8 + 1 (PyTorch's int64 argmax and the ReLU's mask, without the kernel)."""
    if not kernel:
        monkeypatch.setattr(max_pool_relu, '_ext', None)
    elif not max_pool_relu.available():
        pytest.skip('the C++ pooling kernel is not built')
    net = RandomVGG(in_channels=3, num_convs=(2, 2, 3), channels=(8, 16, 16), downsample=downsample)
    x = torch.randn(2, 3, 33, 40, requires_grad=True)
    kept = []
    with torch.autograd.graph.saved_tensors_hooks(lambda t: kept.append(t) or t, lambda t: t):
        feats = net(x)
    activations = 0
    h = x.detach()
    with torch.no_grad():
        for op, weight, stride in net._plan(h.dtype, h.device, 3):
            if op == 'conv':
                h = torch.nn.functional.conv2d(h, weight, stride=stride, padding=1)
                activations += h.numel()
            elif op in ('max', 'avg'):
                h = torch.nn.functional.max_pool2d(h, 2, 2)
    routing = torch.bool if downsample != 'maxpool' else torch.uint8 if kernel else torch.int64
    assert kept and all(t.dtype in (torch.bool, routing) for t in kept)
    assert downsample != 'maxpool' or any(t.dtype == routing for t in kept)
    kept_bytes = sum(t.numel() * t.element_size() for t in kept)
    # 3 of the 7 convs feed a max pooling (9 / 4 or 1 / 4 bytes per activation), the others keep 1 byte
    bound = {torch.bool: 1.0, torch.int64: 1.75, torch.uint8: 0.7}[routing]  # the codes: 0.64 here
    assert kept_bytes <= bound * activations
    feats[-1].sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all()
