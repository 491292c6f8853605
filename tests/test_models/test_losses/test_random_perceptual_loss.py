"""Tests of RandomPerceptualLoss: values, invariances, gradients, dtypes and errors."""
import pytest
import torch
import torch.nn.functional as F
from torch.utils._python_dispatch import TorchDispatchMode

from mmperc.models import RandomPerceptualLoss, RandomVGG

SMALL = dict(num_convs=(1, 1, 1), channels=(8, 16, 16))


def _logits(n=2, c=5, h=32, w=32, seed=0):
    return torch.randn(n, c, h, w, generator=torch.Generator().manual_seed(seed))


def _labels(n=2, c=5, h=32, w=32, seed=1):
    return torch.randint(0, c, (n, h, w), generator=torch.Generator().manual_seed(seed))


def test_matches_reference_definition():
    """loss = mean((phi(softmax(pred)) - phi(softmax(target)))^2) at the final block."""
    loss = RandomPerceptualLoss(**SMALL, seed=3)
    pred, target = _logits(), _logits(seed=5)
    net = RandomVGG(in_channels=5, **SMALL, seed=3)
    expected = F.mse_loss(net(pred.softmax(1))[-1], net(target.softmax(1))[-1])
    assert loss(pred, target).item() == pytest.approx(expected.item(), rel=1e-6)


def test_zero_when_equal_and_positive_finite_otherwise():
    loss = RandomPerceptualLoss(**SMALL)
    pred = _logits()
    assert loss(pred, pred.clone()).item() == 0
    labels = pred.argmax(1)
    value = loss(pred, _labels())
    assert torch.isfinite(value) and value.item() > 0
    onehot_logits = F.one_hot(labels, 5).permute(0, 3, 1, 2).float() * 1e4
    assert loss(onehot_logits, labels).item() == pytest.approx(0, abs=1e-10)


@pytest.mark.parametrize('resize', [None, 0.5])
def test_labels_equal_onehot_probabilities(resize):
    """Labels (one-hot rows made channels-last on the CPU) give the loss of their NCHW one-hot
    probabilities, also when the whole one-hot map is resized first."""
    loss = RandomPerceptualLoss(**SMALL, target_activation='none', resize=resize)
    pred, labels = _logits(), _labels()
    onehot = F.one_hot(labels, 5).permute(0, 3, 1, 2).float().contiguous()  # NCHW
    assert loss(pred, labels).item() == pytest.approx(loss(pred, onehot).item(), rel=1e-6)


def test_uint8_labels_with_more_classes_than_uint8_holds():
    """Labels as uint8 (as a PNG gives them) with 300 classes: checked and encoded as int64 would be."""
    loss = RandomPerceptualLoss(num_convs=(1, 1), channels=(4, 4))
    pred = _logits(c=300, h=8, w=8)
    labels = torch.randint(0, 256, (2, 8, 8), generator=torch.Generator().manual_seed(2), dtype=torch.uint8)
    labels[0, 0] = 255
    assert loss(pred, labels, ignore_index=None).item() == loss(pred, labels.long(), ignore_index=None).item()
    assert loss(pred, labels).item() == loss(pred, labels.long()).item()  # 255 ignored


def test_memory_format_is_the_weights_layout():
    loss = RandomPerceptualLoss(**SMALL, in_channels=5)
    assert loss.memory_format('cpu') == torch.channels_last
    assert all(w.is_contiguous(memory_format=torch.channels_last) for w in loss.network.weights())
    # no GPU needed: channels-last on CUDA too (measured on an H200), NCHW on other devices
    assert loss.memory_format(torch.device('cuda')) == torch.channels_last
    assert loss.memory_format('meta') == torch.contiguous_format


