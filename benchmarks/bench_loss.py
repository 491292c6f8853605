"""Cost of the random perceptual loss: mmperc vs the straightforward implementation, side by side.

Prints, per setting, the forward+backward time and peak memory of ``RandomPerceptualLoss``
and of the reference a user would write (an ``nn.Sequential`` VGG with the same weights,
``requires_grad=False``, the target detached, float32, ``F.mse_loss``, as mmagic's
PerceptualLoss), their ratios, and whether both give the same loss value; the time ratio also
with both sides starting from a decode head's 1/8-size logits, each resizing them as it uses
them (mmperc in the layout ``RandomPerceptualLoss.memory_format`` asks for); on the CPU also
with an allocator that keeps freed memory (a child process, :data:`KEPT_MEMORY_ENV`), since
glibc's default makes every large tensor pay its page faults again, which costs the reference
more. Then the training step overhead of the perceptual term on PSPNet-R18. Runs unchanged with ``--device cuda``.

    python benchmarks/bench_loss.py                 # CPU, quick settings
    python benchmarks/bench_loss.py --full          # the issue's grid: 19/150 classes, 512/769
    python benchmarks/bench_loss.py --full --classes 150    # its 150-class rows only
    python benchmarks/bench_loss.py --targets labels --no-step     # ground-truth targets
    python benchmarks/bench_loss.py --device cuda --full --batch 8
"""
import argparse
import contextlib
import copy
import gc
import os
import statistics
import subprocess
import sys
import time
from functools import partial
from math import nan
from typing import Any, Callable, ContextManager, Dict, Iterator, List, Optional, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from mmperc.models import RandomPerceptualLoss, RandomVGG  # noqa: E402
from mmperc.models.losses import random_vgg  # noqa: E402

TARGET_SPEEDUP = 1.5
TARGET_MEMORY = 0.7
TARGET_STEP_OVERHEAD = 1.3
#: Ratio (A) of the default on a GPU with AMP (bf16 autocast): the term adds at most 15%.
TARGET_GPU_AMP_OVERHEAD = 1.15


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
    """The straightforward loss; a label target as ``F.one_hot`` gives it, permuted to (N, C, H, W)
    (so channels-last: measured faster for the reference than made contiguous, 412 vs 470 ms with
    19 classes, 801 vs 967 ms with 150, at 256x256 on the CPU)."""
    if target.is_floating_point():
        maps = target.softmax(1)
    else:
        maps = F.one_hot(target, pred.shape[1]).permute(0, 3, 1, 2).float()
    return F.mse_loss(ref(pred.softmax(1)), ref(maps).detach())


def fwd_bwd(fn: Callable[[], torch.Tensor], values: List[float]) -> Callable[[], None]:
    """``fn().backward()``, recording the loss value."""
    def run() -> None:
        value = fn()
        value.backward()
        values.append(float(value.detach()))
    return run


def cuda_peak_mib(fn: Callable[[], torch.Tensor]) -> float:
    """Peak CUDA memory of one ``fn().backward()`` above what was allocated before."""
    gc.collect()
    torch.cuda.reset_peak_memory_stats()
    base = torch.cuda.memory_allocated()
    fn().backward()
    return (torch.cuda.max_memory_allocated() - base) / 2**20


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
    """Memory autograd keeps for the backward pass (saved tensors, each storage once).

    The hook keeps a detached view: a saved output packed as itself would hold its own
    ``grad_fn`` (a reference cycle through C++ that Python's collector cannot see), and the
    graph of the whole call would outlive it: 4 GiB per call for VGG16/150 at 769 pixels."""
    seen, total = set(), [0]

    def pack(t: torch.Tensor) -> torch.Tensor:
        ptr = t.untyped_storage().data_ptr()
        if ptr not in seen:
            seen.add(ptr)
            total[0] += t.untyped_storage().nbytes()
        return t.detach()

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        fn()
    return total[0] / 2**20


