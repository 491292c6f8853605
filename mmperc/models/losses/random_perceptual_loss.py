"""Random perceptual loss (Liu et al., "Generic Perceptual Loss for Modeling Structured
Output Dependencies", CVPR 2021)."""
import math
from contextlib import nullcontext
from typing import List, Optional, Sequence, Tuple, Union

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmengine.registry import MODELS
from mmseg.models.losses.utils import weight_reduce_loss
from torch import Tensor

from .class_maps import ClassMaps
from .random_vgg import InitType, RandomVGG

_ACTIVATIONS = ('softmax', 'sigmoid', 'none')
_CRITERIA = ('mse', 'l1')
_REDUCTIONS = ('none', 'mean', 'sum')
#: float16 is left out: without a loss scaler its gradients through the network underflow
#: (cosine 0.42 to float32's at loss_weight 1e-3, 128x128); bf16 has float32's range.
_AUTOCAST_DTYPES = {None: None, 'bfloat16': torch.bfloat16}
ResizeType = Union[None, float, int, Tuple[int, int]]


def _activate(x: Tensor, activation: str) -> Tensor:
    """Apply ``'softmax'`` (over channels), ``'sigmoid'`` or ``'none'``."""
    if activation == 'softmax':
        return x.softmax(dim=1)
    if activation == 'sigmoid':
        return x.sigmoid()
    return x


def _dense_view(x: Tensor) -> Tensor:
    """``x`` with its dimensions permuted so that it is contiguous, when some order is
    (channels-last maps: the NHWC view), else ``x``: a whole-tensor reduction then reads it as
    it lies instead of first copying it to NCHW (135 ms for a 150-class map at 256x256, batch 2)."""
    if x.is_contiguous():
        return x
    order = sorted(range(x.dim()), key=lambda d: (x.stride(d), x.shape[d]), reverse=True)
    view = x.permute(order)
    return view if view.is_contiguous() else x


#: The error for a non-finite input, by side (``'prediction'`` means training diverged:
#: ``benchmarks/evidence.py`` counts such runs by this text).
NON_FINITE_MESSAGE = 'RandomPerceptualLoss got a non-finite (NaN/Inf) {}'
#: What to do about a non-finite input, per side.
_NON_FINITE_FIXES = {
    'prediction': 'lower the learning rate or enable gradient clipping',
    'target': 'a teacher that outputs NaN/Inf has a broken checkpoint; ground truth (depth, masks) '
              'with missing values: set invalid_value to the value that marks them (NaN and Inf '
              'allowed), or replace them',
}


@torch.no_grad()
def _check_finite(x: Tensor, name: str) -> None:
    # One reduction instead of isfinite().all() (abs, compare, all: 20x slower on a class-sized
    # map): min and max propagate NaN and are infinite exactly when an element is.
    if x.numel() and not bool(torch.isfinite(torch.stack(torch.aminmax(_dense_view(x)))).all()):
        raise ValueError(f'{NON_FINITE_MESSAGE.format(name)}: {_NON_FINITE_FIXES[name]}')


def _check_activation(channels: int, activation: str, name: str) -> None:
    """A softmax over one channel is the constant 1: the loss would train nothing."""
    if channels == 1 and activation == 'softmax':
        raise ValueError(
            f"{name}='softmax' over 1 channel is constant (zero gradient): use 'sigmoid' for "
            "binary logits (a head with out_channels=1) or 'none' for depth and other values")


def _check_weight(weight: Tensor, pred: Tensor) -> None:
    """``weight`` is per sample ``(N,)`` or per pixel ``(N, H, W)`` of ``pred``."""
    n, _, h, w = pred.shape
    if tuple(weight.shape) not in ((n, ), (n, h, w)):
        raise ValueError(
            f'weight must be per sample ({n},) or per pixel {(n, h, w)} (the prediction\'s N, H, W), '
            f'but got shape {tuple(weight.shape)}')


def check_labels(labels: Tensor, num_classes: int, ignore_index: Optional[int]) -> Optional[Tensor]:
    """The ``(N, H, W)`` bool mask of valid pixels (None when none is ignored).

    Raises:
        ValueError: A label is neither in ``[0, C)`` (``{0, 1}`` for ``C=1``)
            nor ``ignore_index``.
    """
    labels = labels.long()  # compared with ints that uint8 would wrap (300 classes: 300 -> 44)
    valid = labels != ignore_index if ignore_index is not None else torch.ones_like(labels, dtype=torch.bool)
    upper = 2 if num_classes == 1 else num_classes
    bad = valid & ((labels < 0) | (labels >= upper))
    if bool(bad.any()):
        found = labels[bad].unique()[:8].tolist()
        raise ValueError(
            f'target labels must lie in [0, {upper}) or equal ignore_index={ignore_index}, '
            f'but found {found}: check num_classes of the head / in_channels of the loss, '
            'or the dataset\'s reduce_zero_label')
    return None if bool(valid.all()) else valid


