"""The frozen, randomly initialised VGG-style embedding network of the random perceptual loss."""
import math
from typing import Callable, Dict, List, Optional, Sequence, Tuple, Union

import torch
import torch.nn as nn
from torch import Tensor

from .class_maps import ClassMaps
from .embed_function import FrozenVGGEmbed, run_plan
from . import winograd_f4
from .winograd import MIN_CHANNELS, transform_weight

InitType = Union[str, Dict]

_DOWNSAMPLE_MODES = ('maxpool', 'avgpool', 'conv')
_NAMED_INITS = ('paper', 'xavier')
_DICT_INITS = ('normal', 'uniform')
#: The weights' memory layout per device type (others: NCHW), see :meth:`RandomVGG._relayout`;
#: ``benchmarks/sweep_bands.py`` measures both layouts on a device.
LAYOUTS: Dict[str, torch.memory_format] = {'cpu': torch.channels_last, 'cuda': torch.channels_last}


def _check_init(init: InitType) -> None:
    """Raise a clear error for an unknown ``init`` option."""
    if isinstance(init, str):
        if init not in _NAMED_INITS:
            raise ValueError(
                f"init must be one of {_NAMED_INITS} or a dict such as "
                f"dict(type='normal', std=0.01) / dict(type='uniform', a=0.01), "
                f'but got {init!r}')
        return
    if not isinstance(init, dict):
        raise TypeError(f'init must be a str or a dict, but got {type(init).__name__}')
    init_type = init.get('type')
    expected = {'normal': {'type', 'std'}, 'uniform': {'type', 'a'}}
    if init_type not in _DICT_INITS:
        raise ValueError(f"init dict type must be one of {_DICT_INITS}, but got {init_type!r}")
    if set(init) != expected[init_type]:
        raise ValueError(
            f'init dict of type {init_type!r} takes exactly the keys '
            f'{sorted(expected[init_type])}, but got {sorted(init)}')
    scale = init['std'] if init_type == 'normal' else init['a']
    if not isinstance(scale, (int, float)) or scale <= 0:
        raise ValueError(f'init {init_type!r} needs a positive scale, but got {scale!r}')


def _init_conv_weight(weight: Tensor, init: InitType, generator: torch.Generator) -> None:
    """Fill a conv weight ``(c_out, c_in, k, k)`` in place from ``generator``.

    ``'paper'`` is Section 3.2 of Liu et al. (CVPR 2021): zero-mean Gaussian with
    std ``sqrt(2 / n_l)``, ``n_l = k * k * c_in``, which keeps ``Var[e_L]`` constant
    through ReLU layers (Eq. 5). ``'xavier'`` is Xavier-normal (gain 1); the dict
    forms are the fixed-scale alternatives of the paper's Table 4.
    """
    c_out, c_in, kh, kw = weight.shape
    fan_in, fan_out = c_in * kh * kw, c_out * kh * kw
    if init == 'paper':
        weight.normal_(0.0, math.sqrt(2.0 / fan_in), generator=generator)
    elif init == 'xavier':
        weight.normal_(0.0, math.sqrt(2.0 / (fan_in + fan_out)), generator=generator)
    elif init['type'] == 'normal':
        weight.normal_(0.0, float(init['std']), generator=generator)
    else:
        a = float(init['a'])
        weight.uniform_(-a, a, generator=generator)


