"""Where the loss's time goes: ``torch.profiler`` over mmperc's loss and the reference, side by side.

For one setting (structure, classes, size, batch, target), prints per side the wall time of a
forward+backward (median of ``--repeats`` calls after a warm-up, outside the profiler) and the
profiler's table of the ops over ``--repeats`` more calls (on CUDA sorted by self device time,
with the totals under it: kernel time against wall time says whether the GPU waits on the host),
mmperc once per band budget given (:data:`class_maps.DEVICE_BAND_BYTES`, the CPU's
:data:`class_maps.BAND_BYTES`; 0 = whole maps). The evidence to look at before changing how
the loss runs on a device where it is slower than the reference (150 classes on CUDA, given
NCHW maps: README). Then the first convolution alone, per layout and padded channel count.

    python benchmarks/profile_loss.py --classes 19 --size 256
    python benchmarks/profile_loss.py --device cuda --batch 8 --size 769 --classes 150 --budgets 256 0
"""
import argparse
import os
import resource
import statistics
import sys
from functools import partial
from typing import Callable, Dict, List, Optional, Tuple

import torch
import torch.nn.functional as F
from torch.profiler import ProfilerActivity, profile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_loss import _loss_setting, add_device_argument, interleaved_ms, reference_loss  # noqa: E402
from sweep_bands import LAYOUT_NAMES, band_budget  # noqa: E402


def _sync(device: str) -> None:
    if torch.device(device).type == 'cuda':
        torch.cuda.synchronize()


def median_ms(call: Callable[[], object], device: str, repeats: int) -> float:
    """Median milliseconds of ``call()`` over ``repeats`` calls after a warm-up one."""
    return statistics.median(interleaved_ms({'call': call}, device, repeats)['call'])


def wall_ms(fn: Callable[[], torch.Tensor], device: str, repeats: int) -> Tuple[float, float]:
    """:func:`median_ms` of ``fn().backward()``, and the process's minor page faults per call
    after a first one (the first touch of memory the allocator got afresh from the OS: on the
    CPU, what glibc's default costs every large tensor)."""
    fn().backward()
    faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    ms = median_ms(lambda: fn().backward(), device, repeats)
    return ms, (resource.getrusage(resource.RUSAGE_SELF).ru_minflt - faults) / (repeats + 1)


def profile_table(fn: Callable[[], torch.Tensor], device: str, repeats: int, top: int) -> str:
    """The profiler's table of ``repeats`` calls of ``fn().backward()``, the costliest ops first."""
    cuda = torch.device(device).type == 'cuda'
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if cuda else [])
    with profile(activities=activities) as prof:
        for _ in range(repeats):
            fn().backward()
        _sync(device)
    return prof.key_averages().table(sort_by='self_device_time_total' if cuda else 'self_cpu_time_total',
                                     row_limit=top, max_name_column_width=60)