def _loss_setting(num_convs, classes: int, size: int, batch: int, device: str, labels: bool = False):
    """Prediction logits, the target (teacher logits, or with ``labels`` ground-truth labels),
    mmperc's loss and the reference network."""
    torch.manual_seed(0)
    pred = torch.randn(batch, classes, size, size, device=device, requires_grad=True)
    if labels:
        target = torch.randint(0, classes, (batch, size, size), device=device)
    else:
        target = torch.randn(batch, classes, size, size, device=device)
    loss = RandomPerceptualLoss(num_convs=num_convs, in_channels=classes).to(device)
    return pred, target, loss, reference_network(loss).to(device)


def upsampled(logits: torch.Tensor, size: int) -> torch.Tensor:
    """Logits resized to the labels' size, as mmseg's ``resize`` does (bilinear)."""
    return F.interpolate(logits, size=(size, size), mode='bilinear', align_corners=False)


def from_head_logits(loss: RandomPerceptualLoss, ref: nn.Sequential, classes: int, size: int, batch: int,
                     device: str, labels: Optional[torch.Tensor] = None):
    """Both sides from a decode head's 1/8-resolution logits, each resized as it is used: the
    reference resizes them as they come (NCHW, PyTorch's default layout); mmperc as
    :class:`PerceptualDistillSegmentor` does, in ``loss.memory_format`` (the small logits
    transposed, the resized ones come out in it). The third is the reference in channels-last
    (its weights, ``ref_cl``, and its logits transposed as mmperc's are), the layout a user who
    knows it would give it. With ``labels``, those are the target, as they come.

    Returns:
        tuple: The reference's, mmperc's and the channels-last reference's loss functions.
    """
    small = -(-size // 8)
    pred = torch.randn(batch, classes, small, small, device=device, requires_grad=True)
    target = torch.randn(batch, classes, small, small, device=device) if labels is None else None
    layout = loss.memory_format(device)
    ref_cl = copy.deepcopy(ref).to(memory_format=torch.channels_last)

    def in_layout(call: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
                  fmt: torch.memory_format) -> Callable[[], torch.Tensor]:
        return lambda: call(upsampled(pred.contiguous(memory_format=fmt), size),
                            upsampled(target.contiguous(memory_format=fmt), size) if labels is None else labels)

    return (in_layout(lambda p, t: reference_loss(ref, p, t), torch.contiguous_format), in_layout(loss, layout),
            in_layout(lambda p, t: reference_loss(ref_cl, p, t), torch.channels_last))


def _same(a: List[float], b: List[float]) -> bool:
    return abs(a[-1] - b[-1]) <= 1e-5 * abs(b[-1])


def timed_fwd_bwd(fns: Dict[str, Callable[[], torch.Tensor]], device: str,
                  repeats: int) -> Tuple[Dict[str, List[float]], Dict[str, List[float]]]:
    """:func:`interleaved_ms` of ``fn().backward()`` for each of ``fns``, and the loss values each gave."""
    values: Dict[str, List[float]] = {name: [] for name in fns}
    return interleaved_ms({name: fwd_bwd(fn, values[name]) for name, fn in fns.items()}, device, repeats), values


def compared_values(fns: Dict[str, Callable[[], torch.Tensor]], device: str,
                    values: Dict[str, List[float]]) -> Dict[str, List[float]]:
    """The loss values to compare with the reference: ``values`` (recorded while timing), but on
    CUDA one more forward of each of ``fns`` with TF32 off. PyTorch runs cuDNN's float32
    convolutions in TF32 by default (timed so, as training runs), whose rounding differs
    between algorithms and layouts by far more than 1e-5; the definition is checked in float32."""
    if torch.device(device).type != 'cuda':
        return values
    allow_tf32 = torch.backends.cudnn.allow_tf32
    torch.backends.cudnn.allow_tf32 = False
    try:
        return {name: [float(fn().detach())] for name, fn in fns.items()}
    finally:
        torch.backends.cudnn.allow_tf32 = allow_tf32


def median_ratio(times: Dict[str, List[float]], numerator: str, denominator: str) -> float:
    """The median over rounds of ``times[numerator] / times[denominator]`` (:func:`round_ratios`)."""
    return statistics.median(round_ratios(times[numerator], times[denominator]))


def bench_loss(settings, device: str, batch: int, repeats: int, labels: bool = False,
               on_row: Optional[Callable[[Dict], None]] = None) -> List[Dict]:
    """One row per setting; ``on_row`` gets each as it is measured."""
    rows = []
    for num_convs, classes, size in settings:
        pred, target, loss, ref = _loss_setting(num_convs, classes, size, batch, device, labels)
        ref_fn, our_fn = lambda: reference_loss(ref, pred, target), lambda: loss(pred, target)
        ref_head, our_head, ref_cl_head = from_head_logits(loss, ref, classes, size, batch, device,
                                                           target if labels else None)
        fns = dict(ref=ref_fn, ours=our_fn, ref_head=ref_head, our_head=our_head, ref_cl_head=ref_cl_head)
        times, values = timed_fwd_bwd(fns, device, repeats)
        values = compared_values(fns, device, values)
        m_ref, m_our = (cuda_peak_mib(ref_fn), cuda_peak_mib(our_fn)) if device == 'cuda' else (nan, nan)
        s_ref, s_our = saved_mib(ref_fn), saved_mib(our_fn)
        rows.append(dict(structure=str(num_convs), classes=classes, size=size,
                         ref_ms=statistics.median(times['ref']), our_ms=statistics.median(times['ours']),
                         speedup=median_ratio(times, 'ref', 'ours'),
                         head_speedup=median_ratio(times, 'ref_head', 'our_head'),
                         head_speedup_cl=median_ratio(times, 'ref_cl_head', 'our_head'),
                         ref_mib=m_ref, our_mib=m_our,
                         memory=m_our / m_ref if m_ref else nan, saved=s_our / s_ref,
                         same_value=_same(values['ours'], values['ref'])
                         and _same(values['our_head'], values['ref_head'])
                         and _same(values['ref_cl_head'], values['ref_head'])))
        if on_row is not None:
            on_row(rows[-1])
    return rows


def print_row(r: Dict) -> None:
    """One line of the loss table."""
    print(f'{r["structure"]:<18}{r["classes"]:>4}{r["size"]:>6}{r["ref_ms"]:>9.1f}{r["our_ms"]:>9.1f}'
          f'{r["speedup"]:>8.2f}x{r["head_speedup"]:>8.2f}x{r["head_speedup_cl"]:>8.2f}x'
          + (f'{r["kept"]:>6.2f}x' if 'kept' in r else f'{"-":>7}')
          + f'{r["ref_mib"]:>9.1f}{r["our_mib"]:>9.1f}{r["memory"]:>7.2f}x'
          + (f'{r["first"]:>6.2f}x' if 'first' in r else f'{"-":>7}') + f'{r["saved"]:>6.2f}x'
          f'  {r["same_value"]}', flush=True)


#: Ratio (A) is measured for the config's loss and for these settings of it (keys over the config's).
LOSS_VARIANTS = [
    ('config default', {}),
    ('+ resize=0.5', dict(resize=0.5)),
    ('VGG16', dict(num_convs=(2, 2, 3, 3, 3))),
    ('VGG16 + resize=0.5', dict(num_convs=(2, 2, 3, 3, 3), resize=0.5)),
    ('+ autocast=bfloat16', dict(autocast='bfloat16')),
]
#: The config default against the ground-truth labels instead of the teacher's logits.
LABELS_ROW = 'config default, ground-truth target'
PLAIN_CONFIG = 'configs/pspnet/pspnet_r18-d8_4xb2-40k_cityscapes-769x769.py'
PERC_CONFIG = 'configs/perc/pspnet_r18-d8_perc-r101_4xb2-40k_cityscapes-769x769.py'


_LAYOUT_NAMES = {torch.contiguous_format: 'NCHW weights', torch.channels_last: 'channels-last weights'}


def _other_layout(device: str) -> torch.memory_format:
    """The weight layout that ``device`` does not use by default."""
    default = RandomVGG.memory_format(device)
    return torch.contiguous_format if default == torch.channels_last else torch.channels_last


@contextlib.contextmanager
def dict_item(table: Dict[str, Any], key: str, value: Any) -> Iterator[None]:
    """Within it, ``table[key]`` is ``value`` (None: unchanged); as it was after it."""
    before = table.get(key)
    if value is not None:
        table[key] = value
    try:
        yield
    finally:
        if before is None:
            table.pop(key, None)
        else:
            table[key] = before


def device_entry(table: Dict[str, Any], device: str, value: Any) -> ContextManager[None]:
    """:func:`dict_item` of ``device``'s type: a per-device table such as :data:`random_vgg.LAYOUTS`."""
    return dict_item(table, torch.device(device).type, value)


def weights_layout(device: str, layout: Optional[torch.memory_format]) -> ContextManager[None]:
    """Within it, the loss network's weights (moved or built then) and activated maps on
    ``device`` use ``layout`` (:data:`random_vgg.LAYOUTS`; None: unchanged)."""
    return device_entry(random_vgg.LAYOUTS, device, layout)


def _build(cfg, device: str):
    from mmengine.registry import DefaultScope
    from mmseg.registry import MODELS

    from mmperc.utils import sync_bn_to_bn
    cfg.model.pretrained = None
    cfg.model.backbone.pop('init_cfg', None)
    sync_bn_to_bn(cfg.model)
    with DefaultScope.overwrite_default_scope('mmseg'):
        return MODELS.build(cfg.model).to(device).train()


#: The whole distillation step with ``model.teacher.autocast='bfloat16'``.
BF16_TEACHER = 'teacher in bf16 autocast'


def bf16_teacher(fn: Callable[[nn.Module], Any]) -> Callable[[nn.Module], Any]:
    """``fn(model)`` with the segmentor's teacher in bf16 autocast of its own
    (``model.teacher.autocast='bfloat16'``), as it was after it."""
    def run(model: nn.Module) -> Any:
        with dict_item(model.teacher_cfg, 'autocast', 'bfloat16'):
            return fn(model)
    return run


def bench_step(device: str, batch: int, size: int, repeats: int, amp: bool = False) -> Dict:
    """Training step (fwd, bwd, SGD) of the plain PSPNet-R18 config and of its ``_perc`` config.

    (A): the ``_perc`` step with the teacher's logits given (the cost of the loss itself);
    (B): the whole distillation step, the PSPNet-R101 teacher's forward included (random
    weights, saved to a temporary checkpoint and loaded the way training loads it); without
    ``amp`` also with the teacher in bf16 autocast of its own (:data:`BF16_TEACHER`).
    """
    import tempfile

    from mmengine.config import Config
    from mmengine.structures import PixelData
    from mmseg.registry import MODELS
    from mmseg.structures import SegDataSample
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    student = _build(Config.fromfile(os.path.join(root, PLAIN_CONFIG)), device)
    cfg = Config.fromfile(os.path.join(root, PERC_CONFIG))
    from mmperc.models.segmentors import resolve_config_path
    teacher_cfg = Config.fromfile(resolve_config_path(cfg.model.teacher.config))
    with tempfile.TemporaryDirectory() as tmp:
        ckpt = os.path.join(tmp, 'teacher.pth')
        torch.save({'state_dict': _build(teacher_cfg, 'cpu').state_dict()}, ckpt)
        cfg.model.teacher.checkpoint = ckpt
        distill = _build(cfg, device)
        assert distill.teacher is not None  # built and loaded now, as in training
    distill.load_state_dict(student.state_dict())
    num_classes = student.decode_head.num_classes
    g = torch.Generator().manual_seed(0)
    inputs = torch.randn(batch, 3, size, size, generator=g).to(device)
    samples = []
    for _ in range(batch):
        label = torch.randint(0, num_classes, (1, size, size), generator=g).to(device)
        sample = SegDataSample(gt_sem_seg=PixelData(data=label))
        sample.set_metainfo(dict(img_shape=(size, size), pad_shape=(size, size)))
        samples.append(sample)
    with torch.autocast(device, dtype=torch.bfloat16, enabled=amp):
        teacher_logits = distill.teacher_logits(inputs)

    def given(target_logits: Optional[torch.Tensor]) -> Callable[[nn.Module], dict]:
        """The losses of the step without the teacher's forward: the term against
        ``target_logits``, or (None) against the ground truth, as a config without a teacher."""
        def losses_of(model) -> dict:
            x = model.extract_feat(inputs)
            losses = model._distill_decode_head_forward_train(x, samples, target_logits)
            losses.update(model._auxiliary_head_forward_train(x, samples))
            return losses
        return losses_of

    def step(model, losses_of, loss_perc=None, layout=None) -> Callable[[], None]:
        optim = torch.optim.SGD(model.parameters(), lr=1e-3)

        def run() -> None:
            if loss_perc is not None:
                model.loss_perc = loss_perc
            optim.zero_grad()
            with weights_layout(device, layout):
                with torch.autocast(device, dtype=torch.bfloat16, enabled=amp):
                    losses = losses_of(model)
                sum(v for k, v in losses.items() if 'loss' in k).backward()
            optim.step()
        return run

    default_loss = distill.loss_perc
    runs = {'plain': step(student, lambda m: m.loss(inputs, samples))}
    variants = [(name, options, None) for name, options in LOSS_VARIANTS]
    if device == 'cuda':
        # the default with the other weight layout (evidence for random_vgg.LAYOUTS), and without
        # the finiteness checks, whose result the host waits for (a CUDA sync per checked input)
        other = _other_layout(device)
        variants += [('config default, ' + _LAYOUT_NAMES[other], {}, other),
                     ('config default, check_finite=False', dict(check_finite=False), None)]
    for name, options, layout in variants:
        with weights_layout(device, layout):
            variant = MODELS.build(dict(cfg.model.loss_perc, **options)).to(device) if options or layout \
                else default_loss
        runs[name] = step(distill, given(teacher_logits), variant, layout)
    runs[LABELS_ROW] = step(distill, given(None), default_loss)
    runs['whole'] = step(distill, lambda m: m.loss(inputs, samples), default_loss)
    teachers = {'teacher': lambda: distill.teacher_logits(inputs)}
    if not amp:  # the teacher in bf16 autocast of its own (under AMP it already is)
        runs[BF16_TEACHER] = step(distill, bf16_teacher(lambda m: m.loss(inputs, samples)), default_loss)
        teachers[BF16_TEACHER] = partial(bf16_teacher(lambda m: m.teacher_logits(inputs)), distill)
    times = interleaved_ms(runs, device, repeats)
    with torch.no_grad(), torch.autocast(device, dtype=torch.bfloat16, enabled=amp):
        teacher_ms = {k: statistics.median(v) for k, v in interleaved_ms(teachers, device, repeats).items()}
    result = dict(plain_ms=statistics.median(times['plain']), teacher_ms=teacher_ms['teacher'],
                  whole_ms=statistics.median(times['whole']),
                  whole_ratio=median_ratio(times, 'whole', 'plain'), variants={})
    if BF16_TEACHER in times:
        result['bf16_teacher'] = (statistics.median(times[BF16_TEACHER]), teacher_ms[BF16_TEACHER],
                                  median_ratio(times, BF16_TEACHER, 'plain'))
    for name in [name for name, _, _ in variants] + [LABELS_ROW]:
        ratios = round_ratios(times[name], times['plain'])
        result['variants'][name] = (statistics.median(times[name]), statistics.median(ratios), min(ratios), max(ratios))
    distill.loss_perc = default_loss
    return result


def interleaved_ms(fns: Dict[str, Callable[[], object]], device: str, repeats: int) -> Dict[str, List[float]]:
    """Milliseconds of each of ``fns`` in each of ``repeats`` rounds, after one warm-up round.

    Every round calls all of them in turn, so a change in the shared machine's speed (10-30%
    between minutes here) hits each about alike; ratios are taken round by round
    (:func:`round_ratios`)."""
    times: Dict[str, List[float]] = {name: [] for name in fns}
    for round_ in range(repeats + 1):
        for name, fn in fns.items():
            if device == 'cuda':
                torch.cuda.synchronize()
            start = time.perf_counter()
            fn()
            if device == 'cuda':
                torch.cuda.synchronize()
            if round_:
                times[name].append((time.perf_counter() - start) * 1e3)
    return times


def round_ratios(numerator: List[float], denominator: List[float]) -> List[float]:
    """The ratio of two rows of :func:`interleaved_ms`, round by round."""
    return [a / b for a, b in zip(numerator, denominator)]


def cpu_peaks_in_child(args: argparse.Namespace) -> List[List[float]]:
    """CPU peak memory of every loss setting, measured in a child process with glibc's mmap
    threshold fixed.

    By default glibc raises the threshold (up to 32 MiB) after large frees and serves later
    allocations from its heap, whose freed pages stay resident: RSS growth then misses memory
    that an earlier call left behind. With a fixed threshold every large tensor is mmap'ed and
    returned when freed, so the peak RSS growth of one call is the memory it needed. Timing
    stays in this process with the default allocator (mmap'ing every tensor slows both sides).
    """
    return child_json(args, '--peaks-only', dict(MALLOC_MMAP_THRESHOLD_='65536'))


#: glibc keeping freed memory in the process (heap grown and trimmed 1 GiB at a time), as CUDA's
#: caching allocator does (and jemalloc with purging off; by default it purges, measured slower
#: here): large tensors then reuse resident pages instead of paying a page fault per 4 KiB each
#: call, which with glibc's default costs the reference more than mmperc (the reference
#: allocates every layer's output and gradient whole)
KEPT_MEMORY_ENV = dict(MALLOC_TOP_PAD_=str(2**30))


def child_json(args: argparse.Namespace, flag: str, env: Dict[str, str]) -> List:
    """The JSON a child run of this script with the hidden ``flag`` prints last, same settings."""
    import json
    cmd = [sys.executable, os.path.abspath(__file__), flag, '--batch', str(args.batch), '--size', str(args.size),
           '--repeats', str(args.repeats), '--classes', *map(str, args.classes), '--targets', args.targets] \
        + (['--full'] if args.full else [])
    out = subprocess.run(cmd, env=dict(os.environ, **env), capture_output=True, text=True, check=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def kept_memory_speedups(settings, batch: int, repeats: int, labels: bool = False) -> List[float]:
    """Speedup over the reference (same NCHW maps, interleaved rounds) per setting; run in a child
    with :data:`KEPT_MEMORY_ENV`."""
    speedups = []
    for num_convs, classes, size in settings:
        pred, target, loss, ref = _loss_setting(num_convs, classes, size, batch, 'cpu', labels)
        times, values = timed_fwd_bwd(dict(ref=lambda: reference_loss(ref, pred, target),
                                           ours=lambda: loss(pred, target)), 'cpu', repeats)
        assert _same(values['ours'], values['ref']), f'different loss values: {values}'
        speedups.append(median_ratio(times, 'ref', 'ours'))
    return speedups


def loss_peaks(settings, batch: int, labels: bool = False) -> List[List[float]]:
    """``[reference MiB, mmperc MiB, reference first MiB, mmperc first MiB]`` per setting (CPU):
    one fwd+bwd after a first, and the first (with what mmperc keeps from it: its Winograd
    weight transforms; both networks' weights exist before, ``pred.grad`` too)."""
    peaks = []
    for num_convs, classes, size in settings:
        pred, target, loss, ref = _loss_setting(num_convs, classes, size, batch, 'cpu', labels)
        pred.grad = torch.zeros_like(pred)
        steady, first = [], []
        for fn in (lambda: reference_loss(ref, pred, target), lambda: loss(pred, target)):
            first.append(_cpu_peak_mib(fn))
            steady.append(_cpu_peak_mib(fn))
        peaks.append(steady + first)
    return peaks


def add_device_argument(parser: argparse.ArgumentParser) -> None:
    """``--device cpu|cuda`` (the scripts sync and autocast by that name: no device index)."""
    parser.add_argument('--device', default='cuda' if torch.cuda.is_available() else 'cpu', choices=['cpu', 'cuda'],
                        help='cuda: the current GPU (pick one with CUDA_VISIBLE_DEVICES)')


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_device_argument(parser)
    parser.add_argument('--batch', type=int, default=2)
    parser.add_argument('--repeats', type=int, default=3)
    parser.add_argument('--full', action='store_true', help='19/150 classes x 512/769 (slow on CPU)')
    parser.add_argument('--size', type=int, default=256, help='input size of the quick loss settings')
    parser.add_argument('--classes', type=int, nargs='+', default=[19, 150], help='class counts of the loss settings')
    parser.add_argument('--targets', choices=['logits', 'labels'], default='logits',
                        help="the loss's target: a teacher's logits, or ground-truth labels (one-hot)")
    parser.add_argument('--step-size', type=int, default=256, help='input size of the training-step benchmark')
    parser.add_argument('--step-repeats', type=int, default=5, help='rounds of the training-step benchmark')
    parser.add_argument('--no-step', action='store_true', help='the loss table only, without the training step')
    parser.add_argument('--peaks-only', action='store_true', help=argparse.SUPPRESS)  # the CPU memory child
    parser.add_argument('--step-only', action='store_true',  # also the parent's training-step child
                        help='the training-step benchmark alone, in this process')
    parser.add_argument('--kept-only', action='store_true', help=argparse.SUPPRESS)  # the kept-memory child
    args = parser.parse_args()
    if torch.device(args.device).type == 'cuda':
        torch.backends.cudnn.benchmark = True  # as mmseg's configs train (env_cfg.cudnn_benchmark)
    if args.step_only:
        print_step(args)
        return
    structures = [(2, 2, 3, 3, 3), (1, 1, 1, 1, 1)]
    if args.full:
        settings = [(s, c, size) for s in structures for c in args.classes for size in (512, 769)]
    else:
        settings = [(s, c, args.size) for s in structures for c in args.classes]
    labels = args.targets == 'labels'
    if args.peaks_only:
        import json
        print(json.dumps(loss_peaks(settings, args.batch, labels)))
        return
    if args.kept_only:
        import json
        print(json.dumps(kept_memory_speedups(settings, args.batch, args.repeats, labels)))
        return
    print(f'device={args.device} batch={args.batch} torch={torch.__version__} threads={torch.get_num_threads()}')
    print('\n1. Loss forward+backward: mmperc vs reference (same weights, float32), target: '
          + ('ground-truth labels (the reference: F.one_hot)' if labels else "a teacher's logits (softmax)"))
    print(f'{"structure":<18}{"C":>4}{"size":>6}{"ref ms":>9}{"ours ms":>9}{"speedup":>9}{"from 1/8":>9}'
          f'{"CL ref":>9}{"kept":>7}{"ref MiB":>9}{"ours MiB":>9}{"memory":>8}{"first":>7}{"saved":>7}  same value')
    # on CUDA each row is printed as it is measured (a time limit keeps those done); on the CPU
    # the rows wait for the memory and kept-memory columns of the child processes
    rows = bench_loss(settings, args.device, args.batch, args.repeats, labels,
                      on_row=print_row if args.device != 'cpu' else None)
    if args.device == 'cpu':
        for r, (ref_mib, our_mib, ref_first, our_first) in zip(rows, cpu_peaks_in_child(args)):
            r.update(ref_mib=ref_mib, our_mib=our_mib, memory=our_mib / ref_mib, first=our_first / ref_first)
        for r, kept in zip(rows, child_json(args, '--kept-only', KEPT_MEMORY_ENV)):
            r.update(kept=kept)
        for r in rows:
            print_row(r)
    print(f'   targets: speedup >= {TARGET_SPEEDUP}x, memory (peak growth) <= {TARGET_MEMORY}x, same value '
          'within 1e-5 (both columns; on CUDA checked with TF32 off, timed with it on, as training runs); '
          'saved = activation memory kept for backward, ours / reference; '
          'speedup: both sides given the same NCHW maps at label size; from 1/8: both from 1/8-size head '
          'logits (label targets as they come), resized as each side uses them (mmperc as '
          'PerceptualDistillSegmentor does, in the layout loss.memory_format asks for; the reference NCHW, '
          "PyTorch's default); CL ref: from 1/8 against the reference in channels-last (weights and maps, "
          'its logits transposed as mmperc\'s are), faster than NCHW for it with few classes'
          + ('; kept: speedup (same NCHW maps) in a child process whose allocator keeps freed memory '
             f'({" ".join(f"{k}={v}" for k, v in KEPT_MEMORY_ENV.items())}, as CUDA\'s caching allocator '
             "does): glibc's default returns large freed tensors to the OS, and "
             'the page faults of their next use cost the reference more than mmperc; '
             'CPU peaks from a child process with MALLOC_MMAP_THRESHOLD_=65536, after a first call; first: '
             "the first call's peak (mmperc's Winograd weight transforms are made and kept then), ours / reference"
             if args.device == 'cpu' else ''))
    if args.no_step:
        return
    # the step in a fresh process: not shaped by the allocator state the loss grid leaves behind
    # (multi-GiB tensors at 769 pixels), as a training process would not be
    cmd = [sys.executable, os.path.abspath(__file__), '--step-only', '--device', args.device, '--batch',
           str(args.batch), '--step-size', str(args.step_size), '--step-repeats', str(args.step_repeats)]
    sys.stdout.flush()
    subprocess.run(cmd, check=True)


def print_step(args: argparse.Namespace) -> None:
    """Section 2: the training-step overhead of the perceptual term."""
    for amp in ([False, True] if args.device == 'cuda' else [False]):
        step = bench_step(args.device, args.batch, args.step_size, args.step_repeats, amp=amp)
        print(f'\n2. Training step, {PERC_CONFIG} vs {PLAIN_CONFIG}, {args.step_size}x{args.step_size}, '
              f'batch {args.batch}, {"bf16 autocast" if amp else "float32"}')
        plain = step['plain_ms']
        target = TARGET_GPU_AMP_OVERHEAD if amp else TARGET_STEP_OVERHEAD
        print(f'   plain step {plain:.1f} ms (medians of {args.step_repeats} rounds in a fresh process; every round '
              'runs all rows in turn, ratios are per round)')
        for name, (ms, ratio, low, high) in step['variants'].items():
            print(f'   + perceptual term, {name:<40} {ms:9.1f} ms: ratio (A) {ratio:.2f}x '
                  f'(rounds {low:.2f}-{high:.2f}x; target <= {target}x)')
        print(f'   whole distillation step {step["whole_ms"]:.1f} ms (teacher forward {step["teacher_ms"]:.1f} ms): '
              f'ratio (B) {step["whole_ratio"]:.2f}x (no fixed target)', flush=True)
        if 'bf16_teacher' in step:
            ms, teacher, ratio = step['bf16_teacher']
            print(f'   whole distillation step, {BF16_TEACHER} (model.teacher.autocast=bfloat16) {ms:.1f} ms '
                  f'(teacher forward {teacher:.1f} ms): ratio (B) {ratio:.2f}x', flush=True)


if __name__ == '__main__':
    main()
