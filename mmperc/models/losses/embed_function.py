"""Memory-lean autograd for the frozen random network: save ReLU masks, not activations."""
from typing import List, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.nn.grad import conv2d_input


class FrozenVGGEmbed(torch.autograd.Function):
    """Embed ``x`` with fixed weights; backward needs only the input gradient.

    Autograd would keep every conv input (float) for the backward pass. The
    weights are frozen, so the input gradient of a conv needs the weight only,
    and a ReLU needs only where its output is positive: this function keeps a
    bool mask per ReLU and the argmax indices per max pooling, about a quarter
    of autograd's activation memory, and computes the same gradient.
    """

    @staticmethod
    def forward(ctx, x: Tensor, plan: Sequence[Tuple[str, Optional[Tensor], int]], pad: int) -> Tuple[Tensor, ...]:
        """Run ``plan``: ``('conv', w, stride)`` (+ReLU), ``('max', None, 0)``, ``('avg', None, 0)``, ``('out', ...)``."""
        ctx.input_dtype = x.dtype
        saved: List[Tensor] = []
        shapes = []
        outputs = []
        for op, weight, stride in plan:
            if op == 'conv':
                shapes.append(x.shape)
                x = F.relu(F.conv2d(x, weight, stride=stride, padding=pad), inplace=True)
                saved.append(x > 0)
            elif op == 'max':
                shapes.append(x.shape)
                x, indices = F.max_pool2d(x, 2, 2, return_indices=True)
                saved.append(indices)
            elif op == 'avg':
                shapes.append(x.shape)
                x = F.avg_pool2d(x, 2, 2)
            else:
                outputs.append(x)
        ctx.plan, ctx.pad, ctx.shapes = plan, pad, shapes
        ctx.save_for_backward(*saved)
        return tuple(outputs)

    @staticmethod
    def backward(ctx, *grad_outputs: Optional[Tensor]):
        saved = list(ctx.saved_tensors)
        shapes = list(ctx.shapes)
        outputs_left = len(grad_outputs)
        grad: Optional[Tensor] = None
        for op, weight, stride in reversed(ctx.plan):
            if op == 'out':
                outputs_left -= 1
                g = grad_outputs[outputs_left]
                if g is not None:
                    grad = g if grad is None else grad + g.to(grad.dtype)
                continue
            if grad is None:  # nothing flows back from the blocks after this op
                if op != 'avg':
                    saved.pop()
                shapes.pop()
                continue
            shape = shapes.pop()
            if op == 'conv':  # the gradient dtype follows the forward's (bf16 under autocast)
                grad = conv2d_input(shape, weight.to(grad.dtype), grad * saved.pop(), stride=stride,
                                    padding=ctx.pad)
            elif op == 'max':
                grad = F.max_unpool2d(grad, saved.pop(), 2, 2, output_size=shape[-2:])
            else:
                up = F.interpolate(grad, scale_factor=2, mode='nearest') / 4
                grad = F.pad(up, (0, shape[-1] - up.shape[-1], 0, shape[-2] - up.shape[-2]))
        return (grad.to(ctx.input_dtype) if grad is not None else None), None, None