def test_ignore_index_excluded_from_both_sides():
    loss = RandomPerceptualLoss(**SMALL)
    pred, labels = _logits(), _labels()
    ignored = labels.clone()
    ignored[:, :8] = 255
    other_pred = pred.clone()
    other_pred[:, :, :8] = torch.randn_like(other_pred[:, :, :8]) * 10
    # what lies under ignored pixels, in the prediction or the label, does not matter
    assert loss(pred, ignored).item() == pytest.approx(loss(other_pred, ignored).item(), rel=1e-6)
    assert loss(pred, ignored).item() != pytest.approx(loss(pred, labels).item(), rel=1e-3)
    mask = labels != 255
    mask[:, :8] = False
    soft = _logits(seed=9)
    assert loss(pred, soft, valid_mask=mask).item() == pytest.approx(
        loss(other_pred, soft, valid_mask=mask).item(), rel=1e-6)


def test_all_true_valid_mask_is_no_mask():
    """An all-true mask (the distillation wrapper's when no pixel is ignored) is dropped: same
    value and gradient as no mask."""
    loss = RandomPerceptualLoss(**SMALL)
    soft = _logits(seed=9)
    grads = []
    for mask in (None, torch.ones(soft.shape[0], *soft.shape[-2:], dtype=torch.bool)):
        pred = _logits().requires_grad_()
        value = loss(pred, soft, valid_mask=mask)
        value.backward()
        grads.append((value.detach(), pred.grad))
    torch.testing.assert_close(grads[0], grads[1], rtol=0, atol=0)


def test_gradient_only_to_prediction():
    loss = RandomPerceptualLoss(**SMALL)
    pred = _logits().requires_grad_()
    target = _logits(seed=4).requires_grad_()
    loss(pred, target).backward()
    assert pred.grad is not None and pred.grad.abs().sum() > 0
    assert target.grad is None
    assert all(not w.requires_grad for w in loss.network.weights())


def test_adds_nothing_to_state_dict_and_strict_load():
    head = torch.nn.Conv2d(3, 5, 1)
    with_loss = torch.nn.ModuleDict(dict(head=head, loss=RandomPerceptualLoss(in_channels=5)))
    without = torch.nn.ModuleDict(dict(head=torch.nn.Conv2d(3, 5, 1)))
    assert set(with_loss.state_dict()) == {'head.weight', 'head.bias'}
    without.load_state_dict(with_loss.state_dict(), strict=True)
    assert [p for p in with_loss.parameters()] == list(head.parameters())


def test_layer_weights_multi_level():
    weights = (1 / 4, 1 / 2, 1.0)
    loss = RandomPerceptualLoss(**SMALL, layer_weights=weights)
    pred, target = _logits(), _logits(seed=2)
    net = RandomVGG(in_channels=5, **SMALL)
    fp, ft = net(pred.softmax(1)), net(target.softmax(1))
    expected = sum(w * F.mse_loss(a, b) for w, a, b in zip(weights, fp, ft))
    assert loss(pred, target).item() == pytest.approx(expected.item(), rel=1e-6)
    final_only = RandomPerceptualLoss(**SMALL, layer_weights=(0, 0, 1))
    assert final_only(pred, target).item() == pytest.approx(
        RandomPerceptualLoss(**SMALL)(pred, target).item(), rel=1e-6)


def test_l1_criterion_and_loss_weight():
    pred, target = _logits(), _logits(seed=2)
    net = RandomVGG(in_channels=5, **SMALL)
    expected = F.l1_loss(net(pred.softmax(1))[-1], net(target.softmax(1))[-1])
    loss = RandomPerceptualLoss(**SMALL, criterion='l1', loss_weight=0.1)
    assert loss(pred, target).item() == pytest.approx(0.1 * expected.item(), rel=1e-6)


