"""Where the loss's time goes: ``torch.profiler`` over mmperc's loss and the reference, side by side.

For one setting (structure, classes, size, batch, target), prints per side the wall time of a
forward+backward (median of ``--repeats`` calls after a warm-up, outside the profiler) and the
profiler's table of the ops over ``--repeats`` more calls (on CUDA sorted by self device time,
with the totals under it: kernel time against wall time says whether the GPU waits on the host);
mmperc once per band budget given (:data:`class_maps.DEVICE_BAND_BYTES`, the CPU's
:data:`class_maps.BAND_BYTES`; 0 = whole maps). The evidence to look at before changing how the
loss runs on a device where it is slower than the reference (150 classes on CUDA, README).

    python benchmarks/profile_loss.py --classes 19 --size 256
    python benchmarks/profile_loss.py --device cuda --batch 8 --size 769 --classes 150 --budgets 256 0
"""
import argparse
import contextlib
import os
import statistics
import sys
import time
from typing import Callable, Dict, Iterator, List, Optional, Tuple

import torch
from torch.profiler import ProfilerActivity, profile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_loss import _loss_setting, reference_loss  # noqa: E402
from sweep_bands import set_budget  # noqa: E402

from mmperc.models.losses import class_maps  # noqa: E402


def _sync(device: str) -> None:
    if torch.device(device).type == 'cuda':
        torch.cuda.synchronize()


def wall_ms(fn: Callable[[], torch.Tensor], device: str, repeats: int) -> float:
    """Median milliseconds of ``fn().backward()`` after one warm-up call."""
    fn().backward()
    times = []
    for _ in range(repeats):
        _sync(device)
        start = time.perf_counter()
        fn().backward()
        _sync(device)
        times.append((time.perf_counter() - start) * 1e3)
    return statistics.median(times)


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


@contextlib.contextmanager
def band_budget(device: str, mib: Optional[float]) -> Iterator[None]:
    """The loss's band budget set to ``mib`` (None: left as it is) for forward and backward."""
    saved = class_maps.BAND_BYTES, class_maps.DEVICE_BAND_BYTES
    if mib is not None:
        set_budget(device, mib)
    try:
        yield
    finally:
        class_maps.BAND_BYTES, class_maps.DEVICE_BAND_BYTES = saved


def variants(structure, classes: int, size: int, batch: int, device: str, labels: bool,
             budgets: List[Optional[float]]) -> Dict[str, Tuple[Callable[[], torch.Tensor], Optional[float]]]:
    """The reference and mmperc (once per band budget; None: the default) on the same maps,
    each with the budget to run it under."""
    pred, target, loss, ref = _loss_setting(structure, classes, size, batch, device, labels)
    fns = {'reference': (lambda: reference_loss(ref, pred, target), None)}
    for mib in budgets:
        fns['mmperc' if mib is None else f'mmperc, bands of {mib:g} MiB'] = (lambda: loss(pred, target), mib)
    return fns


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--device', default='cuda' if torch.cuda.is_available() else 'cpu')
    parser.add_argument('--structure', default='1,1,1,1,1', help="convolutions per block, e.g. 2,2,3,3,3 (VGG16)")
    parser.add_argument('--classes', type=int, default=19)
    parser.add_argument('--size', type=int, default=256)
    parser.add_argument('--batch', type=int, default=2)
    parser.add_argument('--targets', choices=['logits', 'labels'], default='logits')
    parser.add_argument('--budgets', type=float, nargs='*', default=[],
                        help='band budgets (MiB; 0 = whole maps) to profile besides the default')
    parser.add_argument('--repeats', type=int, default=3, help='calls timed, and calls profiled')
    parser.add_argument('--top', type=int, default=25, help='rows of each table')
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
    for name, (fn, mib) in fns.items():
        with band_budget(args.device, mib):
            walls[name] = wall_ms(fn, args.device, args.repeats)
    for name, (fn, mib) in fns.items():
        print(f'\n== {name}: {walls[name]:.1f} ms per forward+backward '
              f'(reference / this: {walls["reference"] / walls[name]:.2f}x)')
        with band_budget(args.device, mib):
            print(profile_table(fn, args.device, args.repeats, args.top), flush=True)


if __name__ == '__main__':
    main()
