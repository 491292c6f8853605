"""Data, teacher weights and overrides for benchmarks/gpu_check.sh; then its summary table."""
import argparse
import os
import os.path as osp
import statistics
import sys

import torch

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))
RUNS = ('pspnet_r18-d8_4xb2-40k_cityscapes-769x769', 'pspnet_r18-d8_perc-r101_4xb2-40k_cityscapes-769x769')
#: the pairs gpu_check.sh ran, by its GPU_CHECK_AMP: the runs' name suffixes
PAIRS = {'both': ('', '_amp'), 'only': ('_amp', ), 'none': ('', )}
TEACHER = 'mmseg::pspnet/pspnet_r101-d8_4xb2-40k_cityscapes-769x769.py'


def prepare(out: str, iters: int, workers: int) -> None:
    """Real-size Cityscapes-format data, a random-weight R101 teacher, the run overrides."""
    from mmengine.config import Config
    from mmengine.registry import DefaultScope
    from mmseg.registry import MODELS

    from mmperc.models.segmentors import resolve_config_path
    from mmperc.testing import make_cityscapes
    data_root = make_cityscapes(out, num_train=16, num_val=1, size=(1024, 2048), seed=0, progress=True)
    teacher_path = osp.join(out, 'teacher_r101.pth')
    if not osp.exists(teacher_path):
        cfg = Config.fromfile(resolve_config_path(TEACHER))
        cfg.model.pretrained = None
        with DefaultScope.overwrite_default_scope('mmseg'):
            teacher = MODELS.build(cfg.model)
        torch.save({'state_dict': teacher.state_dict(), 'meta': {}}, teacher_path)  # random weights: timing only
    options = [
        f'train_dataloader.dataset.data_root={data_root}', f'val_dataloader.dataset.data_root={data_root}',
        f'test_dataloader.dataset.data_root={data_root}', 'train_dataloader.batch_size=8',
        # the last run was data-bound with mmseg's 2 workers (0.20 of 0.36 s/iter loading 1024x2048
        # PNGs): enough workers to feed one GPU, so the ratios measure the model, not the loader
        f'train_dataloader.num_workers={workers}', 'train_dataloader.persistent_workers=True',
        f'train_cfg.max_iters={iters}', f'train_cfg.val_interval={iters * 10}',
        f'default_hooks.checkpoint.interval={iters * 10}', 'default_hooks.logger.interval=5',
        'model.pretrained=None', 'randomness.seed=0'
    ]
    with open(osp.join(out, 'options.txt'), 'w') as f:
        f.write(' '.join(options))


def run_stats(out: str, name: str) -> dict:
    """Median ms/iter (after the first logged interval) and max memory (MB) from a run's log."""
    from mmperc.utils import read_scalars
    train = [e for e in read_scalars(osp.join(out, name), latest_only=True) if 'time' in e and 'loss' in e][1:]
    return dict(ms=statistics.median(e['time'] for e in train) * 1e3 if train else float('nan'),
                data_ms=statistics.median(e.get('data_time', 0) for e in train) * 1e3 if train else float('nan'),
                memory=max((e.get('memory', 0) for e in train), default=float('nan')))


def summarize(out: str, pairs: str = 'both') -> None:
    """The table of the pairs this run of gpu_check.sh trained (``pairs``: its GPU_CHECK_AMP; an
    output folder kept from an earlier run may hold others)."""
    print(f'\n{"run":<60}{"ms/iter":>10}{"data ms":>9}{"memory MB":>11}{"ratio":>8}')
    for amp in PAIRS[pairs]:
        base = run_stats(out, RUNS[0] + amp)
        for name in RUNS:
            stats = run_stats(out, name + amp)
            print(f'{name + amp:<60}{stats["ms"]:>10.1f}{stats["data_ms"]:>9.1f}{stats["memory"]:>11.0f}'
                  f'{stats["ms"] / base["ms"]:>7.2f}x')
    print('ratio: whole distillation step (teacher forward + perceptual term) over the plain student step; '
          'data ms: time waiting for the loader (near 0 = not data-bound)')
    print(f'device: {torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu"}, '
          f'torch {torch.__version__}')


if __name__ == '__main__':
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--out', required=True)
    parser.add_argument('--iters', type=int, default=40)
    parser.add_argument('--workers', type=int, default=min(12, os.cpu_count() or 2), help='dataloader workers')
    parser.add_argument('--summarize', action='store_true')
    parser.add_argument('--pairs', choices=sorted(PAIRS), default='both',
                        help='with --summarize: the pairs trained (gpu_check.sh\'s GPU_CHECK_AMP)')
    args = parser.parse_args()
    summarize(args.out, args.pairs) if args.summarize else prepare(args.out, args.iters, args.workers)