def test_reductions_weight_and_avg_factor():
    loss = RandomPerceptualLoss(**SMALL)
    pred, target = _logits(), _logits(seed=2)
    elem = loss(pred, target, reduction_override='none')
    assert elem.shape == (2, 16, 4, 4)
    assert loss(pred, target).item() == pytest.approx(elem.mean().item(), rel=1e-6)
    assert loss(pred, target, reduction_override='sum').item() == pytest.approx(elem.sum().item(), rel=1e-6)
    assert loss(pred, target, avg_factor=10).item() == pytest.approx(elem.sum().item() / 10, rel=1e-5)
    # uniform weights == no weights; per-sample weights select samples
    assert loss(pred, target, weight=torch.ones(2)).item() == pytest.approx(loss(pred, target).item(), rel=1e-6)
    assert loss(pred, target, weight=torch.ones(2, 32, 32)).item() == pytest.approx(
        loss(pred, target).item(), rel=1e-6)
    first = loss(pred, target, weight=torch.tensor([1.0, 0.0]), reduction_override='sum')
    assert first.item() == pytest.approx(elem[0].sum().item(), rel=1e-6)


def test_resize_option():
    pred, target = _logits(h=64, w=64), _logits(h=64, w=64, seed=2)
    half = RandomPerceptualLoss(**SMALL, resize=0.5)
    sized = RandomPerceptualLoss(**SMALL, resize=(32, 32))
    assert half(pred, target).item() == pytest.approx(sized(pred, target).item(), rel=1e-6)
    p = F.interpolate(pred.softmax(1), size=(32, 32), mode='bilinear', align_corners=False)
    t = F.interpolate(target.softmax(1), size=(32, 32), mode='bilinear', align_corners=False)
    assert half(pred, target).item() == pytest.approx(
        RandomPerceptualLoss(**SMALL, pred_activation='none', target_activation='none')(p, t).item(), rel=1e-6)


@pytest.mark.parametrize('activation', ['sigmoid', 'none'])
def test_one_channel_masks_and_depth(activation):
    loss = RandomPerceptualLoss(**SMALL, in_channels=1, pred_activation=activation,
                                target_activation='none')
    pred = torch.randn(3, 1, 32, 32, requires_grad=True)
    masks = (torch.rand(3, 32, 32) > 0.5).long()
    value = loss(pred, masks) if activation == 'sigmoid' else loss(pred, torch.rand(3, 1, 32, 32))
    value.backward()
    assert torch.isfinite(value) and pred.grad.abs().sum() > 0


def test_seed_identical_across_processes_and_lazy():
    explicit = RandomPerceptualLoss(in_channels=5, **SMALL, seed=11)
    lazy = RandomPerceptualLoss(**SMALL, seed=11)
    pred, target = _logits(), _logits(seed=2)
    assert lazy(pred, target).item() == explicit(pred, target).item()
    for a, b in zip(explicit.network.weights(), lazy.network.weights()):
        assert torch.equal(a, b)
    assert RandomPerceptualLoss(**SMALL, seed=12)(pred, target).item() != explicit(pred, target).item()


def test_float64_bf16_autocast_and_channels_last():
    loss = RandomPerceptualLoss(**SMALL)
    pred, target = _logits(), _logits(seed=2)
    ref = loss(pred, target).item()
    assert loss(pred.double(), target.double()).dtype == torch.float64
    assert loss(pred.double(), target.double()).item() == pytest.approx(ref, rel=1e-5)
    cl = loss(pred.to(memory_format=torch.channels_last), target.to(memory_format=torch.channels_last))
    assert cl.item() == pytest.approx(ref, rel=1e-5)
    pred_grad = pred.clone().requires_grad_()
    with torch.autocast('cpu', dtype=torch.bfloat16):
        value = loss(pred_grad, target)
    value.backward()
    assert value.dtype == torch.float32
    assert value.item() == pytest.approx(ref, rel=0.1)
    assert torch.isfinite(pred_grad.grad).all()


