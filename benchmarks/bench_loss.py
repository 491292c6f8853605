"""Cost of the random perceptual loss: mmperc vs the straightforward implementation, side by side.

Prints, per setting, the forward+backward time and peak memory of ``RandomPerceptualLoss``
and of the reference a user would write (an ``nn.Sequential`` VGG with the same weights,
``requires_grad=False``, the target detached, float32, ``F.mse_loss``, as mmagic's
PerceptualLoss), their ratios, and whether both give the same loss value. Then the training
step overhead of the perceptual term on PSPNet-R18. Runs unchanged with ``--device cuda``.

    python benchmarks/bench_loss.py                 # CPU, quick settings
    python benchmarks/bench_loss.py --full          # the issue's grid: 19/150 classes, 512/769
    python benchmarks/bench_loss.py --device cuda --full --batch 8
"""
import argparse
import gc
import os
import statistics
import sys
import time
from typing import Callable, Dict, List, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from mmperc.models import RandomPerceptualLoss  # noqa: E402

TARGET_SPEEDUP = 1.5
TARGET_MEMORY = 0.7
TARGET_STEP_OVERHEAD = 1.3


def reference_network(loss: RandomPerceptualLoss) -> nn.Sequential:
    """The straightforward VGG: nn.Sequential of Conv2d/ReLU/MaxPool2d with mmperc's weights."""
    net = loss.network
    layers: List[nn.Module] = []
    weights = iter(net.weights())
    for n in net.num_convs:
        for _ in range(n):
            w = next(weights)
            conv = nn.Conv2d(w.shape[1], w.shape[0], net.kernel_size, padding=net.kernel_size // 2)
            conv.weight.data.copy_(w)
            conv.bias.data.zero_()
            layers += [conv, nn.ReLU(inplace=True)]
        layers.append(nn.MaxPool2d(2, 2))
    ref = nn.Sequential(*layers)
    for p in ref.parameters():
        p.requires_grad_(False)
    return ref


def reference_loss(ref: nn.Sequential, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    return F.mse_loss(ref(pred.softmax(1)), ref(target.softmax(1)).detach())


def measure(fn: Callable[[], torch.Tensor], device: str, repeats: int) -> Tuple[float, float, float]:
    """Median seconds of ``fn().backward()``, peak memory in MiB, and the loss value."""
    value = fn()
    value.backward()  # warm-up
    times = []
    for _ in range(repeats):
        if device == 'cuda':
            torch.cuda.synchronize()
        start = time.perf_counter()
        value = fn()
        value.backward()
        if device == 'cuda':
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    gc.collect()
    if device == 'cuda':
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
        fn().backward()
        peak = (torch.cuda.max_memory_allocated() - base) / 2**20
    else:
        peak = _cpu_peak_mib(fn)
    return statistics.median(times), peak, float(value)


def _status_kib(field: str) -> int:
    with open('/proc/self/status') as f:
        return next(int(line.split()[1]) for line in f if line.startswith(field))


def _cpu_peak_mib(fn: Callable[[], torch.Tensor]) -> float:
    """Peak resident-memory growth of one fwd+bwd (Linux: VmHWM reset through clear_refs)."""
    with open('/proc/self/clear_refs', 'w') as f:
        f.write('5')  # reset the peak RSS (VmHWM) to the current RSS
    before = _status_kib('VmRSS')
    fn().backward()
    return (_status_kib('VmHWM') - before) / 1024


def saved_mib(fn: Callable[[], torch.Tensor]) -> float:
    """Memory autograd keeps for the backward pass (saved tensors, each storage once)."""
    seen, total = set(), [0]

    def pack(t: torch.Tensor) -> torch.Tensor:
        ptr = t.untyped_storage().data_ptr()
        if ptr not in seen:
            seen.add(ptr)
            total[0] += t.untyped_storage().nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        fn()
    return total[0] / 2**20


def bench_loss(settings, device: str, batch: int, repeats: int) -> List[Dict]:
    rows = []
    for num_convs, classes, size in settings:
        torch.manual_seed(0)
        pred = torch.randn(batch, classes, size, size, device=device, requires_grad=True)
        target = torch.randn(batch, classes, size, size, device=device)
        loss = RandomPerceptualLoss(num_convs=num_convs, in_channels=classes).to(device)
        ref = reference_network(loss).to(device)
        t_ref, m_ref, v_ref = measure(lambda: reference_loss(ref, pred, target), device, repeats)
        t_our, m_our, v_our = measure(lambda: loss(pred, target), device, repeats)
        s_ref, s_our = saved_mib(lambda: reference_loss(ref, pred, target)), saved_mib(lambda: loss(pred, target))
        rows.append(dict(structure=str(num_convs), classes=classes, size=size, ref_ms=t_ref * 1e3,
                         our_ms=t_our * 1e3, speedup=t_ref / t_our, ref_mib=m_ref, our_mib=m_our,
                         memory=m_our / m_ref if m_ref else float('nan'), saved=s_our / s_ref,
                         same_value=abs(v_our - v_ref) <= 1e-5 * abs(v_ref)))
    return rows


def bench_step(device: str, batch: int, size: int, classes: int, repeats: int) -> Dict[str, float]:
    """PSPNet-R18 training step (fwd, bwd, SGD) with and without the perceptual term."""
    from mmengine.config import Config
    from mmengine.registry import DefaultScope
    from mmengine.structures import PixelData
    from mmseg.registry import MODELS
    from mmseg.structures import SegDataSample

    from mmperc.models.segmentors import resolve_config_path
    from mmperc.utils import sync_bn_to_bn
    cfg = Config.fromfile(resolve_config_path('mmseg::pspnet/pspnet_r18-d8_4xb2-80k_cityscapes-769x769.py'))
    cfg.model.pretrained = None
    sync_bn_to_bn(cfg.model)
    cfg.model.decode_head.num_classes = classes
    cfg.model.auxiliary_head.num_classes = classes
    with DefaultScope.overwrite_default_scope('mmseg'):
        student = MODELS.build(cfg.model).to(device).train()
    perc = RandomPerceptualLoss(in_channels=classes, loss_weight=0.1).to(device)
    optim = torch.optim.SGD(student.parameters(), lr=1e-3)
    inputs = torch.randn(batch, 3, size, size, device=device)
    samples = []
    for _ in range(batch):
        sample = SegDataSample(gt_sem_seg=PixelData(data=torch.randint(0, classes, (1, size, size), device=device)))
        sample.set_metainfo(dict(img_shape=(size, size), pad_shape=(size, size)))
        samples.append(sample)
    teacher_logits = torch.randn(batch, classes, size // 8, size // 8, device=device)

    def step(with_perc: bool) -> torch.Tensor:
        x = student.extract_feat(inputs)
        logits = student.decode_head(x)
        losses = student.decode_head.loss_by_feat(logits, samples)
        losses.update(student._auxiliary_head_forward_train(x, samples))
        total = sum(v for k, v in losses.items() if 'loss' in k)
        if with_perc:
            up = F.interpolate(logits, size=(size, size), mode='bilinear', align_corners=False)
            target = F.interpolate(teacher_logits, size=(size, size), mode='bilinear', align_corners=False)
            total = total + perc(up, target)
        optim.zero_grad()
        return total

    plain, _, _ = measure(lambda: step(False), device, repeats)
    with_perc, _, _ = measure(lambda: step(True), device, repeats)
    return dict(plain_ms=plain * 1e3, perc_ms=with_perc * 1e3, ratio=with_perc / plain)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--device', default='cuda' if torch.cuda.is_available() else 'cpu')
    parser.add_argument('--batch', type=int, default=2)
    parser.add_argument('--repeats', type=int, default=3)
    parser.add_argument('--full', action='store_true', help='19/150 classes x 512/769 (slow on CPU)')
    parser.add_argument('--step-size', type=int, default=256, help='input size of the training-step benchmark')
    args = parser.parse_args()
    structures = [(2, 2, 3, 3, 3), (1, 1, 1, 1, 1)]
    if args.full:
        settings = [(s, c, size) for s in structures for c in (19, 150) for size in (512, 769)]
    else:
        settings = [(s, 19, 256) for s in structures]
    print(f'device={args.device} batch={args.batch} torch={torch.__version__} threads={torch.get_num_threads()}')
    print('\n1. Loss forward+backward: mmperc vs reference (same weights, float32)')
    print(f'{"structure":<18}{"C":>4}{"size":>6}{"ref ms":>9}{"ours ms":>9}{"speedup":>9}'
          f'{"ref MiB":>9}{"ours MiB":>9}{"memory":>8}{"saved":>7}  same value')
    for r in bench_loss(settings, args.device, args.batch, args.repeats):
        print(f'{r["structure"]:<18}{r["classes"]:>4}{r["size"]:>6}{r["ref_ms"]:>9.1f}{r["our_ms"]:>9.1f}'
              f'{r["speedup"]:>8.2f}x{r["ref_mib"]:>9.1f}{r["our_mib"]:>9.1f}{r["memory"]:>7.2f}x{r["saved"]:>6.2f}x'
              f'  {r["same_value"]}')
    print(f'   targets: speedup >= {TARGET_SPEEDUP}x, memory (peak growth) <= {TARGET_MEMORY}x, same value '
          'within 1e-5; saved = activation memory kept for backward, ours / reference')
    step = bench_step(args.device, args.batch, args.step_size, 19, args.repeats)
    print(f'\n2. PSPNet-R18 training step at {args.step_size}x{args.step_size}, batch {args.batch}, 19 classes, '
          'teacher logits given')
    print(f'   plain {step["plain_ms"]:.1f} ms, + perceptual term {step["perc_ms"]:.1f} ms: '
          f'ratio (A) {step["ratio"]:.2f}x (target <= {TARGET_STEP_OVERHEAD}x)')


if __name__ == '__main__':
    main()
