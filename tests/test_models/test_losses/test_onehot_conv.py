import pytest
import torch
import torch.nn.functional as F
from torch.utils._python_dispatch import TorchDispatchMode

from mmperc.models import RandomPerceptualLoss
from mmperc.models.losses import random_vgg
from mmperc.models.losses.class_maps import ClassMaps
from mmperc.models.losses.onehot_conv import gathers, onehot_conv2d


def _one_hot(labels, num_classes, valid=None):
    """The one-hot map of ``labels`` (labels outside the classes: all-zero pixels), float64."""
    inside = (labels >= 0) & (labels < num_classes)
    x = F.one_hot(torch.where(inside, labels, 0), num_classes).permute(0, 3, 1, 2).double()
    mask = inside if valid is None else inside & valid
    return x * mask.unsqueeze(1)


@pytest.mark.parametrize('kernel_size, padding', [(1, 0), (3, 1), (5, 2), (3, 0)])
@pytest.mark.parametrize('masked', [False, True])
def test_equals_conv_of_the_one_hot_map(kernel_size, padding, masked):
    """Ignored (255), negative and masked pixels are all-zero; the border is zero padding."""
    g = torch.Generator().manual_seed(0)
    labels = torch.randint(0, 6, (2, 9, 11), generator=g)
    labels[0, :2] = 255
    labels[1, 3, 4] = -1
    valid = torch.rand(2, 9, 11, generator=g) > 0.3 if masked else None
    weight = torch.randn(5, 6, kernel_size, kernel_size, dtype=torch.float64, generator=g)
    out = onehot_conv2d(labels, 6, weight, padding, valid)
    expected = F.conv2d(_one_hot(labels, 6, valid), weight, padding=padding)
    assert out.dtype == torch.float64 and out.shape == expected.shape
    torch.testing.assert_close(out, expected)


def test_uint8_labels_with_more_classes_than_uint8_holds():
    """Masked pixels take the zero row C = 300, which uint8 would wrap onto class 44."""
    g = torch.Generator().manual_seed(3)
    labels = torch.randint(0, 256, (1, 6, 7), generator=g, dtype=torch.uint8)
    valid = torch.rand(1, 6, 7, generator=g) > 0.5
    weight = torch.randn(4, 300, 3, 3, dtype=torch.float64, generator=g)
    expected = F.conv2d(_one_hot(labels.long(), 300, valid), weight, padding=1)
    torch.testing.assert_close(onehot_conv2d(labels, 300, weight, 1, valid), expected)


def test_float32_channels_last():
    g = torch.Generator().manual_seed(1)
    labels = torch.randint(0, 150, (2, 16, 16), generator=g)
    weight = torch.randn(8, 150, 3, 3, generator=g)
    out = onehot_conv2d(labels, 150, weight, 1)
    assert out.dtype == torch.float32 and out.is_contiguous(memory_format=torch.channels_last)
    torch.testing.assert_close(out, F.conv2d(_one_hot(labels, 150).float(), weight, padding=1))


def test_bf16_autocast_gives_what_the_convolution_gives():
    """Under autocast: the convolution's bf16 result exactly (the table holds the weight rounded
    to bf16, summed in float32), so a prediction equal to the one-hot target costs nothing
    (with the float32 weight summed, then rounded, 40% of these outputs differed in their last
    bit and the loss of a perfect prediction was 5e-6)."""
    g = torch.Generator().manual_seed(1)
    labels = torch.randint(0, 150, (2, 16, 16), generator=g)
    weight = torch.randn(8, 150, 3, 3, generator=g)
    with torch.autocast('cpu', dtype=torch.bfloat16):
        out = onehot_conv2d(labels, 150, weight, 1)
        expected = F.conv2d(_one_hot(labels, 150).float(), weight, padding=1)
    assert out.dtype == expected.dtype == torch.bfloat16
    assert torch.equal(out, expected)
    loss = RandomPerceptualLoss(num_convs=(2, 2, 3), channels=(16, 16, 16), autocast='bfloat16')
    labels = torch.randint(0, 19, (2, 32, 32), generator=g)
    perfect = F.one_hot(labels, 19).permute(0, 3, 1, 2).float() * 1e4  # softmax: exactly one-hot
    assert loss(perfect, labels).item() == 0


