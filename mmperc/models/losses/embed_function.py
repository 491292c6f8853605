"""Memory-lean autograd for the frozen random network: save ReLU masks and pooling indices,
not activations."""
from typing import List, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.autograd.function import once_differentiable

from . import max_pool_relu, winograd_f4
from .class_maps import (ClassMaps, first_block_max_pool, first_block_max_pool_input_grad, first_conv,
                         first_conv_input_grad, out_channels, plan_conv, plan_conv_input_grad)
from .max_pool_relu import new_codes, pool, pop_routing, unpool
from .winograd_f4 import winograd_f4_conv3x3_max_pool, winograd_f4_input_grad_unpool


Plan = Sequence[Tuple[str, Optional[Tensor], int]]
#: a convolution (+ReLU); 'wino' / 'wino4' carry a Winograd F(2x2, 3x3) / F(4x4, 3x3) weight transform
_CONVS = ('conv', 'wino', 'wino4')


def _feeds_max_pool(plan: Plan, i: int) -> bool:
    """Whether the conv at ``plan[i]`` is followed directly by a max pooling."""
    return i + 1 < len(plan) and plan[i + 1][0] == 'max'


def _banded_block(plan: Plan) -> int:
    """How many convolutions (stride 1) open the plan and run, with the max pooling after
    them, a band of rows at a time (:func:`first_block_max_pool`); 0 when no max pooling
    follows them. Each is direct or ``'wino4'``."""
    convs = 0
    while convs < len(plan) and plan[convs][2] == 1 and plan[convs][0] in ('conv', 'wino4'):
        convs += 1
    return convs if _feeds_max_pool(plan, convs - 1) else 0


def _pools_in_transform(plan: Plan, i: int) -> bool:
    """Whether the convolution ``plan[i]`` pools its outputs in its Winograd output transform
    (:func:`winograd_f4_conv3x3_max_pool`): a ``'wino4'`` or ``'wino'`` before a max pooling,
    the C++ transforms and the pooling kernel built."""
    return plan[i][0] in ('wino', 'wino4') and _feeds_max_pool(plan, i) and max_pool_relu.available() \
        and winograd_f4.available()


