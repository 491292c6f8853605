"""PerceptualDistillSegmentor: the teacher contract and the plain-mmseg checkpoint contract."""
import copy
import logging

import pytest
import torch
from mmengine.structures import PixelData
from mmseg.structures import SegDataSample

from conftest import SHRUNK_TEACHER, TEACHER_CFG, build, model_cfg
from mmperc.models.segmentors import teacher as teacher_module
from mmperc.models.segmentors.teacher import fuse_conv_bn_checked, probe_input


def distill_cfg(teacher_ckpt, **teacher_extra):
    cfg = model_cfg()
    cfg.type = 'PerceptualDistillSegmentor'
    teacher = dict(config=TEACHER_CFG, checkpoint=teacher_ckpt, cfg_options=dict(SHRUNK_TEACHER))
    teacher.update(teacher_extra)  # a plain dict: replaces keys instead of merging them
    cfg.teacher = teacher
    cfg.loss_perc = dict(type='RandomPerceptualLoss', loss_weight=0.1, num_convs=(1, 1, 1, 1, 1))
    return cfg


def batch(n=2, size=64, num_classes=19, seed=0):
    g = torch.Generator().manual_seed(seed)
    inputs = torch.randn(n, 3, size, size, generator=g)
    samples = []
    for _ in range(n):
        label = torch.randint(0, num_classes, (1, size, size), generator=g)
        label[:, :4] = 255
        sample = SegDataSample(gt_sem_seg=PixelData(data=label))
        sample.set_metainfo(dict(img_shape=(size, size), pad_shape=(size, size), ori_shape=(size, size)))
        samples.append(sample)
    return inputs, samples


@pytest.fixture
def model(teacher_ckpt):
    torch.manual_seed(0)
    segmentor = build(distill_cfg(teacher_ckpt))
    segmentor.init_weights()
    return segmentor


def test_losses_logged_and_teacher_frozen(model):
    model.train()
    assert model.teacher is not None and not model.teacher.training
    assert all(not m.training for m in model.teacher.modules())
    before = {k: v.clone() for k, v in model.teacher.state_dict().items()}
    inputs, samples = batch()
    losses = model.loss(inputs, samples)
    assert {'decode.loss_ce', 'decode.loss_perc', 'decode.acc_seg', 'aux.loss_ce'} <= set(losses)
    assert torch.isfinite(losses['decode.loss_perc']) and losses['decode.loss_perc'] > 0
    total = sum(v for k, v in losses.items() if 'loss' in k)
    optim = torch.optim.SGD(model.parameters(), lr=0.1)
    total.backward()
    optim.step()
    assert all(p.grad is None for p in model.teacher.parameters())
    assert all(not p.requires_grad for p in model.teacher.parameters())
    for key, value in model.teacher.state_dict().items():
        assert torch.equal(value, before[key]), key
    student_grads = [p.grad for p in model.decode_head.parameters() if p.requires_grad]
    assert any(g is not None and g.abs().sum() > 0 for g in student_grads)


def test_teacher_outside_state_dict_parameters_and_optimizer(teacher_ckpt):
    model = build(distill_cfg(teacher_ckpt, fuse_conv_bn=False))  # the checkpoint's weights as they are
    model.init_weights()
    teacher_params = {id(p) for p in model.teacher.parameters()}
    assert not teacher_params & {id(p) for p in model.parameters()}
    assert not any(k.startswith(('teacher', '_teacher', 'loss_perc')) for k in model.state_dict())
    plain = build(model_cfg())
    plain.load_state_dict(model.state_dict(), strict=True)
    assert set(plain.state_dict()) == set(model.state_dict())
    model.init_weights()  # a second call never re-initialises the teacher
    reloaded = torch.load(teacher_ckpt, weights_only=True)['state_dict']
    for key, value in model.teacher.state_dict().items():
        assert torch.equal(value, reloaded[key])


def test_student_only_at_inference_and_no_teacher_built_without_training(teacher_ckpt):
    segmentor = build(distill_cfg(teacher_ckpt))
    segmentor.eval()
    inputs, samples = batch(n=1)
    with torch.no_grad():
        out = segmentor.predict(inputs, samples)
    assert out[0].pred_sem_seg.data.shape[-2:] == (64, 64)
    assert segmentor._teacher is None


