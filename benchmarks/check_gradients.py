"""The loss's gradient, not only its value, against the straightforward reference on one device.

The benchmarks compare loss values; on a GPU the gradient of mmperc's custom backward (bands of
rows, channels-last class maps, the gathered first layer of label targets) has run only there.
For each case (classes, label or logit target, NCHW or channels-last maps, the device's bands or
many small ones, float32 or float16 autocast as mmseg's ``--amp`` trains), prints the loss's
relative error and the cosine between mmperc's gradient w.r.t. the logits and the reference's
(``bench_loss.reference_loss``, same weights, float32; TF32 off). Exits 1 if a case misses its
bound: in float32 the value within 1e-5 relative and the cosine above 0.9999 (float32 near-ties in
max pooling may flip a window's argmax, in the reference as in mmperc); in float16 (the loss scaled
by 2**16 before the backward, as GradScaler starts) the value within 1e-2 and the cosine at most
0.001 below the reference's own under the same autocast (0.994-0.997 at 32-64 pixels on the CPU).

    python benchmarks/check_gradients.py --device cuda          (VGG16 at 128x128, batch 2)
    python benchmarks/check_gradients.py --device cpu --size 96 --classes 5 19
"""
import argparse
import os
import sys
from typing import Dict, Iterator, List

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_loss import add_device_argument, reference_loss, reference_network  # noqa: E402
from sweep_bands import band_budget  # noqa: E402

from mmperc.models.losses import RandomPerceptualLoss  # noqa: E402
from mmperc.models.losses.class_maps import ClassMaps  # noqa: E402

#: float16 losses are scaled by this before the backward, as GradScaler's first steps do
FP16_SCALE = 2.0**16
#: (value's relative error, gradient cosine) bounds in float32
FP32_BOUNDS = (1e-5, 0.9999)
#: float16: the value's relative error, and how far the cosine may fall below the reference's own
FP16_BOUNDS = (1e-2, 1e-3)


def cosine(a: torch.Tensor, b: torch.Tensor) -> float:
    a, b = a.double().flatten(), b.double().flatten()
    return float(a @ b / (a.norm() * b.norm()))


def value_and_grad(fn, logits: torch.Tensor, layout: torch.memory_format, fp16: bool):
    """``fn(x)`` and its gradient w.r.t. ``x``, a copy of ``logits`` in ``layout``, under float16
    autocast (the loss scaled by :data:`FP16_SCALE`, the gradient unscaled) if ``fp16``."""
    x = logits.detach().clone().contiguous(memory_format=layout).requires_grad_()
    with torch.autocast(logits.device.type, dtype=torch.float16, enabled=fp16):
        value = fn(x)
    scale = FP16_SCALE if fp16 else 1.0
    (value * scale).backward()
    return float(value.detach()), x.grad.float() / scale


def case(loss: RandomPerceptualLoss, ref: torch.nn.Sequential, logits: torch.Tensor, target: torch.Tensor,
         layout: torch.memory_format, fp16: bool) -> Dict[str, float]:
    """One comparison: mmperc on ``logits`` in ``layout`` (under float16 autocast if ``fp16``)
    against the float32 reference on NCHW logits; in float16 also the reference's own cosine."""
    tgt = target.contiguous(memory_format=layout) if target.is_floating_point() else target
    ours, grad = value_and_grad(lambda x: loss(x, tgt), logits, layout, fp16)
    theirs, ref_grad = value_and_grad(lambda y: reference_loss(ref, y, target), logits, torch.contiguous_format, False)
    row = dict(rel=abs(ours - theirs) / abs(theirs), cos=cosine(grad, ref_grad))
    if fp16:
        row['ref_cos'] = cosine(value_and_grad(lambda y: reference_loss(ref, y, target), logits,
                                               torch.contiguous_format, True)[1], ref_grad)
    return row


def within_bounds(row: Dict[str, float]) -> bool:
    """Whether a :func:`case` row is within its precision's bounds."""
    if 'ref_cos' in row:
        return row['rel'] <= FP16_BOUNDS[0] and row['cos'] >= row['ref_cos'] - FP16_BOUNDS[1]
    return row['rel'] <= FP32_BOUNDS[0] and row['cos'] >= FP32_BOUNDS[1]


def check(device: str, size: int, batch: int, classes: List[int]) -> Iterator[Dict]:
    """Every case of the grid, VGG16, one row each (with ``ok``)."""
    for num_classes in classes:
        torch.manual_seed(0)
        loss = RandomPerceptualLoss(num_convs=(2, 2, 3, 3, 3), in_channels=num_classes).to(device)
        ref = reference_network(loss).to(device)
        logits = torch.randn(batch, num_classes, size, size, device=device)
        targets = {'labels': torch.randint(0, num_classes, (batch, size, size), device=device),
                   'logits': 3 * torch.randn(batch, num_classes, size, size, device=device)}
        for kind, target in targets.items():
            for layout_name, layout in (('NCHW', torch.contiguous_format), ('NHWC', torch.channels_last)):
                for bands, mib in (('default', None), ('many', 1 / 16)):
                    for precision in ('fp32', 'fp16'):
                        with band_budget(device, mib):
                            row = case(loss, ref, logits, target, layout, precision == 'fp16')
                            # the first convolution's bands (kernel 3: a reach of one row)
                            row['num_bands'] = len(ClassMaps(logits).bands(1))
                        yield dict(classes=num_classes, target=kind, layout=layout_name, bands=bands,
                                   precision=precision, ok=within_bounds(row), **row)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_device_argument(parser)
    parser.add_argument('--size', type=int, default=128)
    parser.add_argument('--batch', type=int, default=2)
    parser.add_argument('--classes', type=int, nargs='+', default=[19, 150])
    args = parser.parse_args()
    if args.device == 'cuda':  # the float32 bounds are for float32's rounding, not TF32's
        torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False
    print(f'device={args.device} torch={torch.__version__} VGG16 size={args.size} batch={args.batch}', flush=True)
    failed = 0
    for row in check(args.device, args.size, args.batch, args.classes):
        failed += not row['ok']
        print(f'C={row["classes"]:<4} {row["target"]:<7}{row["layout"]:<5} '
              f'bands={row["bands"] + " (" + str(row["num_bands"]) + ")":<13}'
              f'{row["precision"]:<5} value rel err {row["rel"]:.2e}  grad cos {row["cos"]:.7f}'
              + (f' (reference in fp16: {row["ref_cos"]:.7f})' if 'ref_cos' in row else ' ' * 30)
              + f'  {"ok" if row["ok"] else "MISMATCH"}', flush=True)
    print(f'{failed} case(s) out of bounds' if failed else 'every case within bounds')
    sys.exit(1 if failed else 0)


if __name__ == '__main__':
    main()
