"""EncoderDecoder that adds the random perceptual loss against a frozen teacher (Eq. 2)."""
from contextlib import nullcontext
from typing import Callable, List, Optional

import torch
import torch.nn as nn
from mmengine.registry import MODELS
from mmseg.models.decode_heads.decode_head import BaseDecodeHead
from mmseg.models.segmentors import EncoderDecoder
from mmseg.models.utils import resize
from mmseg.utils import ConfigType, OptConfigType, OptMultiConfig, SampleList
from torch import Tensor

from mmperc.utils.consistency import check_same_on_all_ranks, tensors_digest
from ..losses.pixelwise_kd_loss import ONE_CHANNEL_MESSAGE as KD_ONE_CHANNEL_MESSAGE
from .teacher import CHECKPOINT_KEY, CONFIG_KEY, build_teacher, fuse_conv_bn_checked, probe_input

CASCADE_MESSAGE = ('cascade decode heads (CascadeEncoderDecoder: OCRNet, PointRend) are not supported: '
                   'distil into a single-head student (FCN, PSP, ASPP, DeepLabV3+, UPer, Segformer)')

#: ``model.teacher.autocast``: None (the student's autocast state) or the teacher's own dtype.
TEACHER_AUTOCAST = {None: None, 'bfloat16': torch.bfloat16}