def test_same_prediction_as_plain_mmseg_model(model):
    plain = build(model_cfg())
    plain.load_state_dict(model.state_dict(), strict=True)
    model.eval()
    plain.eval()
    inputs, samples = batch(n=1)
    with torch.no_grad():
        a = model.predict(inputs, copy.deepcopy(samples))[0].seg_logits.data
        b = plain.predict(inputs, copy.deepcopy(samples))[0].seg_logits.data
    assert torch.equal(a, b)


def test_teacher_with_other_output_stride(teacher_ckpt):
    """A teacher at 1/32 resolution distils into a 1/8 student (logits resized, no assert)."""
    options = dict(SHRUNK_TEACHER)
    options.update({'model.backbone.dilations': (1, 1, 1, 1), 'model.backbone.strides': (1, 2, 2, 2)})
    segmentor = build(distill_cfg(teacher_ckpt, cfg_options=options))
    segmentor.init_weights()
    inputs, samples = batch()
    assert segmentor.teacher_logits(inputs).shape[-2:] == (2, 2)
    losses = segmentor.loss(inputs, samples)
    assert torch.isfinite(losses['decode.loss_perc'])


def test_ground_truth_mode_without_teacher():
    cfg = model_cfg()
    cfg.type = 'PerceptualDistillSegmentor'
    cfg.loss_perc = dict(type='RandomPerceptualLoss', loss_weight=0.1, num_convs=(1, 1, 1, 1, 1))
    segmentor = build(cfg)
    segmentor.init_weights()
    assert segmentor.teacher is None
    losses = segmentor.loss(*batch())
    assert torch.isfinite(losses['decode.loss_perc'])


def test_num_classes_mismatch_fails_early(teacher_ckpt):
    cfg = distill_cfg(teacher_ckpt)
    cfg.decode_head.num_classes = 5
    cfg.auxiliary_head.num_classes = 5
    segmentor = build(cfg)
    with pytest.raises(ValueError, match='teacher predicts 19 output channels but the student 5'):
        segmentor.init_weights()


def test_preprocessor_mismatch_fails_early(teacher_ckpt):
    cfg = distill_cfg(teacher_ckpt)
    cfg.data_preprocessor.mean = [0.0, 0.0, 0.0]
    with pytest.raises(ValueError, match='data_preprocessor mean'):
        build(cfg).init_weights()


def test_missing_checkpoint_names_the_key(teacher_ckpt, tmp_path):
    with pytest.raises(FileNotFoundError, match='model.teacher.checkpoint'):
        build(distill_cfg(str(tmp_path / 'missing.pth'))).init_weights()
    with pytest.raises(ValueError, match='model.teacher.checkpoint'):
        build(distill_cfg(None))


def test_checkpoint_that_does_not_fit_the_teacher_config(teacher_ckpt):
    segmentor = build(distill_cfg(teacher_ckpt, cfg_options={'model.pretrained': None}))  # real R101
    with pytest.raises(ValueError, match='does not fit the teacher config'):
        segmentor.init_weights()


def test_unknown_teacher_key_raises(teacher_ckpt):
    with pytest.raises(ValueError, match='unknown keys'):
        build(distill_cfg(teacher_ckpt, checkpont='x'))


def test_to_moves_teacher_with_student(model):
    model.to(torch.float64)
    assert next(model.teacher.parameters()).dtype == torch.float64


def test_teacher_runs_under_student_autocast(model):
    inputs, samples = batch()
    with torch.autocast('cpu', dtype=torch.bfloat16):
        assert model.teacher_logits(inputs).dtype == torch.bfloat16
        losses = model.loss(inputs, samples)
    assert torch.isfinite(losses['decode.loss_perc'])


