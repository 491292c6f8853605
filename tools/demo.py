"""The README's first command: what the random perceptual loss does, on a CPU, in minutes.

Two datasets, nothing downloaded: structured scenes generated in Cityscapes format, and a real
fluorescence-microscopy image of nuclei shipped by the stardist wheel, tiled into mmseg's generic
layout (validation tiles from a held-out column). On each, trains a PSPNet-R34 teacher (once;
reused if its checkpoint exists), then three PSPNet-R18 students with the same seed and budget:
cross-entropy only, CE + perceptual loss against one-hot ground truth, and CE + perceptual loss
against the teacher (the paper's Eq. 2). Writes ``results.md`` (mIoU and boundary F-score),
``predictions.png`` and ``curves.png`` under the work dir.
"""
import argparse
import json
import os
import os.path as osp
import sys
import time
from pathlib import Path
from typing import Dict, List, Tuple

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from mmperc.testing import MARKER_FILE, TEACHER_KEY  # noqa: E402
from mmperc.utils import last_checkpoint  # noqa: E402
from mmperc.utils.run_queue import Job, run_jobs, threads_per_job  # noqa: E402

CONFIGS = ROOT / 'configs' / 'demo'


def dataset_runs(teacher_schedule: str, student_schedule: str, data: str) -> List[Tuple[str, str, str]]:
    """The four runs on one dataset: ``(name, config, what)``; the configs differ only in their
    schedules (``'300it'``) and dataset (``'scenes'``)."""
    student = f'1xb8-{student_schedule}_{data}-64x64.py'
    return [
        ('teacher', f'pspnet_r34-d8_1xb8-{teacher_schedule}_{data}-64x64.py', 'PSPNet-R34 teacher, CE'),
        ('ce', f'pspnet_r18-d8_{student}', 'PSPNet-R18, CE only'),
        ('perc_gt', f'pspnet_r18-d8_perc-gt_{student}', 'PSPNet-R18, CE + perceptual (ground truth)'),
        ('perc_teacher', f'pspnet_r18-d8_perc-r34_{student}', 'PSPNet-R18, CE + perceptual (teacher, Eq. 2)'),
    ]


#: One entry per dataset: (track, sub-folder of the work dir, runs).
#: The scenes' runs stay directly under the work dir (their _perc config names that teacher).
TRACKS = [
    ('scenes', '', dataset_runs('300it', '100it', 'scenes')),
    ('nuclei', 'nuclei', dataset_runs('150it', '100it', 'nuclei')),
]
DESCRIPTIONS = {
    'scenes': 'generated structured scenes, Cityscapes format (19 classes)',
    'nuclei': 'real fluorescence-microscopy nuclei (2018 DSB image from the stardist wheel), '
    '2 classes, validation tiles from a held-out column',
}


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
    parser.add_argument('--jobs', type=int, default=2,
                        help='runs trained at once, sharing the cores (on 2 cores: two 1-thread runs, '
                        '7%% less wall clock than one 2-thread run at a time)')
    return parser.parse_args()


def run_overrides(name: str, args: argparse.Namespace, data_root: str, teacher_ckpt: str) -> List[str]:
    """``--cfg-options`` of one run: data root, seed, iterations, teacher checkpoint."""
    options = [f'{loader}.dataset.data_root={data_root}' for loader in
               ('train_dataloader', 'val_dataloader', 'test_dataloader')]
    options.append(f'randomness.seed={args.seed}')
    if args.max_iters is not None:
        n = args.max_iters
        options += [f'train_cfg.max_iters={n}', f'train_cfg.val_interval={n}', f'param_scheduler.0.end={n}',
                    f'default_hooks.checkpoint.interval={n}', 'default_hooks.logger.interval=1']
    if name == 'perc_teacher':
        options.append(f'model.teacher.checkpoint={teacher_ckpt}')
    return options


def job(track: str, name: str, config: str, args: argparse.Namespace, data_root: str, track_dir: str,
        teacher_ckpt: str, threads: int, after: List[str]) -> Job:
    """One run through tools/train.py (its log streams to the console, prefixed)."""
    options = run_overrides(name, args, data_root, teacher_ckpt)
    cmd = [sys.executable, str(ROOT / 'tools' / 'train.py'), str(CONFIGS / config), '--work-dir',
           run_dir(track_dir, name, args), '--cfg-options', *options]
    env = dict(PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get('PYTHONPATH', ''),
               OMP_NUM_THREADS=str(threads))
    return Job(f'{track}/{name}', cmd, after=after, env=env)


def teacher_key(args: argparse.Namespace, data_root: str, iters: int) -> dict:
    """What a reusable teacher must have been trained on: the same data (the generator's record
    of it, else its folder), seed and schedule length."""
    marker = osp.join(data_root, MARKER_FILE)
    data = _read_json(marker) if osp.isfile(marker) else osp.abspath(data_root)
    return dict(data=data, seed=args.seed, max_iters=iters)


def _read_json(path: str):
    with open(path) as f:
        return json.load(f)


def run_dir(track_dir: str, name: str, args: argparse.Namespace) -> str:
    """The work dir of one run. The teacher's is its cache, and a ``--max-iters`` run's teacher has
    a folder of its own, so that a smoke test never replaces the full schedule's cached teacher."""
    if name == 'teacher' and args.max_iters is not None:
        name = f'teacher_{args.max_iters}it'
    return osp.join(track_dir, name)