def run_plan(maps: ClassMaps, plan: Plan, pad: int, saved: Optional[List[Tensor]] = None,
             pooled_convs: Optional[List[int]] = None) -> Tuple[List[Tensor], List[torch.Size]]:
    """Run ``plan`` on ``maps``: ``('conv', w, stride)`` (+ReLU), ``('max', None, 0)``,
    ``('avg', None, 0)``, ``('out', None, 0)``. Returns the block outputs and the input shape
    of every op. With ``saved``, appends what :class:`FrozenVGGEmbed`'s backward needs, and to
    ``pooled_convs`` the index of every convolution that pooled its own outputs."""
    shapes: List[torch.Size] = []
    outputs: List[Tensor] = []
    x: Optional[Tensor] = None
    code: Optional[Tensor] = None
    pooled = False  # whether the last convolution pooled its outputs (the max pooling after it is done)
    banded = _banded_block(plan)
    for i, (op, weight, stride) in enumerate(plan):
        if banded and i <= banded:  # the first block: its convolutions and max pooling at once
            n, _, h, w = maps.shape
            shapes.append(maps.shape if i == 0 else torch.Size((n, out_channels(*plan[i - 1][:2]), h, w)))
            if i == 0:
                x = first_block_max_pool(maps, [(o, wt) for o, wt, _ in plan[:banded]], pad, saved)
        elif op in _CONVS:
            if x is None:
                shapes.append(maps.shape)
                x = first_conv(maps, weight, stride, pad, op)
            elif _pools_in_transform(plan, i):
                shapes.append(x.shape)
                n, _, h, w = x.shape
                code = None if saved is None else new_codes((n, weight.shape[2], h // 2, w // 2), x.device)
                x, pooled = winograd_f4_conv3x3_max_pool(x, weight, code), True
                if pooled_convs is not None:
                    pooled_convs.append(i)
                continue
            else:
                shapes.append(x.shape)
                x = plan_conv(x, op, weight, stride, pad)
            if not _feeds_max_pool(plan, i):  # else the ReLU runs after the pooling
                x = x.relu_()
                if saved is not None:
                    saved.append(x > 0)
        elif op == 'max' and pooled:  # by the convolution: its output's shape, its codes
            n, c, h, w = shapes[-1]
            shapes.append(torch.Size((n, x.shape[1], h, w)))
            if saved is not None:
                saved.append(code)
            pooled = False
        elif op == 'max':
            shapes.append(x.shape)
            x = pool(x, saved)
        elif op == 'avg':
            shapes.append(x.shape)
            x = F.avg_pool2d(x, 2, 2)
        else:
            outputs.append(x)
    return outputs, shapes


class FrozenVGGEmbed(torch.autograd.Function):
    """Embed ``x`` with fixed weights; backward needs only the input gradient.

    Autograd would keep every conv input and every ReLU output (float) and the int64
    argmax of every max pooling for the backward pass. The weights are frozen, so the
    input gradient of a conv needs the weight only, and a ReLU needs only where its
    output is positive. This function keeps a bool mask per ReLU instead; a ReLU
    followed by a max pooling runs after it (on a quarter of the elements), and the two
    keep one byte per pooled output, where its gradient goes (:mod:`.max_pool_relu`'s C++
    kernel; without it, the ReLU's mask at the pooled size beside the argmax PyTorch's
    pooling computes anyway, whose own backward then routes the gradient). The input's activation
    (:class:`ClassMaps`) runs inside the first convolution, a band of rows at a time,
    and so does its backward; when the first block ends in a max pooling, its
    convolutions and the pooling run in the same bands (:func:`first_block_max_pool`), so
    none of its full-resolution maps is ever whole. Same gradient as autograd.
    """

    @staticmethod
    def forward(ctx, x: Tensor, maps: ClassMaps, plan: Plan, pad: int) -> Tuple[Tensor, ...]:
        """Embed ``maps``, whose source is ``x`` (the tensor autograd differentiates)."""
        ctx.input_dtype = x.dtype
        ctx.set_materialize_grads(False)  # unused block outputs: None, not zeros to add
        saved: List[Tensor] = []
        ctx.pooled_convs = []
        outputs, shapes = run_plan(maps, plan, pad, saved, ctx.pooled_convs)
        ctx.plan, ctx.pad, ctx.shapes, ctx.maps = plan, pad, shapes, maps
        packed = maps.pack()
        ctx.num_masks = len(saved)
        ctx.save_for_backward(*saved, *packed)
        return tuple(outputs)

    @staticmethod
    @once_differentiable  # a hand-written first derivative: differentiating it again raises
    def backward(ctx, *grad_outputs: Optional[Tensor]):
        saved = list(ctx.saved_tensors)
        ctx.maps.restore(tuple(saved[ctx.num_masks:]))
        saved = saved[:ctx.num_masks]
        shapes = list(ctx.shapes)
        outputs_left = len(grad_outputs)
        grad: Optional[Tensor] = None
        owned = False  # whether grad is a tensor this backward made (and may overwrite)
        plan = ctx.plan
        banded = _banded_block(plan)
        first_routing: List[Tensor] = []  # the first block's pooling codes or argmax, when banded
        first_masks: List[Tensor] = []  # and its ReLU masks, last first
        code: Optional[Tensor] = None  # the codes of a convolution that pooled its outputs
        for i in reversed(range(len(plan))):
            op, weight, stride = plan[i]
            if op == 'out':
                outputs_left -= 1
                g = grad_outputs[outputs_left]
                if g is not None:
                    owned = grad is not None  # autograd's own tensor must not be written to
                    grad = g if grad is None else grad + g.to(grad.dtype)
                continue
            shape = shapes.pop()
            if op in _CONVS:
                mask = None if _feeds_max_pool(plan, i) else saved.pop()
                if grad is None:  # nothing flows back from the blocks after this op
                    continue
                if i < banded:  # routed band by band at i == 0, through the masks kept here
                    first_masks += [] if mask is None else [mask]
                    if i == 0:
                        layers = [(o, wt) for o, wt, _ in plan[:banded]]
                        grad = first_block_max_pool_input_grad(ctx.maps, layers, grad, first_routing,
                                                               first_masks[::-1], ctx.pad)
                    continue
                if mask is not None:  # where(): no float copy of the bool mask, as a product makes
                    grad = torch.where(mask, grad, grad.new_zeros(()), out=grad if owned else None)
                if i == 0:
                    grad = first_conv_input_grad(ctx.maps, weight, grad, stride, ctx.pad, op)
                elif i in ctx.pooled_convs:  # grad is pooled: routed by the codes as the tiles are made
                    grad = winograd_f4_input_grad_unpool(grad, code, weight, shape)
                else:  # the gradient dtype follows the forward's (bf16 under autocast)
                    grad = plan_conv_input_grad(shape, op, weight, grad, stride, ctx.pad)
                owned = True
            elif op == 'max':
                routing = pop_routing(saved)
                if grad is None:
                    continue
                if i == banded:  # routed band by band with the first block's gradient
                    if len(routing) == 2:  # PyTorch's argmax: the ReLU's mask applied here
                        grad = torch.where(routing[1], grad, grad.new_zeros(()), out=grad if owned else None)
                        owned = True
                    first_routing = routing[:1]
                elif i - 1 in ctx.pooled_convs:  # unpooled by the convolution's backward
                    code = routing[0]
                else:
                    grad, owned = unpool(grad, routing, shape), True
            elif grad is not None:
                up = F.interpolate(grad, scale_factor=2, mode='nearest') / 4
                grad = F.pad(up, (0, shape[-1] - up.shape[-1], 0, shape[-2] - up.shape[-2]))
                owned = True
        ctx.maps.pack()  # no reference to the logits outside autograd's saved tensors (retain_graph)
        return (grad.to(ctx.input_dtype) if grad is not None else None), None, None, None
