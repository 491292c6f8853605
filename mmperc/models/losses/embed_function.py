"""Memory-lean autograd for the frozen random network: save ReLU masks, not activations."""
from typing import List, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.nn.grad import conv2d_input

from .class_maps import ClassMaps, first_conv, first_conv_input_grad


Plan = Sequence[Tuple[str, Optional[Tensor], int]]
_WINDOW = ((0, 0), (0, 1), (1, 0), (1, 1))  # (row, column) offsets in a 2x2 pooling window


def _feeds_max_pool(plan: Plan, i: int) -> bool:
    """Whether the conv at ``plan[i]`` is followed directly by a max pooling."""
    return i + 1 < len(plan) and plan[i + 1][0] == 'max'


def _window_positions(x: Tensor, pooled: Tensor) -> Tensor:
    """Where each 2x2 window of ``x`` has its max, as ``max_pool2d`` picks it (the first in
    row-major order on ties): 0..3 (uint8), or 4 where the max is not positive (the ReLU
    before the pooling passes no gradient there)."""
    h, w = pooled.shape[-2:]

    def differs(dy: int, dx: int) -> Tensor:
        return x[..., dy:2 * h:2, dx:2 * w:2] != pooled

    # the first match's offset k is d0 * (1 + d1 * (1 + d2)), d_k: offset k is not the max
    # (a third the time of a masked fill per offset)
    positions = differs(*_WINDOW[2]).to(torch.uint8).add_(1)
    positions.mul_(differs(*_WINDOW[1])).add_(1).mul_(differs(*_WINDOW[0]))
    return torch.where(pooled > 0, positions, len(_WINDOW))


def _unpool(grad: Tensor, positions: Tensor, shape: torch.Size) -> Tensor:
    """Route the pooled gradient to each window's winner; zero elsewhere (odd edges included).

    Every element of the 2x upsampled grid is written once, in the gradient's memory layout
    (channels last: the window offsets sit between the pixel and the channel dimensions)."""
    n, c, h, w = grad.shape
    if not grad.is_contiguous() and grad.is_contiguous(memory_format=torch.channels_last):
        grid = grad.new_empty(n, h, 2, w, 2, c)
        g, p = grad.permute(0, 2, 3, 1), positions.permute(0, 2, 3, 1)
        cells = [grid[:, :, dy, :, dx] for dy, dx in _WINDOW]
        out = grid.view(n, 2 * h, 2 * w, c).permute(0, 3, 1, 2)
    else:
        grid = grad.new_empty(n, c, h, 2, w, 2)
        g, p = grad, positions
        cells = [grid[..., dy, :, dx] for dy, dx in _WINDOW]
        out = grid.view(n, c, 2 * h, 2 * w)
    for k, cell in enumerate(cells):
        torch.mul(g, p == k, out=cell)
    if out.shape[-2:] != shape[-2:]:
        out = F.pad(out, (0, shape[-1] - 2 * w, 0, shape[-2] - 2 * h))
    return out


def run_plan(maps: ClassMaps, plan: Plan, pad: int,
             saved: Optional[List[Tensor]] = None) -> Tuple[List[Tensor], List[torch.Size]]:
    """Run ``plan`` on ``maps``: ``('conv', w, stride)`` (+ReLU), ``('max', None, 0)``,
    ``('avg', None, 0)``, ``('out', None, 0)``. Returns the block outputs and the input shape
    of every op. With ``saved``, appends what :class:`FrozenVGGEmbed`'s backward needs."""
    shapes: List[torch.Size] = []
    outputs: List[Tensor] = []
    x: Optional[Tensor] = None
    for i, (op, weight, stride) in enumerate(plan):
        if op == 'conv':
            if x is None:
                shapes.append(maps.shape)
                x = F.relu(first_conv(maps, weight, stride, pad), inplace=True)
            else:
                shapes.append(x.shape)
                x = F.relu(F.conv2d(x, weight, stride=stride, padding=pad), inplace=True)
            if saved is not None and not _feeds_max_pool(plan, i):
                saved.append(x > 0)
        elif op == 'max':
            shapes.append(x.shape)
            pooled = F.max_pool2d(x, 2, 2)
            if saved is not None:
                saved.append(_window_positions(x, pooled))
            x = pooled
        elif op == 'avg':
            shapes.append(x.shape)
            x = F.avg_pool2d(x, 2, 2)
        else:
            outputs.append(x)
    return outputs, shapes


class FrozenVGGEmbed(torch.autograd.Function):
    """Embed ``x`` with fixed weights; backward needs only the input gradient.

    Autograd would keep every conv input (float) and the int64 argmax of every max
    pooling for the backward pass. The weights are frozen, so the input gradient
    of a conv needs the weight only, and a ReLU needs only where its output is
    positive. This function keeps one byte per element instead: a bool mask per
    ReLU, and per max pooling one byte per window, the winner's position in it or
    "not positive", which is all the ReLU before the pooling needs, so that ReLU
    keeps no full-size mask. The input's activation
    (:class:`ClassMaps`) runs inside the first convolution, a chunk of classes at
    a time, and its backward in place. Same gradient as autograd.
    """

    @staticmethod
    def forward(ctx, x: Tensor, maps: ClassMaps, plan: Plan, pad: int) -> Tuple[Tensor, ...]:
        """Embed ``maps``, whose source is ``x`` (the tensor autograd differentiates)."""
        ctx.input_dtype = x.dtype
        saved: List[Tensor] = []
        outputs, shapes = run_plan(maps, plan, pad, saved)
        ctx.plan, ctx.pad, ctx.shapes, ctx.maps = plan, pad, shapes, maps
        packed = maps.pack()
        ctx.num_masks = len(saved)
        ctx.save_for_backward(*saved, *packed)
        return tuple(outputs)

    @staticmethod
    def backward(ctx, *grad_outputs: Optional[Tensor]):
        saved = list(ctx.saved_tensors)
        ctx.maps.restore(tuple(saved[ctx.num_masks:]))
        saved = saved[:ctx.num_masks]
        shapes = list(ctx.shapes)
        outputs_left = len(grad_outputs)
        grad: Optional[Tensor] = None
        plan = ctx.plan
        for i in reversed(range(len(plan))):
            op, weight, stride = plan[i]
            if op == 'out':
                outputs_left -= 1
                g = grad_outputs[outputs_left]
                if g is not None:
                    grad = g if grad is None else grad + g.to(grad.dtype)
                continue
            shape = shapes.pop()
            if op == 'conv':
                mask = None if _feeds_max_pool(plan, i) else saved.pop()
                if grad is None:  # nothing flows back from the blocks after this op
                    continue
                if mask is not None:
                    grad = grad * mask
                if i == 0:
                    grad = first_conv_input_grad(ctx.maps, weight, grad, stride, ctx.pad)
                else:  # the gradient dtype follows the forward's (bf16 under autocast)
                    grad = conv2d_input(shape, weight.to(grad.dtype), grad, stride=stride, padding=ctx.pad)
            elif op == 'max':
                positions = saved.pop()
                if grad is not None:
                    grad = _unpool(grad, positions, shape)
            elif grad is not None:
                up = F.interpolate(grad, scale_factor=2, mode='nearest') / 4
                grad = F.pad(up, (0, shape[-1] - up.shape[-1], 0, shape[-2] - up.shape[-2]))
        ctx.maps = None
        return (grad.to(ctx.input_dtype) if grad is not None else None), None, None, None
