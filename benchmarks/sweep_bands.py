"""The loss's band budget and weight layout on one device, measured side by side.

For each structure and class count, times mmperc's forward+backward (median of interleaved
rounds) and its peak memory with every band budget (:data:`class_maps.DEVICE_BAND_BYTES`, or
:data:`class_maps.BAND_BYTES` on the CPU) and both weight layouts (:data:`random_vgg.LAYOUTS`),
each layout given the maps in it (as the segmentor resizes them), beside the reference of
``bench_loss.py`` given the same maps in NCHW, in float32 (the value checked
with TF32 off on CUDA) and, on CUDA, under bf16 autocast. This is the evidence for those
defaults on a GPU:

    python benchmarks/sweep_bands.py --device cuda --batch 8 --size 769
"""
import argparse
import contextlib
import copy
import os
import statistics
import sys
from typing import Callable, Dict, Iterator, List, Optional

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_loss import (_loss_setting, _same, add_device_argument, compared_values, cuda_peak_mib,  # noqa: E402
                        median_ratio, reference_loss, timed_fwd_bwd, weights_layout)

from mmperc.models.losses import class_maps, random_vgg  # noqa: E402

LAYOUT_NAMES = {'nchw': torch.contiguous_format, 'channels_last': torch.channels_last}


def set_budget(device: str, mib: float) -> None:
    """The band budget of ``device``'s type, in MiB (0: one band, the whole maps)."""
    nbytes = int(mib * 2**20) if mib else 2**62
    setattr(class_maps, 'BAND_BYTES' if device == 'cpu' else 'DEVICE_BAND_BYTES', nbytes)


@contextlib.contextmanager
def band_budget(device: str, mib: Optional[float]) -> Iterator[None]:
    """Within it, the band budget of ``device``'s type set to ``mib`` (None: left as it is);
    both budgets are as they were after it."""
    saved = class_maps.BAND_BYTES, class_maps.DEVICE_BAND_BYTES
    if mib is not None:
        set_budget(device, mib)
    try:
        yield
    finally:
        class_maps.BAND_BYTES, class_maps.DEVICE_BAND_BYTES = saved


def sweep(device: str, batch: int, size: int, classes: List[int], budgets: List[float], repeats: int,
          amp: bool) -> Iterator[Dict]:
    """One row per structure, class count, layout and budget: mmperc's ms, speedup over the
    reference and peak memory (CUDA) against the reference's."""
    kind = torch.device(device).type
    for num_convs in ((2, 2, 3, 3, 3), (1, 1, 1, 1, 1)):
        for c in classes:
            pred, target, loss, ref = _loss_setting(num_convs, c, size, batch, device)
            fns = {'ref': _with(kind, amp, None, None, lambda: reference_loss(ref, pred, target))}
            for layout, fmt in LAYOUT_NAMES.items():
                with weights_layout(device, fmt):
                    laid_out = copy.deepcopy(loss).to(device)  # the weights in this layout
                # the maps in it too, as the segmentor resizes them (the reference: NCHW)
                p = pred.detach().contiguous(memory_format=fmt).requires_grad_()
                t = target.contiguous(memory_format=fmt)
                for mib in budgets:
                    fns[f'{layout} {mib:g}'] = _with(kind, amp, fmt, mib, lambda m=laid_out, p=p, t=t: m(p, t))
            times, values = timed_fwd_bwd(fns, device, repeats)
            values = values if amp else compared_values(fns, device, values)
            peaks = {name: cuda_peak_mib(fn) for name, fn in fns.items()} if kind == 'cuda' else {}
            for name in list(fns)[1:]:
                layout, mib = name.split()
                yield dict(structure=str(num_convs), classes=c, layout=layout, mib=mib,
                           ms=statistics.median(times[name]), ref_ms=statistics.median(times['ref']),
                           speedup=median_ratio(times, 'ref', name),
                           memory=peaks[name] / peaks['ref'] if peaks else float('nan'),
                           peak_mib=peaks.get(name, float('nan')),
                           same='-' if amp else _same(values[name], values['ref']))


def _with(kind: str, amp: bool, layout: Optional[torch.memory_format], mib: Optional[float],
          fn: Callable[[], torch.Tensor]):
    """``fn`` (a forward; the backward runs outside) under bf16 autocast if ``amp``, with the
    activated maps in ``layout`` and the band budget ``mib`` (None: as they are)."""
    def run() -> torch.Tensor:
        if mib is not None:
            set_budget(kind, mib)
        with weights_layout(kind, layout), torch.autocast(kind, dtype=torch.bfloat16, enabled=amp):
            return fn()
    return run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_device_argument(parser)
    parser.add_argument('--batch', type=int, default=2)
    parser.add_argument('--size', type=int, default=256)
    parser.add_argument('--classes', type=int, nargs='+', default=[19, 150])
    parser.add_argument('--budgets', type=float, nargs='+', default=[8, 64, 256, 1024, 0],
                        help='band budgets in MiB (0: the whole maps in one band)')
    parser.add_argument('--repeats', type=int, default=5)
    args = parser.parse_args()
    if torch.device(args.device).type == 'cuda':
        torch.backends.cudnn.benchmark = True  # as mmseg's configs train (env_cfg.cudnn_benchmark)
    print(f'device={args.device} ({torch.cuda.get_device_name(0) if args.device == "cuda" else "cpu"}) '
          f'batch={args.batch} size={args.size} torch={torch.__version__}; defaults: bands of '
          f'{class_maps.BAND_BYTES / 2**20:g} MiB on the CPU, {class_maps.DEVICE_BAND_BYTES / 2**20:g} MiB '
          f'elsewhere; weight layouts {random_vgg.LAYOUTS} (elsewhere NCHW)')
    with band_budget(args.device, None):  # the sweep sets the budgets; they are restored after it
        for amp in ([False, True] if torch.device(args.device).type == 'cuda' else [False]):
            print(f'\n{"bf16 autocast" if amp else "float32"}: mmperc forward+backward per band budget '
                  '(MiB, 0 = whole maps) and weight layout, the maps in that layout too (as the segmentor '
                  'resizes them); speedup over the reference (the same maps, NCHW; interleaved rounds)')
            print(f'{"structure":<18}{"C":>4}{"layout":>15}{"MiB":>6}{"ms":>9}{"ref ms":>9}'
                  f'{"speedup":>9}{"peak MiB":>10}{"memory":>8}  same value')
            for r in sweep(args.device, args.batch, args.size, args.classes, args.budgets, args.repeats, amp):
                print(f'{r["structure"]:<18}{r["classes"]:>4}{r["layout"]:>15}{r["mib"]:>6}'
                      f'{r["ms"]:>9.1f}{r["ref_ms"]:>9.1f}{r["speedup"]:>8.2f}x{r["peak_mib"]:>10.1f}'
                      f'{r["memory"]:>7.2f}x  {r["same"]}', flush=True)


if __name__ == '__main__':
    main()
