"""Small-scale evidence for the paper's claims, on the demo's generated scenes (CPU).

Two studies, each a set of short training runs of the demo's PSPNet-R18 student through
tools/train.py, reporting the final validation mIoU and boundary F-score:

- ``--study seeds``: CE only vs CE + perceptual loss (teacher, Eq. 2) over N seeds, mean ± std
  and Welch's t-test: is the difference significant at this scale?
- ``--study init``: the paper's Table 4 at small scale: the loss network initialised by
  ``paper``, ``xavier``, N(0, 1), N(0, 0.1), N(0, 0.01), U[-1, 1], U[-0.1, 0.1], U[-0.01, 0.01],
  over N seeds; a run whose loss becomes non-finite counts as diverged.
- ``--study structure``: the paper's Tables 2-3 at small scale: (1,1,1,1,1) vs VGG16 vs VGG19,
  kernel sizes 1/3/5/7, and VGG16 and (1,1,1,1,1) at half resolution (``resize=0.5``, the
  cheaper option of the performance benchmark), over N seeds, with the CE-only student beside them.

Needs the demo's data and teacher (``make demo`` or ``python tools/demo.py`` first).

    python benchmarks/evidence.py --study seeds --seeds 5
    python benchmarks/evidence.py --study init --seeds 3 --max-iters 100
    python benchmarks/evidence.py --study structure --seeds 2 --max-iters 100
"""
import argparse
import json
import os
import os.path as osp
import statistics
import subprocess
import sys
from pathlib import Path
from typing import Dict, List, Optional, Tuple

ROOT = Path(__file__).resolve().parents[1]
DEMO = ROOT / 'configs' / 'demo'
CE = DEMO / 'pspnet_r18-d8_1xb8-200it_scenes-64x64.py'
PERC = DEMO / 'pspnet_r18-d8_perc-r34_1xb8-200it_scenes-64x64.py'
INIT = 'model.loss_perc.init'
INITS = {
    'paper': [f'{INIT}=paper'],
    'xavier': [f'{INIT}=xavier'],
    'N(0,1)': [f'{INIT}.type=normal', f'{INIT}.std=1.0'],
    'N(0,0.1)': [f'{INIT}.type=normal', f'{INIT}.std=0.1'],
    'N(0,0.01)': [f'{INIT}.type=normal', f'{INIT}.std=0.01'],
    'U[-1,1]': [f'{INIT}.type=uniform', f'{INIT}.a=1.0'],
    'U[-0.1,0.1]': [f'{INIT}.type=uniform', f'{INIT}.a=0.1'],
    'U[-0.01,0.01]': [f'{INIT}.type=uniform', f'{INIT}.a=0.01'],
}

PERC_LOSS = 'model.loss_perc'
#: Structure variants (paper Tables 2-3); the demo's student uses the first one.
STRUCTURES = {
    '(1,1,1,1,1), k=3': [],
    'VGG16 (2,2,3,3,3), k=3': [f'{PERC_LOSS}.num_convs=[2,2,3,3,3]'],
    'VGG19 (2,2,4,4,4), k=3': [f'{PERC_LOSS}.num_convs=[2,2,4,4,4]'],
    '(1,1,1,1,1), k=1': [f'{PERC_LOSS}.kernel_size=1'],
    '(1,1,1,1,1), k=5': [f'{PERC_LOSS}.kernel_size=5'],
    '(1,1,1,1,1), k=7': [f'{PERC_LOSS}.kernel_size=7'],
    'VGG16, resize=0.5': [f'{PERC_LOSS}.num_convs=[2,2,3,3,3]', f'{PERC_LOSS}.resize=0.5'],
    '(1,1,1,1,1), k=3, resize=0.5': [f'{PERC_LOSS}.resize=0.5'],
}


def slug(name: str) -> str:
    """A folder name for a variant."""
    return ''.join(c if c.isalnum() or c in '.-' else '_' for c in name).strip('_')


