import pytest
import torch
import torch.nn.functional as F
from torch.utils._python_dispatch import TorchDispatchMode

from mmperc.models import RandomPerceptualLoss, RandomVGG
from mmperc.models.losses import class_maps
from mmperc.models.losses.class_maps import ClassMaps
from mmperc.models.losses.layout import memory_format

C = 7


#: Bands of 5 rows (reach 1) for ``C`` float64 maps 24 pixels wide, batch 2.
SMALL = 2 * C * 24 * 8 * 7
WHOLE = 2**62  # one band: the whole maps, as the reference computations take them


@pytest.fixture
def bands(monkeypatch):
    """``bands(nbytes)`` sets :data:`class_maps.BAND_BYTES` for what runs next (bands of as
    few as 2 rows per row of reach: several bands on small maps)."""
    monkeypatch.setattr(class_maps, 'ROWS_PER_REACH', 2)
    return lambda nbytes: monkeypatch.setattr(class_maps, 'BAND_BYTES', nbytes)


def test_bands_have_rows_per_reach():
    """At 769 pixels with 150 classes the byte budget alone would give bands of 7 rows."""
    maps = ClassMaps(torch.empty(1).expand(2, 150, 769, 769))
    for reach in (1, 2):
        rows = maps.bands(reach)
        assert len(rows) > 2 and rows[-1][1] == 769
        assert all(b - a >= class_maps.ROWS_PER_REACH * reach for a, b in rows[:-1])


def test_bands_on_the_cpu_count_the_widest_maps(bands, monkeypatch):
    """On the CPU a band's rows are counted at the first block's widest maps when the class maps
    have fewer channels: more, smaller bands; off the CPU and with more classes, the same."""
    budget = 2 * C * 64 * 4 * 40  # about 40 rows of the class maps
    bands(budget)
    monkeypatch.setattr(class_maps, 'DEVICE_BAND_BYTES', budget)
    maps = ClassMaps(torch.zeros(2, C, 256, 64))
    narrow, wide = maps.bands(1, align=2), maps.bands(1, align=2, width=8 * C)
    assert len(wide) > len(narrow) > 1 and wide[-1][1] == narrow[-1][1] == 256
    assert maps.bands(1, align=2, width=C - 1) == narrow
    meta = ClassMaps(torch.zeros(2, C, 256, 64, device='meta'))
    assert meta.bands(1, align=2, width=8 * C) == meta.bands(1, align=2) == narrow


def test_bands_off_the_cpu_use_the_device_budget():
    """GPUs: bands of DEVICE_BAND_BYTES (a launch per band and op costs more there than a band
    missing the cache), at 769x769, batch 8: 11 bands with 150 classes, 2 with 19 (the CPU: 49
    bands of 16 rows either way). A meta tensor stands in for a GPU's."""
    for c, device_bands, cpu_bands in ((150, 11, 49), (19, 2, 49)):
        assert len(ClassMaps(torch.empty(8, c, 769, 769, device='meta')).bands(1)) == device_bands
        assert len(ClassMaps(torch.empty(1).expand(8, c, 769, 769)).bands(1)) == cpu_bands


def _activate(x, kind, valid):
    y = {'none': x, 'softmax': x.softmax(1), 'sigmoid': x.sigmoid()}[kind]
    return y if valid is None else y * valid.unsqueeze(1).to(y.dtype)


def test_bands_cover_the_rows_equally(bands):
    bands(SMALL)
    maps = ClassMaps(torch.zeros(2, C, 23, 24, dtype=torch.float64))
    rows = maps.bands(1)
    assert rows[0][0] == 0 and rows[-1][1] == 23 and len(rows) == 5
    assert all(b == c for (_, b), (c, _) in zip(rows, rows[1:]))
    assert max(b - a for a, b in rows) - min(b - a for a, b in rows) <= 4  # equal, the last shorter
    assert [b - a for a, b in maps.bands(2)] == [4] * 5 + [3]  # 2 rows per row of reach
    assert ClassMaps(torch.zeros(2, C, 4, 24, dtype=torch.float64)).bands(1) == ((0, 4), )
    even = maps.bands(1, align=2)  # for the max pooling after the first block
    assert even[-1][1] == 23 and all(a % 2 == 0 for a, _ in even) and len(even) > 2
    for h in (21, 25):  # no band of one row: the last one joins the band before
        rows = ClassMaps(torch.zeros(2, C, h, 24, dtype=torch.float64)).bands(1, align=2)
        assert rows[-1][1] == h and all(b - a >= 2 for a, b in rows)