def teacher_checkpoint(config: str, args: argparse.Namespace, teacher_dir: str, data_root: str) -> Tuple[str, bool]:
    """The teacher's checkpoint and whether it must be trained (False: cached, reused).

    A cached teacher is reused only if it finished the schedule on the same data with the
    same seed (:data:`TEACHER_KEY`): never a ``--max-iters`` smoke run's, nor one trained on
    other data. Before a teacher is trained, its stale checkpoint is removed and the key of the
    new run written, so an interrupted run leaves nothing that would be reused."""
    from mmengine.config import Config
    iters = args.max_iters or Config.fromfile(str(CONFIGS / config)).train_cfg.max_iters
    ckpt, key_file = osp.join(teacher_dir, f'iter_{iters}.pth'), osp.join(teacher_dir, TEACHER_KEY)
    key = teacher_key(args, data_root, iters)
    if not args.retrain_teacher and osp.isfile(ckpt) and osp.isfile(key_file) and _read_json(key_file) == key:
        return ckpt, False
    os.makedirs(teacher_dir, exist_ok=True)
    if osp.isfile(ckpt):
        os.remove(ckpt)
    with open(key_file, 'w') as f:
        json.dump(key, f, indent=1, sort_keys=True)
    return ckpt, True


def final_metrics(run_dir: str) -> Dict[str, float]:
    """mIoU and boundary F-score of the last validation."""
    from mmperc.utils import read_scalars
    vals = [s for s in read_scalars(run_dir, latest_only=True) if 'mIoU' in s]
    return {'mIoU': vals[-1]['mIoU'], 'bF': vals[-1]['bF']} if vals else {}


def write_results(args: argparse.Namespace, seconds: Dict[Tuple[str, str], float], wall: float) -> str:
    """Print and save the results table, one block of rows per dataset."""
    lines = [
        '| data | run | what | mIoU | boundary F (2 px) | train time (s) |',
        '|---|---|---|---|---|---|',
    ]
    for track, sub, runs in TRACKS:
        for name, _, what in runs:
            metrics = final_metrics(run_dir(osp.join(args.work_dir, sub), name, args))
            took = f'{seconds[track, name]:.0f}' if (track, name) in seconds else 'cached'
            lines.append(f'| {track} | {name} | {what} | {metrics.get("mIoU", float("nan")):.2f} | '
                         f'{metrics.get("bF", float("nan")):.2f} | {took} |')
    cmd = 'python tools/demo.py ' + ' '.join(sys.argv[1:])
    data = '; '.join(f'{track}: {text}' for track, text in DESCRIPTIONS.items())
    text = (f'# mmperc demo\n\nData: {data}. Scenes: {args.num_train} train / {args.num_val} val images. '
            f'Seed {args.seed}. Command: `{cmd.strip()}`; {wall / 60:.1f} min wall clock.\n'
            'One run per model with one seed: a single comparison, not a significance test.\n\n'
            + '\n'.join(lines) + '\n')
    path = osp.join(args.work_dir, 'results.md')
    with open(path, 'w') as f:
        f.write(text)
    print('\n' + text)
    return path


def make_data(track: str, args: argparse.Namespace) -> str:
    """Write (or find, cached) the dataset of a track; return its data root."""
    from mmperc.testing import make_cityscapes, make_nuclei
    if track == 'scenes':
        print('[demo] generating scenes (cached after the first run)', flush=True)
        return make_cityscapes(args.data_root, num_train=args.num_train, num_val=args.num_val,
                               size=(128, 256), seed=args.seed, progress=True)
    print('[demo] tiling the real nuclei image (cached after the first run)', flush=True)
    return make_nuclei(args.data_root, progress=True)


def main() -> None:
    args = parse_args()
    start = time.time()
    os.makedirs(args.work_dir, exist_ok=True)
    roots = {track: make_data(track, args) for track, _, _ in TRACKS}
    threads = threads_per_job(args.jobs)
    jobs = []
    for track, sub, runs in TRACKS:
        track_dir = osp.join(args.work_dir, sub)
        teacher_ckpt, train_teacher = teacher_checkpoint(runs[0][1], args, run_dir(track_dir, 'teacher', args),
                                                         roots[track])
        if not train_teacher:
            print(f'[demo] reusing the teacher {teacher_ckpt} (--retrain-teacher to train it again)')
        for name, config, _ in runs:
            if name == 'teacher' and not train_teacher:
                continue
            after = [f'{track}/teacher'] if name == 'perc_teacher' and train_teacher else []
            jobs.append(job(track, name, config, args, roots[track], track_dir, teacher_ckpt, threads, after))
    # teachers first, then each distilled student as soon as its teacher is ready
    order = {'teacher': 0, 'perc_teacher': 1, 'ce': 2, 'perc_gt': 2}
    jobs.sort(key=lambda j: order[j.name.split('/')[1]])
    print(f'[demo] {len(jobs)} runs, {args.jobs} at a time, {threads} thread(s) each', flush=True)
    seconds = {tuple(name.split('/')): took for name, took in run_jobs(jobs, args.jobs).items()}
    write_results(args, seconds, time.time() - start)
    from mmperc.utils import read_scalars
    from mmperc.visualization import plot_curves, plot_predictions
    plot_curves({track: {name: read_scalars(run_dir(osp.join(args.work_dir, sub), name, args), latest_only=True)
                         for name, _, _ in runs} for track, sub, runs in TRACKS},
                osp.join(args.work_dir, 'curves.png'))
    panels = [(track, roots[track],
               [(name, str(CONFIGS / config), last_checkpoint(run_dir(osp.join(args.work_dir, sub), name, args)))
                for name, config, _ in runs]) for track, sub, runs in TRACKS]
    plot_predictions(panels, osp.join(args.work_dir, 'predictions.png'), num_images=2)
    print(f'[demo] wrote {args.work_dir}/results.md, predictions.png and curves.png')


if __name__ == '__main__':
    main()