def diverged(stderr: str) -> bool:
    """Whether a failed run's stderr says that training diverged: the loss's error for a
    non-finite prediction (a broken teacher's NaN logits, a non-finite target, or any other
    failure is an error of the run, not a divergence)."""
    from mmperc.models.losses.random_perceptual_loss import NON_FINITE_MESSAGE
    return NON_FINITE_MESSAGE.format('prediction') in stderr


def train(config: Path, work_dir: str, seed: int, options: List[str], args: argparse.Namespace) -> Optional[Dict]:
    """One run; its final validation metrics, or None if it diverged (non-finite loss)."""
    if osp.exists(osp.join(work_dir, 'metrics.json')):
        cached = json.load(open(osp.join(work_dir, 'metrics.json')))
        if cached.get('max_iters', args.max_iters) != args.max_iters:
            raise RuntimeError(f'{work_dir} holds a run of {cached["max_iters"]} iterations, not '
                               f'--max-iters {args.max_iters}: use another --work-dir')
        return cached
    from mmperc.testing import demo_teacher
    teacher = demo_teacher(args.demo_dir)
    opts = [f'randomness.seed={seed}', f'model.teacher.checkpoint={teacher}' if teacher and config == PERC
            else None] + [f'{loader}.dataset.data_root={args.data_root}' for loader in
                          ('train_dataloader', 'val_dataloader', 'test_dataloader')] + options
    if args.max_iters:
        n = args.max_iters
        opts += [f'train_cfg.max_iters={n}', f'train_cfg.val_interval={n}', f'param_scheduler.0.end={n}',
                 f'default_hooks.checkpoint.interval={n}']
    cmd = [sys.executable, str(ROOT / 'tools' / 'train.py'), str(config), '--work-dir', work_dir,
           '--cfg-options', *[o for o in opts if o]]
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    result = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if result.returncode != 0:
        if diverged(result.stderr):
            metrics = {'diverged': True}
        else:
            raise RuntimeError(f'run failed: {" ".join(cmd)}\n{result.stderr[-3000:]}')
    else:
        from mmperc.utils import read_scalars
        vals = [s for s in read_scalars(work_dir, latest_only=True) if 'mIoU' in s]
        metrics = {'diverged': False, 'mIoU': vals[-1]['mIoU'], 'bF': vals[-1]['bF']}
        for ckpt in Path(work_dir).glob('*.pth'):
            ckpt.unlink()  # keep the disk small: only the metrics are needed
    metrics['max_iters'] = args.max_iters
    json.dump(metrics, open(osp.join(work_dir, 'metrics.json'), 'w'))
    return metrics


def summary(runs: List[Dict], key: str) -> str:
    values = [r[key] for r in runs if not r['diverged']]
    if not values:
        return 'diverged'
    if len(values) == 1:
        return f'{values[0]:.2f}'
    return f'{statistics.mean(values):.2f} ± {statistics.stdev(values):.2f}'


def study_seeds(args: argparse.Namespace) -> str:
    results = {'CE only': [], 'CE + perc (teacher)': []}
    for seed in range(args.seeds):
        for name, config in (('CE only', CE), ('CE + perc (teacher)', PERC)):
            work_dir = osp.join(args.work_dir, 'seeds', name.split()[0].lower() + ('_perc' * ('perc' in name)),
                                f'seed{seed}')
            results[name].append(train(config, work_dir, seed, [], args))
            print(f'[evidence] {name} seed {seed}: {results[name][-1]}', flush=True)
    lines = ['| run | mIoU (mean ± std) | boundary F (mean ± std) | seeds |', '|---|---|---|---|']
    for name, runs in results.items():
        num_diverged = sum(r['diverged'] for r in runs)
        lines.append(f'| {name} | {summary(runs, "mIoU")} | {summary(runs, "bF")} | {len(runs)}'
                     + (f' ({num_diverged} diverged, left out)' if num_diverged else '') + ' |')
    from scipy.stats import ttest_ind
    for key in ('mIoU', 'bF'):
        a = [r[key] for r in results['CE only'] if not r['diverged']]
        b = [r[key] for r in results['CE + perc (teacher)'] if not r['diverged']]
        if min(len(a), len(b)) < 2:
            lines.append(f"\n{key}: Welch's t-test needs at least 2 finished runs per side, got {len(a)} and {len(b)}")
            continue
        t = ttest_ind(b, a, equal_var=False)
        lines.append(f'\n{key}: difference of means {statistics.mean(b) - statistics.mean(a):+.2f}, '
                     f"Welch's t = {t.statistic:.2f}, p = {t.pvalue:.3f} "
                     f'({"significant" if t.pvalue < 0.05 else "not significant"} at 0.05)')
    return '\n'.join(lines)


