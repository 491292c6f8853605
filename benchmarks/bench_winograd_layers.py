"""The loss network's layers one by one: oneDNN's direct convolution against Winograd F(2x2, 3x3)
(its tile transforms in PyTorch, and in C++) and F(4x4, 3x3), forward and input gradient, side by
side (CPU, float32, channels-last).

Per layer: the median milliseconds of interleaved rounds of each, and each one's error against
float64's direct convolution (rms, relative to the output's rms), on a post-ReLU input and
weights of the paper's init. This is the evidence for where the loss network uses which
(``RandomVGG._winograd_op``):

    python benchmarks/bench_winograd_layers.py
"""
import argparse
import os
import statistics
import sys
from typing import Callable, Dict, List, Tuple

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_loss import interleaved_ms  # noqa: E402

from mmperc.models.losses import winograd, winograd_f4  # noqa: E402

#: (in channels, out channels, map size): the layers of ``(1, 1, 1, 1, 1)`` and VGG16 at 256x256
#: outside their first block
LAYERS = [(64, 128, 128), (128, 128, 128), (128, 256, 64), (256, 256, 64), (256, 512, 32), (512, 512, 32),
          (512, 512, 16)]


def layer_fns(c_in: int, c_out: int, size: int, batch: int) -> Tuple[Dict[str, Callable], Dict[str, float]]:
    """The timed calls of one layer, by name, and each one's error against float64."""
    g = torch.Generator().manual_seed(0)
    x = torch.randn(batch, c_in, size, size, generator=g).relu_().contiguous(memory_format=torch.channels_last)
    grad = torch.randn(batch, c_out, size, size, generator=g).contiguous(memory_format=torch.channels_last)
    w = (torch.randn(c_out, c_in, 3, 3, generator=g) * (2 / (9 * c_in))**0.5).contiguous(
        memory_format=torch.channels_last)
    fns = {
        'direct': lambda: F.conv2d(x, w, padding=1),
        'direct grad': lambda: torch.nn.grad.conv2d_input(x.shape, w, grad, padding=1),
    }
    u2 = winograd.transform_weight(w)
    fns.update({'F2': lambda: winograd.winograd_conv3x3(x, u2),
                'F2 grad': lambda: winograd.winograd_conv3x3(grad, u2, transpose=True)})
    if winograd_f4.available():  # F(2x2, 3x3)'s tile transforms in C++ too, as the loss network runs them
        fns.update({'F2 C++': lambda: winograd_f4.winograd_f4_conv3x3(x, u2),
                    'F2 C++ grad': lambda: winograd_f4.winograd_f4_input_grad(grad, u2)})
        u4 = winograd_f4.transform_weight(w)
        fns.update({'F4': lambda: winograd_f4.winograd_f4_conv3x3(x, u4),
                    'F4 grad': lambda: winograd_f4.winograd_f4_input_grad(grad, u4)})
    ref = F.conv2d(x.double(), w.double(), padding=1)
    ref_grad = torch.nn.grad.conv2d_input(x.shape, w.double(), grad.double(), padding=1)
    errors = {}
    for name, fn in fns.items():
        expected = ref_grad if name.endswith('grad') else ref
        errors[name] = float((fn().double() - expected).pow(2).mean().sqrt() / expected.pow(2).mean().sqrt())
    return fns, errors


def main(argv: List[str] = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--batch', type=int, default=2)
    parser.add_argument('--repeats', type=int, default=7)
    parser.add_argument('--scale', type=float, default=1.0, help='map sizes times this (tests: small)')
    args = parser.parse_args(argv)
    print(f'CPU, float32, channels-last, batch {args.batch}, torch {torch.__version__}, '
          f'threads {torch.get_num_threads()}, F(4x4, 3x3) built: {winograd_f4.available()}')
    names = ['direct', 'direct grad', 'F2', 'F2 grad', 'F2 C++', 'F2 C++ grad', 'F4', 'F4 grad']
    print(f'{"layer":<22}' + ''.join(f'{n + " ms":>16}' for n in names) + '   rms error: ' + ', '.join(names))
    for c_in, c_out, size in LAYERS:
        size = max(4, int(size * args.scale))
        fns, errors = layer_fns(c_in, c_out, size, args.batch)
        times = interleaved_ms(fns, 'cpu', args.repeats)
        ms = {name: statistics.median(t) for name, t in times.items()}
        print(f'{f"{c_in} -> {c_out} at {size}x{size}":<22}'
              + ''.join(f'{ms[n]:>16.2f}' if n in ms else f'{"-":>16}' for n in names)
              + '   ' + ', '.join(f'{errors[n]:.1e}' if n in errors else '-' for n in names), flush=True)


if __name__ == '__main__':
    main()