def _autograd_features(net, x, kind, valid, weights):
    """Features and input gradient from autograd through the plain ops (activation and mask,
    then conv, ReLU, max pooling), the whole maps at once."""
    x = x.clone().detach().requires_grad_()
    h, feats = _activate(x, kind, valid), []
    for op, weight, stride in net._plan(x.dtype, x.device, net.num_blocks):
        if op == 'conv':
            h = F.relu(F.conv2d(h, weight, stride=stride, padding=net.kernel_size // 2))
        elif op == 'max':
            h = F.max_pool2d(h, 2, 2)
        elif op == 'out':
            feats.append(h)
    sum((f * w).sum() for f, w in zip(feats, weights)).backward()
    return [f.detach() for f in feats], x.grad


@pytest.mark.parametrize('kind', ['none', 'softmax'])
@pytest.mark.parametrize('masked', [False, True])
@pytest.mark.parametrize('kernel_size', [3, 5])
@pytest.mark.parametrize('size', [(23, 24), (26, 19), (21, 17), (32, 16)])
@pytest.mark.parametrize('layout', [torch.contiguous_format, torch.channels_last])
@pytest.mark.parametrize('first_convs', [1, 2])
def test_banded_pooling_equals_autograd(bands, kind, masked, kernel_size, size, layout, first_convs):
    """The first block (one convolution as in (1,1,1,1,1), or two with a ReLU between as in
    VGG16) and the max pooling after it, band by band (even band starts, odd heights and
    widths, the last band short): the features and the gradient of autograd through the whole
    maps (float64), with NCHW (as on GPUs) and channels-last weights, and channels-last rows
    made from NCHW logits (32x16: planes of 4 KiB, transposed through the padded buffer), the
    gradient in the logits' layout."""
    g = torch.Generator().manual_seed(1)
    net = RandomVGG(in_channels=C, num_convs=(first_convs, 1), channels=(8, 8), kernel_size=kernel_size)
    if layout == torch.contiguous_format:
        net._weights = [w.contiguous() for w in net.weights()]
    x = (torch.randn(2, C, *size, dtype=torch.float64, generator=g) * 3).contiguous(memory_format=layout)
    valid = torch.rand(2, *size, generator=g) > 0.3 if masked else None
    bands(2 * C * size[1] * 8 * 6)
    assert len(ClassMaps(x).bands(kernel_size // 2 * first_convs, align=2)) > 2
    with torch.no_grad():
        weights = [torch.randn(f.shape, dtype=f.dtype, generator=g) for f in net(ClassMaps(x, kind, valid))]
    expected, expected_grad = _autograd_features(net, x, kind, valid, weights)
    # as the logits come, then channels-last rows of NCHW logits (with channels-last weights:
    # the CPU's case)
    for logits, rows in ((x, None), (x.contiguous(), torch.channels_last)):
        leaf = logits.clone().detach().requires_grad_()
        source, returned = leaf * 1, []  # a non-leaf: autograd relayouts a leaf's .grad itself
        source.register_hook(returned.append)
        feats = net(ClassMaps(source, kind, valid, layout=rows))
        sum((f * w).sum() for f, w in zip(feats, weights)).backward()
        for a, b in zip(feats, expected):
            torch.testing.assert_close(a, b)
        torch.testing.assert_close(leaf.grad, expected_grad)
        assert returned[0].is_contiguous(memory_format=memory_format(logits))  # the logits' layout
        with torch.no_grad():  # as the target runs: no argmax kept
            for a, b in zip(net(ClassMaps(logits, kind, valid, layout=rows)), expected):
                torch.testing.assert_close(a, b)


@pytest.mark.parametrize('kind', ['none', 'softmax', 'sigmoid'])
@pytest.mark.parametrize('masked', [False, True])
@pytest.mark.parametrize('kernel_size', [3, 5])
@pytest.mark.parametrize('layout', [torch.contiguous_format, torch.channels_last])
def test_banded_first_conv_equals_autograd(bands, kind, masked, kernel_size, layout):
    """Activation + mask inside the first conv, a band of rows at a time (the last one short):
    same features and the same gradient as autograd through the whole activated input in one
    piece (float64), for NCHW and channels-last logits."""
    g = torch.Generator().manual_seed(0)
    net = RandomVGG(in_channels=C, num_convs=(1, 2), channels=(8, 8), kernel_size=kernel_size)
    x = (torch.randn(2, C, 23, 24, dtype=torch.float64, generator=g) * 3).contiguous(memory_format=layout)
    valid = torch.rand(2, 23, 24, generator=g) > 0.3 if masked else None
    bands(SMALL)
    assert len(ClassMaps(x).bands(kernel_size // 2)) > 2
    weights = None
    grads = []
    feats_of = []
    returned = []
    for fused in (True, False):
        bands(SMALL if fused else WHOLE)
        leaf = x.clone().detach().requires_grad_()
        if fused:  # a non-leaf source: autograd relayouts a leaf's .grad itself
            source = leaf * 1
            source.register_hook(returned.append)
        maps = ClassMaps(source, kind, valid) if fused else ClassMaps(_activate(leaf, kind, valid))
        feats = net(maps)
        if weights is None:
            weights = [torch.randn(f.shape, dtype=f.dtype, generator=g) for f in feats]
        sum((f * w).sum() for f, w in zip(feats, weights)).backward()
        feats_of.append([f.detach() for f in feats])
        grads.append(leaf.grad)
    for a, b in zip(*feats_of):
        torch.testing.assert_close(a, b)
    torch.testing.assert_close(grads[0], grads[1])
    assert returned[0].is_contiguous(memory_format=layout)  # the logits' layout


@pytest.mark.parametrize('kind', ['none', 'softmax', 'sigmoid'])
@pytest.mark.parametrize('rows', [None, torch.channels_last])
@pytest.mark.parametrize('downsample', ['maxpool', 'avgpool'])
def test_one_band_gradient_in_the_logits_layout(bands, kind, rows, downsample):
    """Maps that fit one band: the gradient comes back in the NCHW logits' layout (the
    weights are channels-last) and equals the banded one. Seen by a hook on a non-leaf source:
    a leaf's ``.grad`` is brought to the leaf's layout by autograd itself."""
    x = torch.randn(2, C, 23, 24, dtype=torch.float64)
    net = RandomVGG(in_channels=C, num_convs=(1, 1), channels=(8, 8), downsample=downsample)
    grads = []
    for nbytes in (WHOLE, SMALL):
        bands(nbytes)
        source = x.clone().requires_grad_() * 1
        source.register_hook(grads.append)
        sum(f.sum() for f in net(ClassMaps(source, kind, layout=rows))).backward()
    assert all(g.is_contiguous() for g in grads)
    torch.testing.assert_close(grads[0], grads[1])


@pytest.mark.parametrize('size', [(23, 24), (16, 32), (16, 31)])
@pytest.mark.parametrize('dtype', [torch.float32, torch.float64])
def test_to_channels_last_equals_a_copy(size, dtype):
    """Direct and through the padded buffer (planes of a multiple of 4 KiB: 16x32 float64 maps,
    16x64 float32 maps): the values, channels-last, also for a band of rows and a dtype
    change."""
    x = torch.randn(2, C, *size, dtype=torch.float64)
    for band in (x, x[:, :, 3:11]):
        y = class_maps.to_channels_last(band, dtype)
        assert y.is_contiguous(memory_format=torch.channels_last) and y.dtype == dtype
        assert torch.equal(y, band.to(dtype))
    wide = torch.randn(2, C, 16, 64)
    assert torch.equal(class_maps.to_channels_last(wide[:, :, 5:9], torch.float32), wide[:, :, 5:9])


@pytest.mark.parametrize('kind', ['none', 'softmax', 'sigmoid'])
def test_channels_last_rows_of_nchw_logits(kind):
    """``layout=channels_last`` (the CPU's weights): NCHW logits give channels-last rows, the
    values of the NCHW rows."""
    x = torch.randn(2, C, 9, 11)
    rows = ClassMaps(x, kind, layout=torch.channels_last).rows(2, 7)
    assert rows.is_contiguous(memory_format=torch.channels_last)
    torch.testing.assert_close(rows, ClassMaps(x, kind).rows(2, 7))


@pytest.mark.parametrize('num_classes', [1, C])
@pytest.mark.parametrize('layout', [torch.contiguous_format, torch.channels_last])
def test_onehot_bands_equal_one_hot(bands, num_classes, layout):
    bands(2 * num_classes * 11 * 4 * 7)  # 5 rows per band
    labels = torch.randint(0, max(num_classes, 2), (2, 9, 11))
    labels[0, :2] = 255
    valid = labels != 255
    maps = ClassMaps(labels, 'onehot', valid, num_classes=num_classes, layout=layout)
    if num_classes == 1:
        expected = (labels == 1).float().unsqueeze(1)
    else:
        expected = F.one_hot(labels.clamp(max=num_classes - 1), num_classes).permute(0, 3, 1, 2).float()
        expected = expected * valid.unsqueeze(1)
    assert len(maps.bands(1)) == 2
    for a, b in maps.bands(1):  # the rows come in the layout asked for
        assert maps.rows(a, b).is_contiguous(memory_format=layout)
    torch.testing.assert_close(torch.cat([maps.rows(a, b) for a, b in maps.bands(1)], 2), expected)
    net = RandomVGG(in_channels=num_classes, num_convs=(1, 1), channels=(4, 4))
    with torch.no_grad():
        banded = net(maps)
        bands(WHOLE)
        for a, b in zip(banded, net(expected)):
            torch.testing.assert_close(a, b)


def test_many_classes_loss_equals_reference_definition(bands):
    """150 classes (bands of 5 rows), teacher logits and labels with ignored pixels: the loss and
    its gradient equal the definition written with whole softmax/one-hot maps (float64)."""
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
        bands(2 * 150 * 16 * 8 * 7)
        assert len(ClassMaps(pred).bands(1)) == 4
        value = loss(ours, target)
        value.backward()
        bands(WHOLE)
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


def test_banded_under_bf16_autocast_close_to_float32(bands):
    """Under autocast the bands are float32 softmax (as autocast's softmax), convolved in bf16:
    close to the float32 loss, gradient in the logits' dtype."""
    g = torch.Generator().manual_seed(2)
    loss = RandomPerceptualLoss(num_convs=(1, 1), channels=(16, 16))
    pred = torch.randn(2, C, 32, 32, generator=g)
    target = torch.randn(2, C, 32, 32, generator=g)
    full = pred.clone().requires_grad_()
    bands(WHOLE)
    expected = loss(full, target)
    expected.backward()
    bands(2 * C * 32 * 4 * 10)  # 8 rows per band
    assert len(ClassMaps(pred).bands(1)) == 4
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


def _dense(t: torch.Tensor) -> bool:
    return t.is_contiguous() or (t.dim() == 4 and t.is_contiguous(memory_format=torch.channels_last))


@pytest.mark.parametrize('layout', [torch.contiguous_format, torch.channels_last])
def test_banded_block_writes_in_place_only_dense_outputs(bands, layout):
    """CUDA's max pooling kernel, given an ``out=`` that is not dense (rows of NCHW maps), writes a
    dense block from the slice's start, over other rows, and leaves those rows unwritten (seen
    on an H200: loss values off and changing
    from call to call, NaN gradients under bf16); the CPU's writes them. So every ``.out`` op of
    the banded first block, forward and backward (pooling, softmax and its backward image by
    image), must get dense outputs, with the weights and logits in either layout."""
    outs = []

    class Record(TorchDispatchMode):
        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            kwargs = kwargs or {}
            if func._overloadname == 'out':
                outs.extend((func, v) for v in kwargs.values() if isinstance(v, torch.Tensor))
            return func(*args, **kwargs)

    net = RandomVGG(in_channels=C, num_convs=(1, 1), channels=(8, 8))
    net._weights = [w.contiguous(memory_format=layout) for w in net.weights()]
    x = torch.randn(2, C, 24, 24, dtype=torch.float64).contiguous(memory_format=layout).requires_grad_()
    bands(SMALL)
    assert len(ClassMaps(x).bands(1, align=2)) > 2
    with Record():
        feats = net(ClassMaps(x, 'softmax'))
        sum(f.sum() for f in feats).backward()
    assert all(_dense(t) for _, t in outs), [(f, t.shape, t.stride()) for f, t in outs if not _dense(t)]
    ops = {f for f, _ in outs}
    if layout == torch.channels_last:  # pooled in place image by image; softmax over NHWC images
        assert torch.ops.aten.max_pool2d_with_indices.out in ops and torch.ops.aten._softmax.out in ops
    bands(WHOLE)
    leaf = x.detach().requires_grad_()
    expected = net(leaf.softmax(1))
    sum(f.sum() for f in expected).backward()
    for a, b in zip(feats, expected):
        torch.testing.assert_close(a, b)
    torch.testing.assert_close(x.grad, leaf.grad)