def labels_to_onehot(labels: Tensor, num_classes: int, ignore_index: Optional[int],
                     dtype: torch.dtype) -> Tuple[Tensor, Optional[Tensor]]:
    """Turn a label map into one-hot maps and the mask of valid pixels.

    The loss itself never builds this tensor (its first convolution gathers the weight's
    columns by label, :func:`~.onehot_conv.onehot_conv2d`, or with few classes convolves
    one-hot rows a band at a time, :class:`ClassMaps`); it is the reference definition.

    Args:
        labels (Tensor): Integer labels ``(N, H, W)``.
        num_classes (int): Number of channels of the prediction. With 1 the
            labels are binary (0/1) masks.
        ignore_index (int, optional): Label excluded from the loss.
        dtype (torch.dtype): Dtype of the returned one-hot tensor.

    Returns:
        tuple[Tensor, Tensor | None]: ``(N, C, H, W)`` one-hot maps (zero at
        ignored pixels) and the ``(N, H, W)`` bool mask of valid pixels, or
        None when no pixel is ignored.

    Raises:
        ValueError: A label is neither in ``[0, C)`` (``{0, 1}`` for ``C=1``)
            nor ``ignore_index``.
    """
    valid = check_labels(labels, num_classes, ignore_index)
    return ClassMaps(labels, 'onehot', valid, num_classes=num_classes, dtype=dtype).whole(), valid


def _resize_size(size: Tuple[int, int], resize: ResizeType) -> Optional[Tuple[int, int]]:
    """The size the loss is evaluated at, or None to keep ``size``."""
    if resize is None:
        return None
    if isinstance(resize, (tuple, list)):
        return int(resize[0]), int(resize[1])
    return max(1, int(round(size[0] * resize))), max(1, int(round(size[1] * resize)))