def test_teacher_in_bf16_autocast_of_its_own(teacher_ckpt):
    """model.teacher.autocast='bfloat16': the teacher's forward in bf16 while the student
    trains in float32; its logits are the float32 ones rounded."""
    torch.manual_seed(0)
    bf16 = build(distill_cfg(teacher_ckpt, autocast='bfloat16'))
    plain = build(distill_cfg(teacher_ckpt))
    inputs, samples = batch()
    logits, reference = bf16.teacher_logits(inputs), plain.teacher_logits(inputs)
    assert logits.dtype == torch.bfloat16 and reference.dtype == torch.float32
    scale = reference.abs().max().item()
    torch.testing.assert_close(logits.float(), reference, rtol=0, atol=0.05 * scale)
    assert not torch.equal(logits.float(), reference)
    losses = bf16.loss(inputs, samples)
    assert torch.isfinite(losses['decode.loss_perc'])
    assert bf16.decode_head(bf16.extract_feat(inputs)).dtype == torch.float32  # the student's own precision


def test_teacher_autocast_must_be_bf16_or_none(teacher_ckpt):
    with pytest.raises(ValueError, match=r"model.teacher.autocast must be one of \(None, 'bfloat16'\)"):
        build(distill_cfg(teacher_ckpt, autocast='float16'))


def test_teacher_batch_norms_folded_with_the_same_logits(teacher_ckpt):
    torch.manual_seed(0)
    fused = build(distill_cfg(teacher_ckpt))  # fuse_conv_bn=True by default
    # built by the segmentor as training builds it: folded
    assert not any(isinstance(m, torch.nn.modules.batchnorm._BatchNorm) for m in fused.teacher.modules())
    plain = build(distill_cfg(teacher_ckpt, fuse_conv_bn=False))
    norms = [m for m in plain.teacher.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    for m in norms:  # the checkpoint's statistics are fresh ones: make each norm do something
        m.running_mean.uniform_(-0.5, 0.5), m.running_var.uniform_(0.5, 2.0), m.weight.data.uniform_(0.5, 1.5)
    fused_teacher = fuse_conv_bn_checked(plain.teacher, probe_input(plain.teacher, torch.device('cpu')))
    object.__setattr__(fused, '_teacher', fused_teacher.to(memory_format=torch.channels_last))
    assert norms and not any(isinstance(m, torch.nn.modules.batchnorm._BatchNorm) for m in fused.teacher.modules())
    assert not any(p.requires_grad for p in fused.teacher.parameters()) and not fused.teacher.training
    inputs, _ = batch()
    expected = plain.teacher_logits(inputs)
    torch.testing.assert_close(fused.teacher_logits(inputs), expected, rtol=1e-4,
                               atol=1e-4 * expected.abs().max().item())


class _NormBeforeConv(torch.nn.Module):
    """A norm registered after the convolution it runs before: mmcv's fuse_conv_bn folds it
    into the wrong side."""

    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(4, 4, 3, padding=1)
        self.norm = torch.nn.BatchNorm2d(4)
        self.norm.running_mean.uniform_(-1, 1)
        self.norm.running_var.uniform_(0.5, 2.0)

    def _forward(self, x):
        return self.conv(self.norm(x))


def test_teacher_folding_that_changes_the_logits_is_not_kept(monkeypatch):
    torch.manual_seed(0)
    teacher = _NormBeforeConv().eval().requires_grad_(False)
    probe = probe_input(teacher, torch.device('cpu'), size=16)
    assert probe.shape == (1, 4, 16, 16)
    warnings = []
    monkeypatch.setattr(teacher_module, 'print_log', lambda msg, **kwargs: warnings.append((msg, kwargs['level'])))
    kept = fuse_conv_bn_checked(teacher, probe)
    assert kept is teacher and isinstance(teacher.norm, torch.nn.BatchNorm2d)
    assert len(warnings) == 1 and warnings[0][1] == logging.WARNING, warnings
    assert 'teacher batch norms not folded' in warnings[0][0] and 'fuse_conv_bn=False' in warnings[0][0]


def test_teacher_flags_must_be_bool(teacher_ckpt):
    with pytest.raises(ValueError, match='model.teacher.fuse_conv_bn must be True or False'):
        build(distill_cfg(teacher_ckpt, fuse_conv_bn='no'))


def test_optional_pixelwise_kd_term(teacher_ckpt):
    cfg = distill_cfg(teacher_ckpt)
    cfg.loss_kd = dict(type='PixelwiseKDLoss', temperature=2.0)
    segmentor = build(cfg)
    segmentor.init_weights()
    losses = segmentor.loss(*batch())
    assert losses['decode.loss_kd'] > 0
    cfg.pop('teacher')
    with pytest.raises(ValueError, match='loss_kd distils from a teacher'):
        build(cfg)


def test_channels_last_teacher_gives_the_same_logits(teacher_ckpt):
    torch.manual_seed(0)
    fast = build(distill_cfg(teacher_ckpt))  # channels_last by default
    plain = build(distill_cfg(teacher_ckpt, channels_last=False))
    conv = next(m for m in fast.teacher.modules() if isinstance(m, torch.nn.Conv2d) and m.kernel_size[0] > 1)
    assert conv.weight.is_contiguous(memory_format=torch.channels_last)
    inputs, _ = batch()
    torch.testing.assert_close(fast.teacher_logits(inputs), plain.teacher_logits(inputs), rtol=1e-4, atol=1e-4)


def test_perceptual_loss_gets_maps_in_its_memory_format(model, monkeypatch):
    """On the CPU the student's and the teacher's logits reach the perceptual loss
    channels-last (resized from the transposed small logits), its fast layout: the same loss
    and student gradient as NCHW maps."""
    layouts = []
    forward = model.loss_perc.forward

    def spy(pred, target, **kwargs):
        layouts.append([t.is_contiguous(memory_format=torch.channels_last) for t in (pred, target)])
        return forward(pred, target, **kwargs)

    monkeypatch.setattr(model.loss_perc, 'forward', spy)
    inputs, samples = batch()
    results = []
    for layout in (None, torch.contiguous_format):
        if layout is not None:
            monkeypatch.setattr(model, '_perc_memory_format', lambda device: layout)
        model.zero_grad()
        torch.manual_seed(0)  # the same dropout
        losses = model.loss(inputs, samples)
        losses['decode.loss_perc'].backward()
        results.append((losses['decode.loss_perc'].detach(),
                        [p.grad.clone() for p in model.decode_head.parameters() if p.grad is not None]))
    assert layouts == [[True, True], [False, False]]
    torch.testing.assert_close(results[0][0], results[1][0], rtol=1e-5, atol=0)
    assert results[0][1]
    for a, b in zip(results[0][1], results[1][1]):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-9)