class RandomVGG(nn.Module):
    """A VGG-style stack of frozen random convolutions, the ``phi_r`` of the paper.

    Block ``i`` is ``num_convs[i]`` convolutions (``kernel_size``, stride 1, padding
    that keeps the size, ReLU after each) followed by a 2x downsampling. The
    embedding of a block is its output after the downsampling. The default,
    VGG19's stack ``(2, 2, 4, 4, 4)``, has the 16 convolutions and 5 poolings of
    the paper's Section 4.2 (its supplementary's "basic perceptual network");
    VGG16's ``(2, 2, 3, 3, 3)`` has 13.

    The weights are generated on the CPU in float32 from a private
    ``torch.Generator`` seeded with ``seed``, in a fixed order, so any process
    building the same structure gets bit-identical weights and the global RNG is
    untouched. They are plain tensors, neither parameters nor buffers, moved and
    cast with the module (``.to()``, ``.cuda()``): they never enter
    ``state_dict``, no optimizer sees them, and the module's parameter and buffer
    lists stay those of its build, which mmengine's EMA and SWA models pair by
    position. With ``in_channels=None`` they are generated on the first call
    from the input's channel count; the result is identical to building with
    that ``in_channels`` explicitly.

    Args:
        in_channels (int, optional): Input channels (classes for segmentation,
            1 for masks or depth). None infers it on the first call.
        num_convs (Sequence[int]): Convolutions per block, ``N_1..N_k`` of
            Section 3.1. Defaults to ``(2, 2, 4, 4, 4)`` (VGG19, Section 4.2).
        channels (Sequence[int]): Output channels per block. Defaults to
            ``(64, 128, 256, 512, 512)``.
        kernel_size (int): Odd kernel size of every convolution (Table 3).
            Defaults to 3.
        downsample (str): ``'maxpool'``, ``'avgpool'`` or ``'conv'`` (stride-2
            convolution + ReLU), supplementary S2.2. Defaults to ``'maxpool'``.
        init (str | dict): ``'paper'``, ``'xavier'``,
            ``dict(type='normal', std=s)`` or ``dict(type='uniform', a=a)``.
            Defaults to ``'paper'``.
        seed (int): Seed of the private generator. Defaults to 0.
        winograd (bool): On the CPU in float32, run the 3x3 convolutions
            but the first as Winograd convolutions: F(4x4, 3x3) (4x fewer
            multiply-adds, C++ tile transforms built by ``pip install
            --no-build-isolation -e .``) from 64 channels in and out up to
            256 x 512, else F(2x2, 3x3) (2.25x) after the first block from
            :data:`~mmperc.models.losses.winograd.MIN_CHANNELS`; within a few
            1e-6 of the direct convolution, relative. Their weight transforms
            are kept from the first call (4x and 16/9 of those weights).
            Defaults to True.

    Shape:
        - Input: ``(N, in_channels, H, W)`` with ``H, W >= 2 ** len(num_convs)``.
        - Output: a list with one ``(N, channels[i], H / 2**(i+1), W / 2**(i+1))``
          tensor per block.
    """

    def __init__(self,
                 in_channels: Optional[int] = None,
                 num_convs: Sequence[int] = (2, 2, 4, 4, 4),
                 channels: Sequence[int] = (64, 128, 256, 512, 512),
                 kernel_size: int = 3,
                 downsample: str = 'maxpool',
                 init: InitType = 'paper',
                 seed: int = 0,
                 winograd: bool = True) -> None:
        super().__init__()
        num_convs, channels = tuple(num_convs), tuple(channels)
        if len(num_convs) == 0 or len(num_convs) != len(channels):
            raise ValueError(
                f'num_convs {num_convs} and channels {channels} must be non-empty and '
                'of the same length (one entry per block)')
        if any(int(n) < 1 for n in num_convs) or any(int(c) < 1 for c in channels):
            raise ValueError('every entry of num_convs and channels must be >= 1')
        if not isinstance(kernel_size, int) or kernel_size < 1 or kernel_size % 2 == 0:
            raise ValueError(
                f'kernel_size must be a positive odd int (padding keeps the size), '
                f'but got {kernel_size!r}')
        if downsample not in _DOWNSAMPLE_MODES:
            raise ValueError(f'downsample must be one of {_DOWNSAMPLE_MODES}, but got {downsample!r}')
        if in_channels is not None and (not isinstance(in_channels, int) or in_channels < 1):
            raise ValueError(f'in_channels must be a positive int or None, but got {in_channels!r}')
        _check_init(init)
        self.num_convs = num_convs
        self.channels = channels
        self.kernel_size = kernel_size
        self.downsample = downsample
        self.init = init
        self.seed = int(seed)
        self.winograd = bool(winograd)
        self._transforms: Dict[Tuple[int, str], Tensor] = {}  # Winograd weight transforms, by weight and op
        self.in_channels: Optional[int] = None
        self._weights: List[Tensor] = []
        if in_channels is not None:
            self.materialize(in_channels)

    @property
    def num_blocks(self) -> int:
        """Number of blocks (and of downsamplings)."""
        return len(self.num_convs)

    @property
    def min_size(self) -> int:
        """Smallest input height/width the stack accepts."""
        return 2**self.num_blocks

    def _layer_shapes(self, in_channels: int) -> List[Tuple[int, int, int]]:
        """``(c_in, c_out, kernel)`` of every convolution, in generation order."""
        shapes = []
        c_in = in_channels
        for n, c_out in zip(self.num_convs, self.channels):
            for _ in range(n):
                shapes.append((c_in, c_out, self.kernel_size))
                c_in = c_out
            if self.downsample == 'conv':
                shapes.append((c_out, c_out, self.kernel_size))
        return shapes

    def materialize(self, in_channels: int, device: Optional[torch.device] = None) -> None:
        """Generate the weights for ``in_channels`` (on ``device``, else the CPU)."""
        generator = torch.Generator(device='cpu').manual_seed(self.seed)
        weights = []
        for c_in, c_out, k in self._layer_shapes(in_channels):
            weight = torch.empty(c_out, c_in, k, k, dtype=torch.float32)
            _init_conv_weight(weight, self.init, generator)
            weights.append(weight.to(device))
        self._weights = weights
        self.in_channels = in_channels
        self._relayout()

    def _relayout(self) -> None:
        """Store the weights in the memory layout that suits their device.

        On the CPU the weights are channels-last: oneDNN then runs the convolutions,
        their input gradients and the max poolings in channels-last too, whatever
        the input's layout (measured 10-24% faster for the loss's forward+backward
        than with NCHW weights, and max pooling several times faster).
        On CUDA too: cuDNN's tensor-core kernels (TF32, bf16) take NHWC (one H200, 769x769,
        batch 8: the PSPNet-R18 step with the default term 1.16x the plain step under bf16
        autocast, 1.24x with NCHW weights; float32 1.17x vs 1.26x). Elsewhere NCHW.
        """
        self._transforms = {}  # made again, on the weights' new device, when used
        self._weights = [w.contiguous(memory_format=self.memory_format(w.device)) for w in self._weights]

    @staticmethod
    def memory_format(device: Union[str, torch.device]) -> torch.memory_format:
        """The memory layout of the weights on ``device`` (see :meth:`_relayout`), which is the
        layout the input runs fastest in: :data:`LAYOUTS` of its type (``torch.channels_last``
        on the CPU and CUDA), else ``torch.contiguous_format``."""
        return LAYOUTS.get(torch.device(device).type, torch.contiguous_format)

    def _apply(self, fn: Callable, recurse: bool = True) -> 'RandomVGG':
        module = super()._apply(fn, recurse)
        self._move_weights(fn)  # as nn.Module does to its buffers
        return module

    def _move_weights(self, fn: Callable[[Tensor], Tensor]) -> None:
        """Apply ``fn`` (a move or cast) to the weights, then the layout of their new device."""
        self._weights = [fn(w) for w in self._weights]
        self._relayout()

    def weights(self) -> List[Tensor]:
        """The conv weights in generation order (biases are zero, Section 3.2)."""
        return list(self._weights)

    def check_input(self, x: Union[Tensor, ClassMaps]) -> None:
        """Raise ``ValueError`` naming the fix if ``x`` cannot be embedded."""
        if len(x.shape) != 4:
            raise ValueError(f'the loss network takes (N, C, H, W) input, but got shape {tuple(x.shape)}')
        if self.in_channels is not None and x.shape[1] != self.in_channels:
            raise ValueError(
                f'the loss network was built for in_channels={self.in_channels} (as set or inferred '
                f'from the first call) but the input has {x.shape[1]} channels: one network serves one '
                'channel count; set in_channels to the number of classes (or 1 for masks/depth)')
        if min(x.shape[-2:]) < self.min_size:
            raise ValueError(
                f'input of size {tuple(x.shape[-2:])} is smaller than {self.min_size} pixels, '
                f'the minimum for {self.num_blocks} downsamplings: use fewer blocks '
                '(num_convs/channels) or a larger resize')

    def forward(self, x: Union[Tensor, ClassMaps], num_blocks: Optional[int] = None) -> List[Tensor]:
        """Embed ``x`` (maps, or :class:`ClassMaps` activated inside the first convolution);
        return the output of each of the first ``num_blocks`` blocks."""
        maps = x if isinstance(x, ClassMaps) else ClassMaps(x)
        if self.in_channels is None:
            self.materialize(maps.shape[1], device=maps.source.device)
        self.check_input(maps)
        source = maps.source
        if self._weights[0].device != source.device:  # a copy that .to() never moved (DataParallel, FSDP)
            self._move_weights(lambda w: w.to(source.device))
        plan = self._plan(maps.dtype, source.device, self.num_blocks if num_blocks is None else num_blocks,
                          onehot=maps.kind == 'onehot')
        pad = self.kernel_size // 2
        if source.requires_grad and torch.is_grad_enabled():
            return list(FrozenVGGEmbed.apply(source, maps, plan, pad))
        with torch.no_grad():
            return run_plan(maps, plan, pad)[0]

    def _plan(self, dtype: torch.dtype, device: torch.device, num_blocks: int,
              onehot: bool = False) -> List[Tuple[str, Optional[Tensor], int]]:
        """The ops of the first ``num_blocks`` blocks for an input of ``dtype`` on ``device``:
        ``(op, weight, stride)``, ``('wino4', transform, 1)`` / ``('wino', transform, 1)`` for a
        Winograd F(4x4, 3x3) / F(2x2, 3x3) convolution, ``'out'`` per block. The first
        convolution stays direct on ``onehot`` maps (labels: it sums the weight's columns by
        label, :func:`.onehot_conv.onehot_conv2d`)."""
        weights = iter(enumerate(self.weights()))
        plan: List[Tuple[str, Optional[Tensor], int]] = []
        fast = self.winograd and self.kernel_size == 3 and device.type == 'cpu' \
            and dtype == torch.float32 and not torch.is_autocast_enabled('cpu')
        for block, n in enumerate(self.num_convs[:num_blocks]):
            for _ in range(n):
                i, weight = next(weights)
                op = self._winograd_op(weight, block) if fast and (i or not onehot) and weight.dtype == dtype else None
                if op is None:
                    plan.append(('conv', self._cast(weight, dtype, device), 1))
                else:
                    plan.append((op, self._transform(i, op), 1))
            if self.downsample == 'conv':
                plan.append(('conv', self._cast(next(weights)[1], dtype, device), 2))
            else:
                plan.append(('max' if self.downsample == 'maxpool' else 'avg', None, 0))
            plan.append(('out', None, 0))
        return plan

    @staticmethod
    def _winograd_op(weight: Tensor, block: int) -> Optional[str]:
        """``'wino4'``, ``'wino'`` or None (direct) for a float32 CPU weight of ``block``.

        F(4x4, 3x3) (its C++ transforms built) from :data:`winograd_f4.MIN_CHANNELS` channels in
        and out up to :data:`winograd_f4.MAX_CHANNEL_PRODUCT` (memory), also in the first block,
        whose convolutions run a band of rows at a time with its pooling (``embed_function``),
        and for the first convolution on (dense) class maps of 64 classes or more, a band of
        their activated rows at a time; else F(2x2, 3x3) from :data:`MIN_CHANNELS` after the
        first block."""
        channels = min(weight.shape[:2])
        if winograd_f4.available() and channels >= winograd_f4.MIN_CHANNELS \
                and weight.shape[0] * weight.shape[1] <= winograd_f4.MAX_CHANNEL_PRODUCT:
            return 'wino4'
        return 'wino' if block > 0 and channels >= MIN_CHANNELS else None

    def _transform(self, i: int, op: str) -> Tensor:
        """The Winograd transform (``op``) of weight ``i``, made on first use."""
        if (i, op) not in self._transforms:
            make = winograd_f4.transform_weight if op == 'wino4' else transform_weight
            self._transforms[(i, op)] = make(self._weights[i])
        return self._transforms[(i, op)]

    @staticmethod
    def _cast(weight: Tensor, dtype: torch.dtype, device: torch.device) -> Tensor:
        """Match the input dtype (e.g. float64); under autocast, which casts float32 but never
        float64, only a float64 input."""
        if (torch.is_autocast_enabled(device.type) and dtype != torch.float64) or weight.dtype == dtype:
            return weight
        return weight.to(dtype)

    def extra_repr(self) -> str:
        return (f'in_channels={self.in_channels}, num_convs={self.num_convs}, '
                f'channels={self.channels}, kernel_size={self.kernel_size}, '
                f'downsample={self.downsample!r}, init={self.init!r}, seed={self.seed}, '
                f'winograd={self.winograd}')