@MODELS.register_module()
class RandomPerceptualLoss(nn.Module):
    """The generic (random) perceptual loss of Liu et al., CVPR 2021.

    ``loss = sum_j w_j * mean(criterion(phi_r^j(act(pred)), phi_r^j(target)))``
    where ``phi_r`` is a frozen, randomly initialised VGG-style network
    (:class:`RandomVGG`, Sections 3.1-3.2), ``j`` indexes its blocks and ``w_j``
    are ``layer_weights`` (the final block alone by default, Section 4.1.2).
    The target branch runs without autograd; only the prediction gets gradients.

    Used with ground truth, it drops into an mmseg head unchanged::

        loss_decode=[
            dict(type='CrossEntropyLoss', use_sigmoid=False, loss_weight=1.0),
            dict(type='RandomPerceptualLoss', loss_weight=0.1)]

    For teacher soft labels (the paper's Eq. 2) see
    :class:`mmperc.models.PerceptualDistillSegmentor`.

    Args:
        num_convs (Sequence[int]): Convolutions per block. Defaults to
            ``(2, 2, 4, 4, 4)``: VGG19's 16 convolutions and 5 poolings, the
            network of Section 4.2 (Table 6). ``(2, 2, 3, 3, 3)`` is VGG16,
            ``(1, 1, 1, 1, 1)`` the efficient structure of Table 2.
        channels (Sequence[int]): Output channels per block. Defaults to
            ``(64, 128, 256, 512, 512)``.
        kernel_size (int): Kernel size of every convolution (Table 3).
            Defaults to 3.
        downsample (str): ``'maxpool'``, ``'avgpool'`` or ``'conv'``
            (supplementary S2.2). Defaults to ``'maxpool'``.
        init (str | dict): ``'paper'`` (N(0, 2/(k*k*c_in)), Section 3.2),
            ``'xavier'``, ``dict(type='normal', std=s)`` or
            ``dict(type='uniform', a=a)`` (Table 4). Defaults to ``'paper'``.
        layer_weights (Sequence[float], optional): One weight per block for the
            multi-level variant, e.g. ``(1/16, 1/8, 1/4, 1/2, 1)``. None uses
            the final block only. Defaults to None.
        criterion (str): ``'mse'`` (Eq. 3) or ``'l1'``. Defaults to ``'mse'``.
        in_channels (int, optional): Channels of the prediction. None infers
            them on the first call. Defaults to None.
        pred_activation (str): ``'softmax'`` for logits, ``'sigmoid'`` for
            binary/instance masks, ``'none'`` for depth or probabilities.
            Defaults to ``'softmax'``.
        target_activation (str): Applied to a float target: ``'softmax'``
            (teacher logits), ``'sigmoid'`` or ``'none'`` (probabilities,
            depth). Integer targets are one-hot encoded instead. Defaults to
            ``'softmax'``.
        resize (float | tuple[int, int], optional): Evaluate the loss at a
            reduced resolution: a scale factor (e.g. 0.5) or an ``(h, w)``
            size. Both sides are resized bilinearly after activation. None
            keeps the input size. Defaults to None.
        invalid_value (float, optional): For float targets such as depth: pixels
            whose target equals it in every channel (e.g. 0 for missing depth;
            NaN and Inf work too) are excluded from both sides before the
            embedding. Defaults to None.
        log_input (bool): Compare ``log(max(x, log_eps))`` of both sides, e.g.
            log-depth for monocular depth. Defaults to False.
        log_eps (float): Clamp before the log. Defaults to 1e-3.
        seed (int): Seed of the loss network's private generator: every
            process, restart and resume sees the same network. Defaults to 0.
        check_finite (bool): Raise ``ValueError`` on NaN/Inf inputs (one
            device sync per call). Defaults to True.
        autocast (str, optional): ``'bfloat16'``: run the loss network under
            ``torch.autocast`` to bf16 even where the caller runs in float32 (e.g.
            training on a CPU, where mmengine's AMP is not available): the
            convolutions in bf16, the class maps' softmax, the distance and the
            value in float32 (float64 inputs: the convolutions stay float64 when the
            activation is ``'none'``; a softmax under autocast is float32). Pays
            only where the hardware computes in it (GPUs; CPUs with
            AMX or AVX-512 BF16: forward+backward 2.6x (``(1, 1, 1, 1, 1)``) and
            3.3x (VGG16) faster measured on one, the value within 0.2% and 0.4% of
            float32's; without them it is slower). None follows the caller.
            Defaults to None.
        winograd (bool): On the CPU in float32, run the 3x3 convolutions
            but the first, from 64 channels, as Winograd F(4x4, 3x3)
            (F(2x2, 3x3) for 512 -> 512 and without mmperc's C++ build;
            :class:`RandomVGG`), the loss's value within 1e-5 of direct
            convolutions, relative. False keeps no weight transforms.
            Defaults to True.
        reduction (str): ``'none'``, ``'mean'`` or ``'sum'`` over the
            embedding's elements. Defaults to ``'mean'``.
        loss_weight (float): Weight of the loss, the paper's lambda = 0.1
            (Eq. 2). Defaults to 1.0.
        loss_name (str): Name of the loss item; the ``loss_`` prefix puts it
            in the backward graph. Defaults to ``'loss_perc'``.

    Shape:
        - pred: ``(N, C, H, W)`` logits (or masks/depth with ``C=1``).
        - target: ``(N, C, H, W)`` float, or ``(N, H, W)`` integer labels.
        - output: scalar, or the ``(N, C_j, H_j, W_j)`` distance map of the
          single weighted block for ``reduction='none'``.
    """

    def __init__(self,
                 num_convs: Sequence[int] = (2, 2, 4, 4, 4),
                 channels: Sequence[int] = (64, 128, 256, 512, 512),
                 kernel_size: int = 3,
                 downsample: str = 'maxpool',
                 init: InitType = 'paper',
                 layer_weights: Optional[Sequence[float]] = None,
                 criterion: str = 'mse',
                 in_channels: Optional[int] = None,
                 pred_activation: str = 'softmax',
                 target_activation: str = 'softmax',
                 resize: ResizeType = None,
                 invalid_value: Optional[float] = None,
                 log_input: bool = False,
                 log_eps: float = 1e-3,
                 seed: int = 0,
                 check_finite: bool = True,
                 autocast: Optional[str] = None,
                 winograd: bool = True,
                 reduction: str = 'mean',
                 loss_weight: float = 1.0,
                 loss_name: str = 'loss_perc') -> None:
        super().__init__()
        for name, value, options in (('criterion', criterion, _CRITERIA),
                                     ('pred_activation', pred_activation, _ACTIVATIONS),
                                     ('target_activation', target_activation, _ACTIVATIONS),
                                     ('reduction', reduction, _REDUCTIONS),
                                     ('autocast', autocast, tuple(_AUTOCAST_DTYPES))):
            if value not in options:
                raise ValueError(f'{name} must be one of {options}, but got {value!r}')
        self.network = RandomVGG(
            in_channels=in_channels,
            num_convs=num_convs,
            channels=channels,
            kernel_size=kernel_size,
            downsample=downsample,
            init=init,
            seed=seed,
            winograd=winograd)
        if layer_weights is not None:
            layer_weights = tuple(float(w) for w in layer_weights)
            if len(layer_weights) != self.network.num_blocks:
                raise ValueError(
                    f'layer_weights needs one weight per block ({self.network.num_blocks}), '
                    f'but got {len(layer_weights)}: {layer_weights}')
            if not any(layer_weights):
                raise ValueError(f'layer_weights needs at least one non-zero weight, but got {layer_weights}')
        if in_channels is not None:
            _check_activation(in_channels, pred_activation, 'pred_activation')
        self.layer_weights = layer_weights
        if resize is not None and not isinstance(resize, (tuple, list)) and not resize > 0:
            raise ValueError(f'resize must be a positive scale or an (h, w) size, but got {resize!r}')
        if isinstance(resize, (tuple, list)):
            if len(resize) != 2 or not all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in resize):
                raise ValueError(
                    f'resize as a size must be two positive pixel counts (h, w), but got {resize!r}: '
                    'for a scale pass a single number, e.g. resize=0.5')
            resize = tuple(resize)
        if not log_eps > 0:
            raise ValueError(f'log_eps must be > 0 (log_input takes log(max(x, log_eps))), but got {log_eps!r}')
        self.resize = resize
        self.invalid_value = invalid_value
        self.log_input = log_input
        self.log_eps = log_eps
        self.criterion = criterion
        self.pred_activation = pred_activation
        self.target_activation = target_activation
        self.check_finite = check_finite
        self.autocast = autocast
        self.reduction = reduction
        self.loss_weight = loss_weight
        if not loss_name.startswith('loss_'):
            raise ValueError(f"loss_name must start with 'loss_' to be back-propagated, got {loss_name!r}")
        self._loss_name = loss_name

    @property
    def loss_name(self) -> str:
        """Name of the loss item in the losses dict (``loss_`` prefix: backpropagated)."""
        return self._loss_name

    def check_activations(self, channels: int, float_target: bool = True) -> None:
        """Raise ``ValueError`` naming the fix if an activation is constant over ``channels``
        (a softmax over one channel), before any step.

        Args:
            channels (int): Channels of the prediction (and of a float target).
            float_target (bool): Also check ``target_activation`` (the target is float maps,
                e.g. a teacher's logits, not labels). Defaults to True.
        """
        _check_activation(channels, self.pred_activation, 'pred_activation')
        if float_target:
            _check_activation(channels, self.target_activation, 'target_activation')

    def memory_format(self, device: Union[str, torch.device]) -> torch.memory_format:
        """The layout in which ``pred`` and a float ``target`` on ``device`` cost least:
        ``torch.channels_last`` on the CPU and CUDA, where the loss network's weights are
        channels-last, so that the softmax, its backward and the first convolution read the
        maps as they lie instead of transposing them band by band (CPU, ``(1, 1, 1, 1, 1)`` at
        256x256, batch 2, logits resized from 1/8, forward and backward: 1.03x faster with
        19 classes, 1.17x with 150); else ``torch.contiguous_format``. Either layout gives
        the same loss. Resize the logits in it:
        ``resize(logits.contiguous(memory_format=fmt), ...)`` transposes only the small maps."""
        return self.network.memory_format(device)

    def _check_pred(self, pred: Tensor) -> None:
        if pred.dim() != 4:
            raise ValueError(f'pred must be (N, C, H, W), but got shape {tuple(pred.shape)}')
        if not pred.is_floating_point():
            raise TypeError(f'pred must be a float tensor, but got {pred.dtype}')
        if self.network.in_channels is not None and pred.shape[1] != self.network.in_channels:
            raise ValueError(
                f'pred has {pred.shape[1]} channels but the loss network takes {self.network.in_channels} '
                '(in_channels, as set or inferred from the first call): one loss serves one channel count, '
                'so give each head its own loss with in_channels set to its number of classes')
        _check_activation(pred.shape[1], self.pred_activation, 'pred_activation')
        if self.check_finite:
            _check_finite(pred, 'prediction')

    def _target(self, pred: Tensor, target: Tensor, ignore_index: Optional[int],
                valid_mask: Optional[Tensor]) -> Tuple[ClassMaps, Optional[Tensor]]:
        """The activated target (float, the prediction's activated dtype) and the valid pixels."""
        n, c, h, w = pred.shape
        if target.is_floating_point():
            if target.shape != pred.shape:
                raise ValueError(
                    f'a float target must have the prediction\'s shape {tuple(pred.shape)}, but '
                    f'got {tuple(target.shape)}: resize the teacher output to the prediction '
                    '(mmseg.models.utils.resize) or pass integer labels (N, H, W)')
            _check_activation(c, self.target_activation, 'target_activation')
            target, valid = self._invalid_masked(target.detach())
            if self.check_finite:
                _check_finite(target, 'target')
        else:
            if target.shape != (n, h, w):
                fix = 'squeeze the channel dimension (labels.squeeze(1))' \
                    if tuple(target.shape) == (n, 1, h, w) else 'resize the labels or the prediction'
                raise ValueError(
                    f'integer labels must be (N, H, W) = {(n, h, w)}, but got {tuple(target.shape)}: {fix}')
            valid = check_labels(target, c, ignore_index)
        if valid_mask is not None:
            if valid_mask.shape != (n, h, w):
                raise ValueError(f'valid_mask must be (N, H, W) = {(n, h, w)}, got {tuple(valid_mask.shape)}')
            valid = valid_mask.bool() if valid is None else valid & valid_mask.bool()
            if bool(valid.all()):
                valid = None  # nothing is masked: no class-sized multiply in either pass
        # the dtype the activated prediction has: autocast computes softmax/sigmoid in float32
        dtype = self._activated_dtype(pred)
        if target.is_floating_point():
            return self._maps(target, self.target_activation, valid, dtype), valid
        return self._maps(target, 'onehot', valid, dtype, num_classes=c), valid

    def _invalid_masked(self, target: Tensor) -> Tuple[Tensor, Optional[Tensor]]:
        """A float target and its valid pixels: those where some channel differs from
        ``invalid_value`` (None: no ``invalid_value``). A non-finite ``invalid_value`` (NaN or
        Inf, e.g. missing depth) is replaced by 0 at the invalid pixels, as the valid mask zeroes
        them by a product, which would turn NaN or Inf into NaN."""
        if self.invalid_value is None:
            return target, None
        if math.isnan(self.invalid_value):
            invalid = target.isnan().all(dim=1)
        else:
            invalid = (target == self.invalid_value).all(dim=1)
        if not math.isfinite(self.invalid_value):
            target = target.masked_fill(invalid.unsqueeze(1), 0)
        return target, ~invalid

    def _activated_dtype(self, pred: Tensor) -> torch.dtype:
        autocast = torch.is_autocast_enabled(pred.device.type) and self.pred_activation != 'none'
        return torch.float32 if autocast else pred.dtype

    def _maps(self, x: Tensor, activation: str, valid: Optional[Tensor], dtype: torch.dtype,
              num_classes: Optional[int] = None) -> ClassMaps:
        """One side as the loss network's input. Activation and valid mask run inside its first
        convolution, a band of rows at a time, unless ``log_input`` or ``resize`` needs the
        whole activated map first."""
        size = tuple(x.shape[-2:])
        resized = _resize_size(size, self.resize)
        layout = self.memory_format(x.device)  # of the activated rows
        if not self.log_input and (resized is None or resized == size):
            return ClassMaps(x, activation, valid, num_classes=num_classes, dtype=dtype, layout=layout)
        if activation == 'onehot':
            x = ClassMaps(x, 'onehot', valid, num_classes=num_classes, dtype=dtype, layout=layout).whole()
        else:
            x = _activate(x, activation).to(dtype)
        if self.log_input:
            x = x.clamp(min=self.log_eps).log()
        if valid is not None:
            x = x * valid.unsqueeze(1).to(x.dtype)
        if resized is not None and resized != size:
            x = F.interpolate(x, size=resized, mode='bilinear', align_corners=False)
        return ClassMaps(x)

    def _blocks(self) -> Tuple[int, List[float]]:
        """How many blocks to run and the weight of each."""
        if self.layer_weights is None:
            return self.network.num_blocks, [0.0] * (self.network.num_blocks - 1) + [1.0]
        weights = list(self.layer_weights)
        return (max(i + 1 for i, wt in enumerate(weights) if wt != 0) if any(weights) else 1), weights

    def _distances(self, pred: ClassMaps, target_feats: List[Tensor], num_blocks: int,
                   weights: List[float]) -> List[Tuple[float, Tensor]]:
        """``(layer weight, elementwise distance)`` of every block that counts."""
        pred_feats = self.network(pred, num_blocks)
        out = []
        for wt, fp, ft in zip(weights, pred_feats, target_feats):
            if wt == 0:
                continue
            dtype = torch.promote_types(fp.dtype, torch.float32)  # bf16/fp16 -> fp32, fp64 stays
            diff = fp.to(dtype) - ft.to(dtype)
            out.append((wt, diff.square() if self.criterion == 'mse' else diff.abs()))
        return out

    def _reduce(self, distance: Tensor, weight: Optional[Tensor], reduction: str,
                avg_factor: Optional[float]) -> Tensor:
        """mmseg's ``weight_reduce_loss`` with ``weight`` brought to the embedding's shape."""
        if weight is not None:
            weight = weight.to(distance.dtype)
            if weight.dim() == 1:
                weight = weight.view(-1, 1, 1, 1)
            else:  # (N, H, W), checked by _check_weight
                weight = F.adaptive_avg_pool2d(weight.unsqueeze(1), distance.shape[-2:])
            weight = weight.expand(distance.shape[0], 1, *distance.shape[-2:])
        return weight_reduce_loss(distance, weight, reduction, avg_factor)

    def forward(self,
                pred: Tensor,
                target: Tensor,
                weight: Optional[Tensor] = None,
                avg_factor: Optional[float] = None,
                reduction_override: Optional[str] = None,
                ignore_index: Optional[int] = 255,
                valid_mask: Optional[Tensor] = None) -> Tensor:
        """Compute the loss.

        Args:
            pred (Tensor): Prediction ``(N, C, H, W)``, before ``pred_activation``.
            target (Tensor): Float ``(N, C, H, W)`` (before ``target_activation``)
                or integer labels ``(N, H, W)``.
            weight (Tensor, optional): Per-sample ``(N,)`` or per-pixel
                ``(N, H, W)`` weights (averaged onto the embedding grid).
                Defaults to None.
            avg_factor (float, optional): Divide the summed loss by this instead
                of the element count. Defaults to None.
            reduction_override (str, optional): Overrides ``reduction``.
                Defaults to None.
            ignore_index (int, optional): Label excluded from both sides before
                the embedding (integer targets). Defaults to 255.
            valid_mask (Tensor, optional): ``(N, H, W)`` bool mask; pixels
                outside it are zeroed on both sides. Defaults to None.

        Returns:
            Tensor: The weighted loss.
        """
        if reduction_override not in (None, ) + _REDUCTIONS:
            raise ValueError(f'reduction_override must be None or one of {_REDUCTIONS}, got {reduction_override!r}')
        reduction = reduction_override or self.reduction
        self._check_pred(pred)
        if weight is not None:
            _check_weight(weight, pred)
        num_blocks, weights = self._blocks()
        # None: the caller's autocast state (autocast(enabled=False) would turn theirs off)
        with nullcontext() if self.autocast is None else \
                torch.autocast(pred.device.type, dtype=_AUTOCAST_DTYPES[self.autocast]):
            target_maps, valid = self._target(pred, target, ignore_index, valid_mask)
            with torch.no_grad():  # the target has no autograd
                target_feats = self.network(target_maps, num_blocks)
            del target_maps  # no class-sized map of the target outlives its pass
            pred_maps = self._maps(pred, self.pred_activation, valid, self._activated_dtype(pred))
            distances = self._distances(pred_maps, target_feats, num_blocks, weights)
        if reduction == 'none' and len(distances) > 1:
            raise ValueError(
                "reduction='none' returns one embedding-shaped map, so it needs a single "
                'weighted block: use layer_weights=None or reduction=\'mean\'')
        loss = None
        for wt, distance in distances:
            term = wt * self._reduce(distance, weight, reduction, avg_factor)
            loss = term if loss is None else loss + term
        return self.loss_weight * loss

    def extra_repr(self) -> str:
        return (f'layer_weights={self.layer_weights}, criterion={self.criterion!r}, '
                f'pred_activation={self.pred_activation!r}, '
                f'target_activation={self.target_activation!r}, resize={self.resize!r}, '
                f'autocast={self.autocast!r}, loss_weight={self.loss_weight}')