def first_layer_rows(classes: int, size: int, batch: int, device: str, repeats: int) -> List[str]:
    """The loss network's first convolution alone (``classes`` -> 64, 3x3, the size of the maps),
    forward and input gradient, per layout and input channel count (the classes, and rounded up
    to a multiple of 8, zero-padded: vector and tensor-core kernels work on blocks of channels),
    in float32 and, on CUDA, bf16: whether the layer runs at the device's rate. The variants of
    a dtype run interleaved (:func:`interleaved_ms`): timed one after another, they depended on
    their order (19 -> 64 channels-last at 256x256 on the CPU: 20 ms, then 24 channels 12 ms;
    interleaved 21 and 24 ms)."""
    cuda = torch.device(device).type == 'cuda'
    variants = [(name, channels) for name in LAYOUT_NAMES for channels in sorted({classes, -(-classes // 8) * 8})]
    rows = []
    for dtype in [torch.float32] + ([torch.bfloat16] if cuda else []):
        fns: Dict[Tuple[str, int, str], Callable[[], object]] = {}
        for name, channels in variants:
            layout = LAYOUT_NAMES[name]
            x = torch.rand(batch, channels, size, size, device=device, dtype=dtype).contiguous(memory_format=layout)
            w = torch.randn(64, channels, 3, 3, device=device, dtype=dtype).contiguous(memory_format=layout)
            g = torch.randn(batch, 64, size, size, device=device, dtype=dtype).contiguous(memory_format=layout)
            # with TF32 as PyTorch's default on CUDA
            fns[name, channels, 'fwd'] = partial(F.conv2d, x, w, padding=1)
            fns[name, channels, 'grad'] = partial(torch.ops.aten.convolution_backward, g, x, w, None, (1, 1),
                                                  (1, 1), (1, 1), False, (0, 0), 1, (True, False, False))
        # at least 3 rounds
        ms = {key: statistics.median(times) for key, times in interleaved_ms(fns, device, max(repeats, 3)).items()}
        gflop = 2 * batch * size * size * classes * 64 * 9 / 1e9  # the useful work: the classes only
        for name, channels in variants:
            forward, backward = ms[name, channels, 'fwd'], ms[name, channels, 'grad']
            rows.append(f'{str(dtype)[6:]:<9}{name:<15}{channels:>9}{forward:>10.2f}'
                        f'{gflop / forward * 1e3:>9.0f}{backward:>10.2f}{gflop / backward * 1e3:>9.0f}')
    return rows


def faults_by_op(fn: Callable[[], torch.Tensor], top: int) -> List[str]:
    """The aten ops of one ``fn().backward()`` (after a warm-up call) that page-fault most (the
    process's minor faults while each op runs: its output's first touch), with their output shapes."""
    from torch.utils._python_dispatch import TorchDispatchMode
    counts: Dict[Tuple[str, str], List[int]] = {}

    class Faults(TorchDispatchMode):
        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
            out = func(*args, **(kwargs or {}))
            first = out[0] if isinstance(out, (tuple, list)) and out else out
            key = (str(func), str(tuple(first.shape)) if isinstance(first, torch.Tensor) else '')
            entry = counts.setdefault(key, [0, 0])
            entry[0] += resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before
            entry[1] += 1
            return out

    fn().backward()
    with Faults():
        fn().backward()
    total = sum(faults for faults, _ in counts.values())
    rows = [f'{faults:>8}{calls:>6}  {op} -> {shape}'
            for (op, shape), (faults, calls) in sorted(counts.items(), key=lambda kv: -kv[1][0])[:top] if faults]
    return [f'{total:>8} page faults in all (under the dispatch mode), the most by:',
            f'{"faults":>8}{"calls":>6}  op -> output shape'] + rows


Setting = Tuple[Callable[[], torch.Tensor], Optional[float]]


def variants(structure, classes: int, size: int, batch: int, device: str, labels: bool,
             budgets: List[Optional[float]]) -> Dict[str, Setting]:
    """The reference and mmperc (once per band budget, None: the default) on the same maps,
    each with the band budget to run it under."""
    pred, target, loss, ref = _loss_setting(structure, classes, size, batch, device, labels)
    fns: Dict[str, Setting] = {'reference': (lambda: reference_loss(ref, pred, target), None)}
    for mib in budgets:
        fns['mmperc' if mib is None else f'mmperc, bands of {mib:g} MiB'] = (lambda: loss(pred, target), mib)
    return fns


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_device_argument(parser)
    parser.add_argument('--structure', default='1,1,1,1,1', help="convolutions per block, e.g. 2,2,3,3,3 (VGG16)")
    parser.add_argument('--classes', type=int, default=19)
    parser.add_argument('--size', type=int, default=256)
    parser.add_argument('--batch', type=int, default=2)
    parser.add_argument('--targets', choices=['logits', 'labels'], default='logits')
    parser.add_argument('--budgets', type=float, nargs='*', default=[],
                        help='band budgets (MiB; 0 = whole maps) to profile besides the default')
    parser.add_argument('--repeats', type=int, default=3, help='calls timed, and calls profiled')
    parser.add_argument('--top', type=int, default=25, help='rows of each table')
    parser.add_argument('--faults', action='store_true',
                        help='also list the ops that page-fault most (CPU: fresh memory from the OS)')
    args = parser.parse_args()
    structure = tuple(int(n) for n in args.structure.split(','))
    if torch.device(args.device).type == 'cuda':
        torch.backends.cudnn.benchmark = True  # as mmseg's configs train
    print(f'device={args.device} torch={torch.__version__} threads={torch.get_num_threads()} '
          f'structure={structure} classes={args.classes} size={args.size} batch={args.batch} '
          f'target={args.targets}; tables: {args.repeats} calls of forward+backward', flush=True)
    fns = variants(structure, args.classes, args.size, args.batch, args.device, args.targets == 'labels',
                   [None] + list(args.budgets))
    walls = {}
    for name, (fn, mib) in fns.items():  # each printed as measured: a time limit keeps those done
        with band_budget(args.device, mib):
            walls[name] = ms, faults = wall_ms(fn, args.device, args.repeats)
        print(f'== {name}: {ms:.1f} ms per forward+backward (reference / this: '
              f'{walls["reference"][0] / ms:.2f}x), {faults:.0f} page faults per call', flush=True)
    for name, (fn, mib) in fns.items():
        print(f'\n-- {name}: torch.profiler over {args.repeats} calls')
        with band_budget(args.device, mib):
            print(profile_table(fn, args.device, args.repeats, args.top), flush=True)
            if args.faults:
                print('\n'.join(faults_by_op(fn, args.top)), flush=True)
    # last: on CUDA each of its 8 shapes first benchmarks cuDNN's algorithms (a time limit cuts this first)
    print(f'\nThe first convolution alone ({args.classes} -> 64, 3x3, {args.size}x{args.size}, batch {args.batch}); '
          'GFLOP/s of the classes\' work (padded channels are extra work)')
    print(f'{"dtype":<9}{"layout":<15}{"channels":>9}{"fwd ms":>10}{"GFLOP/s":>9}{"grad ms":>10}{"GFLOP/s":>9}')
    with torch.no_grad():
        print('\n'.join(first_layer_rows(args.classes, args.size, args.batch, args.device, args.repeats)), flush=True)


if __name__ == '__main__':
    main()