@pytest.mark.parametrize('target', ['logits', 'labels'])
def test_autocast_option_runs_the_network_in_bf16_from_a_float32_caller(target):
    """``autocast='bfloat16'``: the convolutions in bf16 without the caller autocasting; the value
    and the float32 gradient close to float32's; None keeps a caller's autocast on."""
    convs = []

    class Record(TorchDispatchMode):
        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            if func.overloadpacket in (torch.ops.aten.convolution, torch.ops.aten.convolution_backward):
                convs.append(args[0].dtype)
            return func(*args, **(kwargs or {}))

    pred = _logits(h=64, w=64)
    tgt = _logits(h=64, w=64, seed=2) if target == 'logits' else _labels(h=64, w=64)
    exact, half = (pred.clone().requires_grad_() for _ in range(2))
    expected = RandomPerceptualLoss(**SMALL)(exact, tgt)
    expected.backward()
    with Record():
        value = RandomPerceptualLoss(**SMALL, autocast='bfloat16')(half, tgt)
        value.backward()
    assert convs and all(dtype == torch.bfloat16 for dtype in convs)
    assert value.dtype == torch.float32 and half.grad.dtype == torch.float32
    assert value.item() == pytest.approx(expected.item(), rel=2e-2)
    assert F.cosine_similarity(half.grad.flatten(), exact.grad.flatten(), dim=0) > 0.95
    convs.clear()
    with Record(), torch.autocast('cpu', dtype=torch.bfloat16):  # None: the caller's autocast
        RandomPerceptualLoss(**SMALL)(pred, tgt)
    assert convs and all(dtype == torch.bfloat16 for dtype in convs)


def test_autocast_option_with_float64_inputs():
    """float64 is never autocast: with no activation the convolutions stay float64 (weights cast
    to it); a softmax under autocast is float32, and so is the value."""
    depth = torch.rand(2, 1, 32, 32, dtype=torch.float64, requires_grad=True)
    loss = RandomPerceptualLoss(**SMALL, pred_activation='none', target_activation='none', autocast='bfloat16')
    value = loss(depth, torch.rand(2, 1, 32, 32, dtype=torch.float64))
    value.backward()
    assert value.dtype == torch.float64 and depth.grad.dtype == torch.float64
    pred = _logits().double().requires_grad_()
    value = RandomPerceptualLoss(**SMALL, autocast='bfloat16')(pred, _logits(seed=2).double())
    value.backward()
    assert value.dtype == torch.float32 and torch.isfinite(pred.grad).all()


@pytest.mark.parametrize('kwargs', [
    dict(criterion='huber'), dict(pred_activation='relu'), dict(target_activation='tanh'),
    dict(reduction='max'), dict(layer_weights=(1, 2)), dict(resize=-1), dict(loss_name='perc'),
    dict(autocast='int8'), dict(autocast='float16'), dict(layer_weights=(0, 0, 0)),
    dict(in_channels=1),  # the default softmax over one channel
    dict(resize=(0, 5)), dict(resize=(24, -3)), dict(resize=(24, 24, 2)),
    dict(log_input=True, log_eps=0.0), dict(log_eps=-1e-3),
])
def test_unknown_options_raise_value_error(kwargs):
    with pytest.raises(ValueError):
        RandomPerceptualLoss(**SMALL, **kwargs)


def test_unknown_keyword_raises_type_error():
    with pytest.raises(TypeError):
        RandomPerceptualLoss(num_conv=(1, 1))


def test_bad_inputs_name_the_fix():
    loss = RandomPerceptualLoss(**SMALL, in_channels=5)
    with pytest.raises(ValueError, match='in_channels'):
        loss(_logits(c=4), _labels(c=4))
    with pytest.raises(ValueError, match='resize the teacher output'):
        loss(_logits(), _logits(h=16, w=16))
    with pytest.raises(ValueError, match='integer labels must be.*resize'):
        loss(_logits(), _labels(h=16))
    with pytest.raises(ValueError, match=r'labels\.squeeze\(1\)'):  # mmseg's stacked (N, 1, H, W) labels
        loss(_logits(), _labels().unsqueeze(1))
    bad = _labels()
    bad[0, 0, 0] = 7
    with pytest.raises(ValueError, match=r'\[0, 5\)'):
        loss(_logits(), bad)
    nan = _logits()
    nan[0, 0, 0, 0] = float('nan')
    with pytest.raises(ValueError, match='NaN.*learning rate'):
        loss(nan, _labels())
    with pytest.raises(ValueError, match='NaN.*teacher.*invalid_value'):
        loss(_logits(), nan)
    for value in (float('inf'), -float('inf')):  # anywhere, either sign
        inf = _logits()
        inf[1, -1, -1, -1] = value
        with pytest.raises(ValueError, match='non-finite'):
            loss(inf, _labels())
    with pytest.raises(ValueError, match="reduction='none'"):
        RandomPerceptualLoss(**SMALL, layer_weights=(1, 1, 1))(_logits(), _labels(), reduction_override='none')
    for weight in (torch.ones(3), torch.ones(2, 16, 16), torch.ones(2, 1, 32, 32)):
        with pytest.raises(ValueError, match=r'weight must be per sample \(2,\) or per pixel \(2, 32, 32\)'):
            loss(_logits(), _labels(), weight=weight)