#: A run whose final mIoU is below this learnt nothing (the student collapsed to one or two classes).
NO_LEARNING_MIOU = 5.0


def failed(runs: List[Dict]) -> str:
    """``diverged / no learning / runs``: a non-finite loss, or a final mIoU under NO_LEARNING_MIOU."""
    diverged = sum(r['diverged'] for r in runs)
    stuck = sum(not r['diverged'] and r['mIoU'] < NO_LEARNING_MIOU for r in runs)
    return f'{diverged} / {stuck} / {len(runs)}'


def variant_table(args: argparse.Namespace, study: str, column: str,
                  variants: List[Tuple[str, Path, List[str], str]]) -> List[str]:
    """Train every ``(name, config, options, folder)`` variant over ``args.seeds`` seeds; one table row each."""
    lines = [f'| {column} | mIoU (mean ± std) | boundary F (mean ± std) | diverged / no learning / runs |',
             '|---|---|---|---|']
    for name, config, options, folder in variants:
        runs = []
        for seed in range(args.seeds):
            runs.append(train(config, osp.join(args.work_dir, folder, f'seed{seed}'), seed, options, args))
            print(f'[evidence] {study} {name} seed {seed}: {runs[-1]}', flush=True)
        lines.append(f'| {name} | {summary(runs, "mIoU")} | {summary(runs, "bF")} | {failed(runs)} |')
    return lines


def init_folder(name: str) -> str:
    return osp.join('init', name.replace('(', '_').replace(')', '').replace(',', '_').replace('[', '').replace(']', ''))


def study_init(args: argparse.Namespace) -> str:
    lines = variant_table(args, 'init', 'loss-network init',
                          [(name, PERC, options, init_folder(name)) for name, options in INITS.items()])
    lines.append(f'\nno learning: final mIoU below {NO_LEARNING_MIOU} (the loss stayed finite, the student collapsed)')
    return '\n'.join(lines)


def study_structure(args: argparse.Namespace) -> str:
    # the default structure with the paper's init is the init study's 'paper' run: shared
    variants = [('CE only (no perceptual term)', CE, [], 'structure/' + slug('CE only (no perceptual term)'))]
    variants += [(name, PERC, opts, init_folder('paper') if not opts else f'structure/{slug(name)}')
                 for name, opts in STRUCTURES.items()]
    return '\n'.join(variant_table(args, 'structure', 'loss network', variants))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--study', choices=['seeds', 'init', 'structure'], required=True)
    parser.add_argument('--seeds', type=int, default=5)
    parser.add_argument('--max-iters', type=int, default=None, help='shorter runs than the demo\'s 200')
    parser.add_argument('--data-root', default='data/demo/cityscapes')
    parser.add_argument('--demo-dir', default='work_dirs/demo', help='where the demo saved its teacher')
    parser.add_argument('--work-dir', default='work_dirs/evidence')
    args = parser.parse_args()
    table = {'seeds': study_seeds, 'init': study_init, 'structure': study_structure}[args.study](args)
    out = osp.join(args.work_dir, f'{args.study}.md')
    os.makedirs(args.work_dir, exist_ok=True)
    cmd = 'python benchmarks/evidence.py ' + ' '.join(sys.argv[1:])
    with open(out, 'w') as f:
        f.write(f'`{cmd}`\n\n{table}\n')
    print(f'\n{table}\n\nwritten to {out}')


if __name__ == '__main__':
    main()