@MODELS.register_module()
class PerceptualDistillSegmentor(EncoderDecoder):
    """mmseg's ``EncoderDecoder`` trained with ``CE + lambda * perceptual(student, teacher)``.

    The recipe of Liu et al., CVPR 2021 (Eq. 2, Table 6). An existing mmseg
    config gains it by inheritance; every other key of the model is inherited::

        _base_ = ['mmseg::pspnet/pspnet_r18-d8_4xb2-80k_cityscapes-769x769.py']
        custom_imports = dict(imports=['mmperc'], allow_failed_imports=False)
        model = dict(
            type='PerceptualDistillSegmentor',
            teacher=dict(config='mmseg::pspnet/pspnet_r101-d8_4xb2-80k_cityscapes-769x769.py',
                         checkpoint='https://.../pspnet_r101....pth'),
            loss_perc=dict(type='RandomPerceptualLoss', loss_weight=0.1))

    The decode head keeps its own losses (``decode.loss_ce``); the perceptual
    term is computed on the same decode-head logits and logged as
    ``decode.loss_perc``. The teacher:

    - is built and loaded only for training (in :meth:`init_weights`, or on
      the first :meth:`loss` call), never for test or inference;
    - is not a registered submodule: it is absent from ``state_dict``,
      ``parameters()``, the optimizer and DDP, so student checkpoints stay
      plain mmseg checkpoints;
    - stays in eval mode, has ``requires_grad=False`` and runs under
      ``no_grad`` inside the student's autocast context (or its own, ``autocast``);
    - may differ in architecture and output stride: both logits are resized
      to the label size before the loss.

    Args:
        teacher (dict, optional): ``dict(config=..., checkpoint=..., cfg_options=None,
            channels_last=True, fuse_conv_bn=True, autocast=None)``: the teacher's config
            (path or ``'mmseg::...'``), its checkpoint (path or URL), optional overrides of
            its config, whether its forward runs in ``channels_last`` memory format (same
            logits; measured 1.37x faster for a PSPNet-R101 teacher on a 2-core
            CPU, and faster under bf16 autocast on an H100), whether its batch norms are
            folded into its convolutions (same logits, checked on a probe input when
            the teacher is built: :func:`~.teacher.fuse_conv_bn_checked`; 1.12-1.13x faster
            for a PSPNet-R101 teacher on a 2-core CPU), and its ``autocast``:
            ``'bfloat16'`` runs its forward under bf16 autocast whatever the
            student's precision, None under the student's autocast state (e.g.
            ``--amp``). bf16 rounds the logits, so it is off by default; it is for
            float32 training on hardware that computes bf16 fast (a PSPNet-R101
            teacher's forward 3.1-3.5x faster on a 2-core Xeon with AMX). None trains
            against one-hot ground truth instead. Defaults to None.
        loss_perc (dict): The perceptual loss config. Defaults to
            ``dict(type='RandomPerceptualLoss', loss_weight=0.1)`` (lambda of Eq. 2).
        loss_kd (dict, optional): An optional pixel-wise distillation loss
            called as ``loss_kd(student_logits, teacher_logits, valid_mask=...)``
            at label size, e.g. ``dict(type='PixelwiseKDLoss', loss_weight=1.0)``.
            Needs a teacher. Logged as ``decode.loss_kd``. Defaults to None.
        num_stages (int, optional): Only to refuse, with the reason, a
            ``CascadeEncoderDecoder`` config (OCRNet, PointRend) whose ``type`` was
            changed to this one. Defaults to None.
        Other args: as :class:`mmseg.models.segmentors.EncoderDecoder`.
    """

    def __init__(self,
                 backbone: ConfigType,
                 decode_head: ConfigType,
                 teacher: Optional[dict] = None,
                 loss_perc: ConfigType = dict(type='RandomPerceptualLoss', loss_weight=0.1),
                 loss_kd: OptConfigType = None,
                 neck: OptConfigType = None,
                 auxiliary_head: OptConfigType = None,
                 train_cfg: OptConfigType = None,
                 test_cfg: OptConfigType = None,
                 data_preprocessor: OptConfigType = None,
                 pretrained: Optional[str] = None,
                 init_cfg: OptMultiConfig = None,
                 num_stages: Optional[int] = None) -> None:
        if num_stages is not None:  # left over from a CascadeEncoderDecoder config
            raise TypeError(CASCADE_MESSAGE)
        super().__init__(
            backbone=backbone,
            decode_head=decode_head,
            neck=neck,
            auxiliary_head=auxiliary_head,
            train_cfg=train_cfg,
            test_cfg=test_cfg,
            data_preprocessor=data_preprocessor,
            pretrained=pretrained,
            init_cfg=init_cfg)
        if type(self.decode_head).loss is not BaseDecodeHead.loss:
            raise TypeError(
                f'{type(self.decode_head).__name__} overrides loss(); PerceptualDistillSegmentor '
                'needs a decode head whose loss is forward() + loss_by_feat() '
                '(BaseDecodeHead.loss), as FCN/PSP/ASPP/DepthwiseSeparableASPP/UPer/Segformer heads have; '
                + CASCADE_MESSAGE)
        self.teacher_cfg = self._check_teacher_cfg(teacher)
        if loss_kd is not None and self.teacher_cfg is None:
            raise ValueError('loss_kd distils from a teacher: set model.teacher or drop loss_kd')
        self.loss_perc = MODELS.build(loss_perc)
        network = getattr(self.loss_perc, 'network', None)
        if network is not None and network.in_channels is not None and network.in_channels != self.out_channels:
            raise ValueError(
                f'loss_perc.in_channels={network.in_channels} but the decode head predicts '
                f'{self.out_channels} classes: set them equal or leave in_channels=None')
        if network is not None and network.in_channels is None:
            network.materialize(self.out_channels)  # the class count is known: made once, before any step
        check_activations = getattr(self.loss_perc, 'check_activations', None)
        if check_activations is not None:  # e.g. a softmax over a binary head's one channel
            check_activations(self.out_channels, float_target=self.teacher_cfg is not None)
        self.loss_kd = MODELS.build(loss_kd) if loss_kd is not None else None
        if self.loss_kd is not None and self.out_channels == 1:
            raise ValueError(f'model.loss_kd: {KD_ONE_CHANNEL_MESSAGE}')
        self._check_loss_names()
        # Plain attribute, not a submodule: kept out of state_dict, parameters() and DDP.
        object.__setattr__(self, '_teacher', None)

    def _check_loss_names(self) -> None:
        """The segmentor's terms must not replace the decode head's own losses of the same name."""
        head_losses = self.decode_head.loss_decode
        taken = {loss.loss_name: 'decode_head.loss_decode'
                 for loss in (head_losses if isinstance(head_losses, nn.ModuleList) else [head_losses])}
        for key, loss in (('loss_perc', self.loss_perc), ('loss_kd', self.loss_kd)):
            if loss is None:
                continue
            if loss.loss_name in taken:
                raise ValueError(
                    f'model.{key} is named {loss.loss_name!r} like a loss of {taken[loss.loss_name]}, '
                    f'which it would silently replace: drop that loss from {taken[loss.loss_name]} '
                    f'(model.{key} computes it on the same logits) or set model.{key}.loss_name')
            taken[loss.loss_name] = f'model.{key}'

    @staticmethod
    def _check_teacher_cfg(teacher: Optional[dict]) -> Optional[dict]:
        if teacher is None:
            return None
        allowed = {'config', 'checkpoint', 'cfg_options', 'channels_last', 'autocast', 'fuse_conv_bn'}
        unknown = set(teacher) - allowed
        if unknown:
            raise ValueError(f'model.teacher has unknown keys {sorted(unknown)}; allowed: {sorted(allowed)}')
        for key in ('channels_last', 'fuse_conv_bn'):
            if not isinstance(teacher.get(key, True), bool):
                raise ValueError(f'model.teacher.{key} must be True or False, but got {teacher[key]!r}')
        if teacher.get('autocast') not in TEACHER_AUTOCAST:
            raise ValueError(f'model.teacher.autocast must be one of {tuple(TEACHER_AUTOCAST)}, '
                             f'but got {teacher["autocast"]!r}')
        if not teacher.get('config'):
            raise ValueError(f'model.teacher needs a config: set {CONFIG_KEY}')
        if not teacher.get('checkpoint'):
            raise ValueError(
                f'model.teacher needs a checkpoint: set {CHECKPOINT_KEY} to a path or URL '
                f'(e.g. --cfg-options {CHECKPOINT_KEY}=/path/to/teacher.pth)')
        return dict(teacher)

    @property
    def teacher(self) -> Optional[nn.Module]:
        """The frozen teacher, built on first use (None in ground-truth mode)."""
        if self._teacher is None and self.teacher_cfg is not None:
            self._build_teacher()
        return self._teacher

    @property
    def _teacher_channels_last(self) -> bool:
        """Whether the teacher runs in channels_last (``model.teacher.channels_last``, default True)."""
        return bool(self.teacher_cfg.get('channels_last', True))

    def _build_teacher(self) -> None:
        device = next(self.parameters()).device
        teacher = build_teacher(
            self.teacher_cfg['config'],
            self.teacher_cfg['checkpoint'],
            cfg_options=self.teacher_cfg.get('cfg_options'),
            device=device)
        self._check_teacher(teacher)
        if self.teacher_cfg.get('fuse_conv_bn', True):
            teacher = fuse_conv_bn_checked(teacher, probe_input(teacher, device))
        if self._teacher_channels_last:
            teacher.to(memory_format=torch.channels_last)
        object.__setattr__(self, '_teacher', teacher)

    def _check_teacher(self, teacher: nn.Module) -> None:
        """Fail early on class-count or input-normalisation mismatches."""
        head = getattr(teacher, 'decode_head', None)
        if isinstance(head, nn.ModuleList):  # a cascade teacher (OCRNet): its last head predicts
            head = head[-1]
        num_classes = getattr(head, 'out_channels', None)
        if num_classes is not None and num_classes != self.out_channels:
            raise ValueError(
                f'teacher predicts {num_classes} output channels but the student {self.out_channels} '
                '(out_channels: num_classes, or 1 for a binary head with a sigmoid): use a teacher '
                f'trained on the same classes with the same kind of head ({CONFIG_KEY}/{CHECKPOINT_KEY}) '
                'or the same num_classes/out_channels in the student')
        for attr in ('mean', 'std'):
            mine = getattr(self.data_preprocessor, attr, None)
            theirs = getattr(teacher.data_preprocessor, attr, None)
            if (mine is None) != (theirs is None) or (
                    mine is not None and not torch.allclose(mine.cpu().float(), theirs.cpu().float())):
                raise ValueError(
                    f'teacher and student data_preprocessor {attr} differ ({theirs} vs {mine}): '
                    'the teacher sees the student\'s normalised inputs, so both configs must '
                    'normalise images the same way')
        mine = getattr(self.data_preprocessor, 'channel_conversion', None)
        theirs = getattr(teacher.data_preprocessor, 'channel_conversion', None)
        if mine != theirs:
            raise ValueError(
                'teacher and student data_preprocessor differ in bgr_to_rgb/rgb_to_bgr: '
                'use the same channel order in both configs')

    def init_weights(self) -> None:
        """Initialise the student, then build and load the teacher (training only).

        Also checks that the teacher and the loss network are identical on
        every rank of a distributed run (a digest of their weights, gathered).
        """
        super().init_weights()
        if self.teacher_cfg is not None and self._teacher is None:
            self._build_teacher()
        if self._teacher is not None:
            check_same_on_all_ranks('teacher', tensors_digest(self._teacher.state_dict().values()))
        network = getattr(self.loss_perc, 'network', None)
        if network is not None and network.in_channels is not None:
            check_same_on_all_ranks('loss network', tensors_digest(network.weights()))

    def train(self, mode: bool = True) -> 'PerceptualDistillSegmentor':
        """Switch the student's mode; the teacher always stays in eval mode."""
        super().train(mode)
        if self._teacher is not None:
            self._teacher.eval()
        return self

    def _apply(self, fn: Callable, recurse: bool = True) -> 'PerceptualDistillSegmentor':
        """Move/cast the teacher together with the student (``.to()``, ``.cuda()``)."""
        super()._apply(fn, recurse)
        if self._teacher is not None:
            self._teacher._apply(fn)
        return self

    @torch.no_grad()
    def teacher_logits(self, inputs: Tensor) -> Tensor:
        """Per-pixel class scores of the teacher for the preprocessed ``inputs``."""
        teacher = self.teacher
        if self._teacher_channels_last:
            inputs = inputs.contiguous(memory_format=torch.channels_last)
        dtype = TEACHER_AUTOCAST[self.teacher_cfg.get('autocast')]
        with nullcontext() if dtype is None else torch.autocast(inputs.device.type, dtype=dtype):
            logits = teacher._forward(inputs)
        if not isinstance(logits, Tensor) or logits.dim() != 4:
            raise TypeError(
                f'{type(self.teacher).__name__}._forward must return (N, C, H, W) logits to '
                f'act as a teacher, but returned {type(logits).__name__}')
        if logits.shape[1] != self.out_channels:
            raise ValueError(
                f'teacher logits have {logits.shape[1]} channels but the student predicts '
                f'{self.out_channels} classes')
        return logits

    def loss(self, inputs: Tensor, data_samples: SampleList) -> dict:
        """Student losses plus the perceptual term (and the optional KD term)."""
        teacher_logits = self.teacher_logits(inputs) if self.teacher_cfg is not None else None
        x = self.extract_feat(inputs)
        losses = self._distill_decode_head_forward_train(x, data_samples, teacher_logits)
        if self.with_auxiliary_head:
            losses.update(self._auxiliary_head_forward_train(x, data_samples))
        return losses

    def _perc_memory_format(self, device: torch.device) -> torch.memory_format:
        """The input layout ``loss_perc`` asks for (NCHW for a loss that does not say)."""
        memory_format = getattr(self.loss_perc, 'memory_format', None)
        return memory_format(device) if callable(memory_format) else torch.contiguous_format

    def _distill_decode_head_forward_train(self, x: List[Tensor], data_samples: SampleList,
                                           teacher_logits: Optional[Tensor]) -> dict:
        """Decode-head losses with ``loss_perc`` (and ``loss_kd``) on the same logits."""
        head = self.decode_head
        seg_logits = head(x)
        if not isinstance(seg_logits, Tensor):
            raise TypeError(
                f'{type(head).__name__} returns {type(seg_logits).__name__} in training, not one '
                '(N, C, H, W) logits tensor: heads with several outputs (KNet, DDRNet, PIDNet) are not '
                'supported by PerceptualDistillSegmentor; ' + CASCADE_MESSAGE)
        losses = head.loss_by_feat(seg_logits, data_samples)
        seg_label = head._stack_batch_gt(data_samples).squeeze(1)
        size = seg_label.shape[-2:]
        # both sides resized in the layout the loss reads fastest (channels-last on the CPU and CUDA):
        # only the small logits are transposed, the resized maps come out in it
        layout = self._perc_memory_format(seg_logits.device)
        student = resize(seg_logits.contiguous(memory_format=layout), size=size, mode='bilinear',
                         align_corners=self.align_corners)
        if teacher_logits is None:
            target, valid = seg_label, None
        else:
            # in the teacher's own convention (its configs may set align_corners otherwise)
            target = resize(teacher_logits.float().contiguous(memory_format=layout), size=size, mode='bilinear',
                            align_corners=getattr(self.teacher, 'align_corners', self.align_corners))
            valid = seg_label != head.ignore_index
        losses[self.loss_perc.loss_name] = self.loss_perc(
            student, target, ignore_index=head.ignore_index, valid_mask=valid)
        if self.loss_kd is not None:
            losses[self.loss_kd.loss_name] = self.loss_kd(student, target, valid_mask=valid)
        return {f'decode.{k}': v for k, v in losses.items()}
