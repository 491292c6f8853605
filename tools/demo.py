"""The README's first command: what the random perceptual loss does, on a CPU, in minutes.

Generates structured scenes in Cityscapes format (no download), trains a PSPNet-R34 teacher
(once; reused if its checkpoint exists), then three PSPNet-R18 students with the same seed and
budget: cross-entropy only, CE + perceptual loss against one-hot ground truth, and CE +
perceptual loss against the teacher (the paper's Eq. 2). Writes ``results.md`` (mIoU and
boundary F-score), ``predictions.png`` and ``curves.png`` under the work dir.
"""
import argparse
import os
import os.path as osp
import subprocess
import sys
import time
from pathlib import Path
from typing import Dict, List, Optional

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = ROOT / 'configs' / 'demo'
RUNS = [
    # (name, config, what it is)
    ('teacher', 'pspnet_r34-d8_1xb8-300it_scenes-64x64.py', 'PSPNet-R34 teacher, CE'),
    ('ce', 'pspnet_r18-d8_1xb8-200it_scenes-64x64.py', 'PSPNet-R18, CE only'),
    ('perc_gt', 'pspnet_r18-d8_perc-gt_1xb8-200it_scenes-64x64.py', 'PSPNet-R18, CE + perceptual (ground truth)'),
    ('perc_teacher', 'pspnet_r18-d8_perc-r34_1xb8-200it_scenes-64x64.py',
     'PSPNet-R18, CE + perceptual (teacher, Eq. 2)'),
]


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--work-dir', default='work_dirs/demo', help='where runs, table and figures go')
    parser.add_argument('--data-root', default='data/demo', help='where the generated dataset goes')
    parser.add_argument('--num-train', type=int, default=240, help='generated training images')
    parser.add_argument('--num-val', type=int, default=24, help='generated validation images')
    parser.add_argument('--seed', type=int, default=0, help='seed of the data and of every run')
    parser.add_argument('--max-iters', type=int, default=None,
                        help='override every run\'s iterations (e.g. 2 for a smoke test)')
    parser.add_argument('--retrain-teacher', action='store_true', help='ignore a cached teacher checkpoint')
    return parser.parse_args()


def run_overrides(name: str, args: argparse.Namespace, data_root: str, work_dir: str) -> List[str]:
    """``--cfg-options`` of one run: data root, seed, iterations, teacher checkpoint."""
    options = [f'{loader}.dataset.data_root={data_root}' for loader in
               ('train_dataloader', 'val_dataloader', 'test_dataloader')]
    options.append(f'randomness.seed={args.seed}')
    if args.max_iters is not None:
        n = args.max_iters
        options += [f'train_cfg.max_iters={n}', f'train_cfg.val_interval={n}', f'param_scheduler.0.end={n}',
                    f'default_hooks.checkpoint.interval={n}', 'default_hooks.logger.interval=1']
    if name == 'perc_teacher':
        options.append(f'model.teacher.checkpoint={last_checkpoint(osp.join(work_dir, "teacher"))}')
    return options


def last_checkpoint(run_dir: str) -> Optional[str]:
    """The newest ``iter_*.pth`` of a run, or None."""
    ckpts = sorted(Path(run_dir).glob('iter_*.pth'), key=lambda p: int(p.stem.split('_')[1]))
    return str(ckpts[-1]) if ckpts else None


def train(name: str, config: str, args: argparse.Namespace, data_root: str) -> float:
    """Train one run through tools/train.py (its log streams to the console); return seconds."""
    run_dir = osp.join(args.work_dir, name)
    cmd = [sys.executable, str(ROOT / 'tools' / 'train.py'), str(CONFIGS / config), '--work-dir', run_dir,
           '--cfg-options', *run_overrides(name, args, data_root, args.work_dir)]
    print(f'\n[demo] training {name}: {" ".join(cmd[1:3])}', flush=True)
    start = time.time()
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get('PYTHONPATH', ''))
    subprocess.run(cmd, check=True, env=env)
    return time.time() - start


def final_metrics(run_dir: str) -> Dict[str, float]:
    """mIoU and boundary F-score of the last validation."""
    from mmperc.utils import read_scalars
    vals = [s for s in read_scalars(run_dir, latest_only=True) if 'mIoU' in s]
    return {'mIoU': vals[-1]['mIoU'], 'bF': vals[-1]['bF']} if vals else {}


def write_results(args: argparse.Namespace, seconds: Dict[str, float]) -> str:
    """Print and save the results table."""
    lines = [
        '| run | what | mIoU | boundary F (2 px) | train time (s) |',
        '|---|---|---|---|---|',
    ]
    for name, config, what in RUNS:
        metrics = final_metrics(osp.join(args.work_dir, name))
        took = f'{seconds[name]:.0f}' if name in seconds else 'cached'
        lines.append(f'| {name} | {what} | {metrics.get("mIoU", float("nan")):.2f} | '
                     f'{metrics.get("bF", float("nan")):.2f} | {took} |')
    cmd = 'python tools/demo.py ' + ' '.join(sys.argv[1:])
    text = ('# mmperc demo\n\nGenerated Cityscapes-format scenes, '
            f'{args.num_train} train / {args.num_val} val images, seed {args.seed}. '
            f'Command: `{cmd.strip()}`.\nOne run per model with one seed: a single comparison, not a '
            'significance test.\n\n' + '\n'.join(lines) + '\n')
    path = osp.join(args.work_dir, 'results.md')
    with open(path, 'w') as f:
        f.write(text)
    print('\n' + text)
    return path


def main() -> None:
    args = parse_args()
    os.makedirs(args.work_dir, exist_ok=True)
    from mmperc.testing import make_cityscapes
    print('[demo] generating scenes (cached after the first run)', flush=True)
    data_root = make_cityscapes(args.data_root, num_train=args.num_train, num_val=args.num_val,
                                size=(128, 256), seed=args.seed, progress=True)
    seconds = {}
    for name, config, _ in RUNS:
        run_dir = osp.join(args.work_dir, name)
        if name == 'teacher' and not args.retrain_teacher and args.max_iters is None and last_checkpoint(run_dir):
            print(f'[demo] reusing the teacher {last_checkpoint(run_dir)} (--retrain-teacher to train it again)')
            continue
        seconds[name] = train(name, config, args, data_root)
    write_results(args, seconds)
    from mmperc.utils import read_scalars
    from mmperc.visualization import plot_curves, plot_predictions
    plot_curves({name: read_scalars(osp.join(args.work_dir, name), latest_only=True) for name, _, _ in RUNS},
                osp.join(args.work_dir, 'curves.png'))
    runs = [(name, str(CONFIGS / config), last_checkpoint(osp.join(args.work_dir, name))) for name, config, _ in RUNS]
    plot_predictions(runs, data_root, osp.join(args.work_dir, 'predictions.png'), num_images=3)
    print(f'[demo] wrote {args.work_dir}/results.md, predictions.png and curves.png')


if __name__ == '__main__':
    main()