def test_gathers_from_enough_classes():
    """Below about 2k + 2 classes one-hot maps and a convolution are faster (measured)."""
    assert [gathers(c, 3) for c in (4, 7, 8, 150)] == [False, False, True, True]
    assert not gathers(11, 5) and gathers(12, 5) and not gathers(15, 7) and gathers(16, 7)


def test_labels_smaller_than_the_kernel_raise():
    with pytest.raises(ValueError, match='smaller than the kernel'):
        onehot_conv2d(torch.zeros(1, 2, 5, dtype=torch.long), 3, torch.zeros(2, 3, 5, 5), 1)


def test_class_mismatch_raises():
    with pytest.raises(ValueError, match='takes 4 channels, but the labels have 3 classes'):
        onehot_conv2d(torch.zeros(1, 4, 4, dtype=torch.long), 3, torch.zeros(2, 4, 3, 3), 1)


class _Convolutions(TorchDispatchMode):
    """Records the input channels of every convolution."""

    def __init__(self):
        super().__init__()
        self.channels = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        if func.overloadpacket == torch.ops.aten.convolution:
            self.channels.append(args[0].shape[1])
        return func(*args, **(kwargs or {}))


@pytest.mark.parametrize('layout', [torch.contiguous_format, torch.channels_last])
def test_label_target_makes_no_one_hot_convolution(monkeypatch, layout):
    """The target branch of label targets convolves no class-sized map: the loss's only
    150-channel convolution is the prediction's; the loss and its gradient are those of the
    one-hot definition, with NCHW weights (as on devices other than the CPU and CUDA) and
    channels-last ones."""
    monkeypatch.setitem(random_vgg.LAYOUTS, 'cpu', layout)
    g = torch.Generator().manual_seed(2)
    loss = RandomPerceptualLoss(num_convs=(1, 1), channels=(8, 8))
    assert loss.memory_format('cpu') == layout
    labels = torch.randint(0, 150, (2, 16, 16), generator=g)
    labels[1, 5:] = 255
    with _Convolutions() as convs, torch.no_grad():
        loss.network(ClassMaps(labels, 'onehot', num_classes=150))
    assert 150 not in convs.channels and convs.channels == [8]
    pred = torch.randn(2, 150, 16, 16, dtype=torch.float64, generator=g, requires_grad=True)
    value = loss(pred, labels)
    value.backward()
    ref = pred.detach().clone().requires_grad_()
    valid = (labels != 255).unsqueeze(1)
    fp, ft = loss.network(ref.softmax(1) * valid), loss.network(_one_hot(labels, 150))
    expected = F.mse_loss(fp[1], ft[1])
    expected.backward()
    torch.testing.assert_close(value, expected)
    torch.testing.assert_close(pred.grad, ref.grad)


@pytest.mark.parametrize('layout', [torch.contiguous_format, torch.channels_last])
@pytest.mark.parametrize('kernel_size', [1, 3])
def test_first_conv_of_labels_in_the_convolutions_layout(layout, kernel_size):
    """The layout conv2d gives the one-hot rows (channels-last if they or the weight are; a 1x1
    weight counts as both), and its values."""
    g = torch.Generator().manual_seed(4)
    labels = torch.randint(0, 20, (2, 6, 7), generator=g)
    weight = torch.randn(4, 20, kernel_size, kernel_size, generator=g).contiguous(memory_format=layout)
    maps = ClassMaps(labels, 'onehot', num_classes=20, layout=torch.channels_last)
    expected = F.conv2d(maps.rows(0, 6), weight, padding=kernel_size // 2)
    out = maps.conv_rows(0, 6, weight, kernel_size // 2)
    assert out.is_contiguous(memory_format=torch.channels_last) == \
        expected.is_contiguous(memory_format=torch.channels_last)
    torch.testing.assert_close(out, expected)