@pytest.mark.parametrize('student_align', [False, True])
def test_teacher_logits_resized_in_the_teachers_convention(teacher_ckpt, monkeypatch, student_align):
    """The teacher's logits reach the label size as the teacher's own inference resizes them
    (its align_corners), whatever the student's: the 769 teacher (True) with a student whose
    config says False got its soft target stretched against the labels."""
    import torch.nn.functional as F
    cfg = distill_cfg(teacher_ckpt)
    cfg.decode_head.align_corners = cfg.auxiliary_head.align_corners = student_align
    segmentor = build(cfg)
    segmentor.init_weights()
    assert segmentor.teacher.align_corners is True and segmentor.align_corners is student_align
    targets = []
    forward = segmentor.loss_perc.forward
    monkeypatch.setattr(segmentor.loss_perc, 'forward',
                        lambda pred, target, **kwargs: targets.append(target) or forward(pred, target, **kwargs))
    inputs, samples = batch()
    segmentor.loss(inputs, samples)
    own = F.interpolate(segmentor.teacher_logits(inputs), size=(64, 64), mode='bilinear', align_corners=True)
    torch.testing.assert_close(targets[0], own, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize('content', [b'', b'<html>404 Not Found</html>', 'truncated'])
def test_unreadable_teacher_checkpoint_names_the_key(teacher_ckpt, tmp_path, content):
    """An empty file, an HTML error page or a truncated download: a ValueError naming the key,
    not a bare EOFError / zip error, nor an 'unsafe pickle' advice that cannot work."""
    path = tmp_path / 'teacher.pth'
    path.write_bytes(open(teacher_ckpt, 'rb').read()[:2000] if content == 'truncated' else content)
    with pytest.raises(ValueError, match=r'could not be loaded: set model\.teacher\.checkpoint.*could not be read'):
        build(distill_cfg(str(path))).init_weights()


def test_unreachable_teacher_url_names_the_key(teacher_ckpt, tmp_path, monkeypatch):
    monkeypatch.setenv('TORCH_HOME', str(tmp_path))  # nothing cached
    with pytest.raises(ValueError, match=r'could not be loaded: set model\.teacher\.checkpoint.*reachable URL'):
        build(distill_cfg('http://127.0.0.1:9/teacher.pth')).init_weights()


def test_cascade_teacher_class_count_checked_early(teacher_ckpt):
    """A cascade teacher (OCRNet: a ModuleList of heads) is checked by its last head."""
    segmentor = build(distill_cfg(teacher_ckpt))
    teacher = torch.nn.Module()
    teacher.decode_head = torch.nn.ModuleList([torch.nn.Conv2d(1, 19, 1), torch.nn.Conv2d(1, 7, 1)])
    teacher.decode_head[0].out_channels, teacher.decode_head[1].out_channels = 19, 7
    with pytest.raises(ValueError, match='teacher predicts 7 output channels but the student 19'):
        segmentor._check_teacher(teacher)


def test_binary_head_refuses_constant_terms_at_build(teacher_ckpt):
    """out_channels=1 (sigmoid): a softmax perceptual term or the softmax KD term would be constant
    (zero gradient); both are refused when the model is built, before the teacher is loaded."""
    def binary(cfg):
        for head in (cfg.decode_head, cfg.auxiliary_head):
            head.update(num_classes=2, out_channels=1,
                        loss_decode=dict(type='CrossEntropyLoss', use_sigmoid=True, loss_weight=1.0))
        return cfg

    with pytest.raises(ValueError, match="pred_activation='softmax' over 1 channel"):
        build(binary(distill_cfg(teacher_ckpt)))
    cfg = binary(distill_cfg(teacher_ckpt))
    cfg.loss_perc.update(pred_activation='sigmoid')
    with pytest.raises(ValueError, match="target_activation='softmax' over 1 channel"):
        build(cfg)
    cfg.loss_perc.update(target_activation='sigmoid')
    build(copy.deepcopy(cfg))
    cfg.loss_kd = dict(type='PixelwiseKDLoss')
    with pytest.raises(ValueError, match='model.loss_kd: PixelwiseKDLoss compares softmax class maps'):
        build(cfg)


def test_loss_named_like_a_decode_head_loss_is_refused(teacher_ckpt):
    """A ground-truth perceptual term in loss_decode would be silently replaced by the teacher's."""
    cfg = distill_cfg(teacher_ckpt)
    cfg.decode_head.loss_decode = [dict(type='CrossEntropyLoss', loss_weight=1.0),
                                   dict(type='RandomPerceptualLoss', num_convs=(1, 1, 1, 1, 1), loss_weight=0.1)]
    with pytest.raises(ValueError, match="model.loss_perc is named 'loss_perc' like a loss of decode_head.loss_decode"):
        build(cfg)
    cfg.loss_perc.loss_name = 'loss_perc_teacher'
    assert {'decode.loss_perc', 'decode.loss_perc_teacher'} <= set(build(cfg).loss(*batch()))
    cfg = distill_cfg(teacher_ckpt)
    cfg.loss_kd = dict(type='PixelwiseKDLoss', loss_name='loss_perc')
    with pytest.raises(ValueError, match="model.loss_kd is named 'loss_perc' like a loss of model.loss_perc"):
        build(cfg)


def test_cascade_and_multi_output_heads_get_the_documented_error(teacher_ckpt):
    cfg = distill_cfg(teacher_ckpt)
    cfg.num_stages = 2  # a CascadeEncoderDecoder config whose type was changed
    with pytest.raises(TypeError, match='cascade decode heads.*not supported'):
        build(cfg)
    segmentor = build(distill_cfg(teacher_ckpt))
    forward = segmentor.decode_head.forward
    segmentor.decode_head.forward = lambda x: [forward(x), forward(x)]  # as KNet's iterative head
    with pytest.raises(TypeError, match='returns list in training.*KNet'):
        segmentor.loss(*batch())
