"""Test (evaluate) a checkpoint with mmseg's CLI; any mmseg config works. Never builds a teacher."""
import argparse
import os.path as osp

from mmengine.config import Config, DictAction

import mmperc  # noqa: F401  (registers mmperc's modules, safe checkpoint loading)
from mmperc.utils import (build_runner, checkpoint_problem, config_problem, export_local_rank, prepare_cfg,
                          save_predictions_to, shutdown_distributed, work_dir_for)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='Test (and evaluate) a segmentor (mmseg CLI, mmperc-aware)')
    parser.add_argument('config', help='test config file path (a _perc config or its mmseg base)')
    parser.add_argument('checkpoint', help='checkpoint file')
    parser.add_argument('--work-dir', help='the directory to save the file containing evaluation metrics')
    parser.add_argument('--out', type=str, help='the directory to save the predicted segmentation maps')
    parser.add_argument('--show', action='store_true', help='show prediction results')
    parser.add_argument('--show-dir', help='directory where painted images will be saved, every test image '
                        '(a relative DIR is under the work dir, as mmseg\'s help says)')
    parser.add_argument('--wait-time', type=float, default=2, help='the interval of show (s)')
    parser.add_argument(
        '--cfg-options', nargs='+', action=DictAction, help='override settings in the config, key=value')
    parser.add_argument('--launcher', choices=['none', 'pytorch', 'slurm', 'mpi'], default='none', help='job launcher')
    parser.add_argument('--tta', action='store_true', help='test time augmentation')
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)
    args = parser.parse_args()
    problem = config_problem(args.config) or checkpoint_problem(args.checkpoint)
    if problem:
        parser.error(problem)
    export_local_rank(args.local_rank)
    return args


def enable_visualization(cfg: Config, args: argparse.Namespace) -> None:
    """Turn on mmseg's ``SegVisualizationHook`` for ``--show``/``--show-dir``."""
    hooks = cfg.default_hooks
    if 'visualization' not in hooks:
        raise RuntimeError('--show/--show-dir need default_hooks.visualization=dict(type="SegVisualizationHook")')
    hooks.visualization.draw = True
    hooks.visualization.interval = 1  # paint every test image, not every 50th
    if args.show:
        hooks.visualization.show = True
        hooks.visualization.wait_time = args.wait_time
    if args.show_dir:
        cfg.visualizer.save_dir = osp.join(cfg.work_dir, args.show_dir) if not osp.isabs(args.show_dir) \
            else args.show_dir


def main() -> None:
    args = parse_args()
    cfg = Config.fromfile(args.config)
    if args.cfg_options is not None:
        cfg.merge_from_dict(args.cfg_options)
    cfg.work_dir = work_dir_for(cfg, args.config, args.work_dir)
    cfg.load_from = args.checkpoint
    if args.show or args.show_dir:
        enable_visualization(cfg, args)
    if args.tta:
        cfg.test_dataloader.dataset.pipeline = cfg.tta_pipeline
        cfg.tta_model.module = cfg.model
        cfg.model = cfg.tta_model
    if args.out is not None:
        save_predictions_to(cfg, args.out)
    prepare_cfg(cfg, args.launcher)
    runner = build_runner(cfg)
    runner.test()
    shutdown_distributed()


if __name__ == '__main__':
    main()
