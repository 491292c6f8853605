import pytest
import torch
import torch.nn.functional as F

from mmperc.models import RandomPerceptualLoss, RandomVGG
from mmperc.models.losses import class_maps
from mmperc.models.losses.class_maps import ClassMaps

C = 2 * class_maps.CHUNK + 6  # three chunks, the last one short


def _activate(x, kind, valid):
    y = {'none': x, 'softmax': x.softmax(1), 'sigmoid': x.sigmoid()}[kind]
    return y if valid is None else y * valid.unsqueeze(1).to(y.dtype)


@pytest.mark.parametrize('kind', ['none', 'softmax', 'sigmoid'])
@pytest.mark.parametrize('masked', [False, True])
def test_chunked_first_conv_equals_autograd(kind, masked):
    """Activation + mask inside the first conv, a chunk of classes at a time: same features and
    the same gradient as autograd through the whole activated input (float64)."""
    g = torch.Generator().manual_seed(0)
    net = RandomVGG(in_channels=C, num_convs=(1, 2), channels=(8, 8))
    x = torch.randn(2, C, 20, 24, dtype=torch.float64, generator=g) * 3
    valid = torch.rand(2, 20, 24, generator=g) > 0.3 if masked else None
    weights = None
    grads = []
    feats_of = []
    for fused in (True, False):
        leaf = x.clone().requires_grad_()
        maps = ClassMaps(leaf, kind, valid) if fused else ClassMaps(_activate(leaf, kind, valid))
        feats = net(maps)
        if weights is None:
            weights = [torch.randn(f.shape, dtype=f.dtype, generator=g) for f in feats]
        sum((f * w).sum() for f, w in zip(feats, weights)).backward()
        feats_of.append([f.detach() for f in feats])
        grads.append(leaf.grad)
    for a, b in zip(*feats_of):
        torch.testing.assert_close(a, b)
    torch.testing.assert_close(grads[0], grads[1])


@pytest.mark.parametrize('num_classes', [1, C])
def test_onehot_chunks_equal_one_hot(num_classes):
    labels = torch.randint(0, max(num_classes, 2), (2, 9, 11))
    labels[0, :2] = 255
    valid = labels != 255
    maps = ClassMaps(labels, 'onehot', valid, num_classes=num_classes)
    if num_classes == 1:
        expected = (labels == 1).float().unsqueeze(1)
    else:
        expected = F.one_hot(labels.clamp(max=num_classes - 1), num_classes).permute(0, 3, 1, 2).float()
        expected = expected * valid.unsqueeze(1)
    torch.testing.assert_close(torch.cat([maps.chunk(a, b) for a, b in maps.chunks()], 1), expected)
    net = RandomVGG(in_channels=num_classes, num_convs=(1, 1), channels=(4, 4))
    with torch.no_grad():
        for a, b in zip(net(maps), net(expected)):
            torch.testing.assert_close(a, b)


def test_many_classes_loss_equals_reference_definition():
    """150 classes (five chunks), teacher logits and labels with ignored pixels: the loss and its
    gradient equal the definition written with whole softmax/one-hot maps (float64)."""
    g = torch.Generator().manual_seed(1)
    loss = RandomPerceptualLoss(num_convs=(1, 1), channels=(8, 8), layer_weights=(0.5, 1.0))
    pred = torch.randn(2, 150, 16, 16, dtype=torch.float64, generator=g)
    teacher = torch.randn(2, 150, 16, 16, dtype=torch.float64, generator=g)
    labels = torch.randint(0, 150, (2, 16, 16), generator=g)
    labels[1, 5:] = 255
    valid = (labels != 255).unsqueeze(1).double()
    onehot = F.one_hot(labels.clamp(max=149), 150).permute(0, 3, 1, 2).double() * valid
    for target, whole_target, mask in ((teacher, teacher.softmax(1), None), (labels, onehot, valid)):
        ours, ref = pred.clone().requires_grad_(), pred.clone().requires_grad_()
        value = loss(ours, target)
        value.backward()
        p = ref.softmax(1) if mask is None else ref.softmax(1) * mask
        fp, ft = loss.network(p), loss.network(whole_target)
        expected = 0.5 * F.mse_loss(fp[0], ft[0]) + F.mse_loss(fp[1], ft[1])
        expected.backward()
        torch.testing.assert_close(value, expected)
        torch.testing.assert_close(ours.grad, ref.grad)


def test_no_class_sized_map_kept_but_the_logits():
    """The backward keeps the logits (which the caller holds) and byte masks: no softmax copy."""
    loss = RandomPerceptualLoss(num_convs=(1, 1), channels=(8, 8))
    pred = torch.randn(2, 150, 16, 16, requires_grad=True)
    kept = []
    with torch.autograd.graph.saved_tensors_hooks(lambda t: kept.append(t) or t, lambda t: t):
        value = loss(pred, torch.randn(2, 150, 16, 16))
    class_sized = [t for t in kept if t.dim() == 4 and t.shape[1] == 150]
    assert len(class_sized) == 1 and class_sized[0].data_ptr() == pred.data_ptr()
    value.backward()
    assert torch.isfinite(pred.grad).all()


def test_bad_kind_and_labels_raise():
    with pytest.raises(ValueError, match='kind must be one of'):
        ClassMaps(torch.zeros(1, 2, 4, 4), 'relu')
    with pytest.raises(ValueError, match='integer labels'):
        ClassMaps(torch.zeros(1, 4, 4), 'onehot', num_classes=3)


def test_chunked_under_bf16_autocast_close_to_float32():
    """Under autocast the chunks are float32 softmax (as autocast's softmax), convolved in bf16
    and summed in float32: close to the float32 loss, gradient in the logits' dtype."""
    g = torch.Generator().manual_seed(2)
    loss = RandomPerceptualLoss(num_convs=(1, 1), channels=(16, 16))
    pred = torch.randn(2, C, 32, 32, generator=g)
    target = torch.randn(2, C, 32, 32, generator=g)
    full = pred.clone().requires_grad_()
    expected = loss(full, target)
    expected.backward()
    half = pred.clone().bfloat16().requires_grad_()
    with torch.autocast('cpu', dtype=torch.bfloat16):
        value = loss(half, target.bfloat16())
    value.backward()
    assert half.grad.dtype == torch.bfloat16
    torch.testing.assert_close(value.float(), expected, rtol=5e-2, atol=0)
    cos = F.cosine_similarity(half.grad.float().flatten(), full.grad.flatten(), dim=0)
    assert cos > 0.95


def test_float_target_takes_the_prediction_dtype():
    """A float32 probability target against a float64 prediction (no activation): cast, as before."""
    loss = RandomPerceptualLoss(num_convs=(1, 1), channels=(4, 4), pred_activation='none',
                                target_activation='none')
    pred = torch.rand(1, 3, 16, 16, dtype=torch.float64, requires_grad=True)
    target = torch.rand(1, 3, 16, 16)
    value = loss(pred, target)
    value.backward()
    expected = F.mse_loss(loss.network(pred.detach())[-1], loss.network(target.double())[-1])
    torch.testing.assert_close(value.detach(), expected)