def test_resize_size_takes_pixel_counts_and_names_the_scale():
    with pytest.raises(ValueError, match='resize=0.5'):
        RandomPerceptualLoss(**SMALL, resize=(0.5, 0.5))
    loss = RandomPerceptualLoss(**SMALL, resize=[16, 24])
    assert loss.resize == (16, 24) and float(loss(_logits(), _labels())) > 0


def test_inferred_channel_count_is_kept_and_named():
    loss = RandomPerceptualLoss(**SMALL)
    loss(_logits(c=5), _labels(c=5))
    with pytest.raises(ValueError, match='takes 5 .*inferred from the first call.*its own loss'):
        loss(_logits(c=6), _labels(c=6))


@pytest.mark.parametrize('where', [(0, 0, 0, 0), (1, 4, 31, 17), (1, -1, -1, -1)])
def test_non_finite_found_in_any_layout(where, monkeypatch):
    """Channels-last maps (the teacher's logits) and strided slices are checked as they lie:
    every element is seen, and a channels-last map is read in place, not copied to NCHW."""
    from mmperc.models.losses import random_perceptual_loss as module
    loss = RandomPerceptualLoss(**SMALL, in_channels=5)
    seen = []
    aminmax = torch.aminmax
    monkeypatch.setattr(module.torch, 'aminmax', lambda x: seen.append(x) or aminmax(x))
    for layout in ('channels_last', 'slice'):
        for value in (float('nan'), float('inf'), -float('inf')):
            bad = _logits(w=40)[..., :32] if layout == 'slice' else _logits().contiguous(
                memory_format=torch.channels_last)
            bad[where] = value
            with pytest.raises(ValueError, match='non-finite'):
                loss(_logits(), bad)
            with pytest.raises(ValueError, match='non-finite'):
                loss(bad, _logits())
            assert seen[-1].data_ptr() == bad.data_ptr()  # the map itself (or a view), no copy
            if layout == 'channels_last':
                assert seen[-1].is_contiguous()
    good = _logits().contiguous(memory_format=torch.channels_last)
    assert torch.isfinite(loss(good, good.flip(0)))


@pytest.mark.parametrize('side', ['pred', 'target'])
def test_softmax_over_one_channel_names_the_fix(side):
    """A softmax over one channel is the constant 1: a loss with a zero gradient, refused."""
    pred, target = torch.randn(2, 1, 32, 32, requires_grad=True), torch.rand(2, 1, 32, 32)
    loss = RandomPerceptualLoss(**SMALL, **{('target' if side == 'pred' else 'pred') + '_activation': 'none'})
    with pytest.raises(ValueError, match=f"{side}_activation='softmax' over 1 channel.*'sigmoid'"):
        loss(pred, target)
    if side == 'pred':  # a binary label target never goes through target_activation
        with pytest.raises(ValueError, match="pred_activation='softmax'"):
            loss(pred, (target > 0.5).long().squeeze(1))


@pytest.mark.parametrize('missing', [float('nan'), float('inf')])
def test_non_finite_invalid_value_masks_missing_depth(missing):
    """Depth missing as NaN or Inf: masked like 0 would be (same value and gradient), not an
    error, and not NaN through the mask's product."""
    gt = torch.rand(2, 1, 32, 32) * 9 + 1
    gt[:, :, :10] = missing
    pred = torch.rand(2, 1, 32, 32, requires_grad=True)
    zero = pred.detach().clone().requires_grad_()
    kwargs = dict(**SMALL, in_channels=1, pred_activation='none', target_activation='none')
    value = RandomPerceptualLoss(**kwargs, invalid_value=missing)(pred, gt)
    expected = RandomPerceptualLoss(**kwargs, invalid_value=0.0)(zero, gt.nan_to_num(0.0, posinf=0.0))
    value.backward()
    expected.backward()
    assert torch.isfinite(value) and value.item() == pytest.approx(expected.item(), rel=1e-6)
    assert torch.allclose(pred.grad, zero.grad)
    with pytest.raises(ValueError, match='invalid_value'):  # without it: the error names the option
        RandomPerceptualLoss(**kwargs)(pred, gt)


def test_depth_invalid_pixels_and_log_depth():
    loss = RandomPerceptualLoss(**SMALL, in_channels=1, pred_activation='none', target_activation='none',
                                invalid_value=0.0)
    gt = torch.rand(2, 1, 32, 32) * 9 + 1
    gt[:, :, :10] = 0  # missing depth
    pred = gt.clone()
    pred[:, :, :10] = torch.rand(2, 1, 10, 32) * 50  # anything under missing depth is not compared
    assert loss(pred, gt).item() == 0
    assert RandomPerceptualLoss(**SMALL, in_channels=1, pred_activation='none',
                                target_activation='none')(pred, gt).item() > 0
    log_loss = RandomPerceptualLoss(**SMALL, in_channels=1, pred_activation='none', target_activation='none',
                                    log_input=True)
    d, e = torch.rand(2, 1, 32, 32) + 1, torch.rand(2, 1, 32, 32) * 5
    plain = RandomPerceptualLoss(**SMALL, in_channels=1, pred_activation='none', target_activation='none')
    assert log_loss(d, e).item() == pytest.approx(plain(d.log(), e.clamp(min=1e-3).log()).item(), rel=1e-6)


@pytest.mark.parametrize('in_channels', [5, None])
def test_ema_of_a_decode_head_with_a_lazy_loss(in_channels):
    """mmengine's EMA copies the model before the first step and then pairs its buffers with the
    model's by position: weights made lazily on the first call must not add buffers (a PSPHead's
    batch norms come after ``loss_decode``, so they would be paired with the loss's weights)."""
    from mmengine.model import ExponentialMovingAverage
    from mmengine.structures import PixelData
    from mmseg.registry import MODELS
    from mmseg.structures import SegDataSample
    from mmseg.utils import register_all_modules
    register_all_modules()
    head = MODELS.build(dict(
        type='PSPHead', in_channels=8, channels=8, pool_scales=(1, 2), num_classes=5,
        norm_cfg=dict(type='BN', requires_grad=True),
        loss_decode=[dict(type='CrossEntropyLoss', loss_weight=1.0),
                     dict(type='RandomPerceptualLoss', loss_weight=0.1, in_channels=in_channels)]))
    ema = ExponentialMovingAverage(head)  # what EMAHook builds in before_run
    buffers = [b.shape for b in head.buffers()]
    samples = [SegDataSample(gt_sem_seg=PixelData(data=_labels(1, 5, 32, 32, seed=i)[0][None])) for i in range(2)]
    losses = head.loss([torch.randn(2, 8, 8, 8)], samples, None)
    assert losses['loss_perc'] > 0
    sum(v for k, v in losses.items() if k.startswith('loss')).backward()
    assert [b.shape for b in head.buffers()] == buffers
    ema.update_parameters(head)
    ema.update_parameters(head)  # the second update averages the parameters
    for avg, src in zip(ema.module.buffers(), head.buffers()):
        torch.testing.assert_close(avg, src)
