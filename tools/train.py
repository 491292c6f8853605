"""Train a segmentor with mmseg's CLI; any mmseg config works, mmperc's ``_perc`` configs too."""
import argparse
import logging
import os.path as osp

import torch

from mmengine.config import Config, DictAction
from mmengine.logging import print_log

import mmperc  # noqa: F401  (registers mmperc's modules, safe checkpoint loading)
from mmperc.utils import (build_runner, config_problem, export_local_rank, prepare_cfg, shutdown_distributed,
                          work_dir_for)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='Train a segmentor (mmseg CLI, mmperc-aware)')
    parser.add_argument('config', nargs='?', help='train config file path')
    parser.add_argument('--work-dir', help='the dir to save logs and models')
    parser.add_argument(
        '--resume',
        nargs='?',
        const='auto',
        default=None,
        help='resume from CHECKPOINT, or without a value from the latest checkpoint in the work dir '
        '(after CONFIG: tools/train.py CONFIG --resume)')
    parser.add_argument('--amp', action='store_true', default=False, help='enable automatic-mixed-precision training')
    parser.add_argument(
        '--cfg-options',
        nargs='+',
        action=DictAction,
        help='override settings in the config, key=value, e.g. model.teacher.checkpoint=/path/t.pth')
    parser.add_argument('--launcher', choices=['none', 'pytorch', 'slurm', 'mpi'], default='none', help='job launcher')
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)
    args = parser.parse_args()
    if args.config is None:  # e.g. mmseg's order `--resume CONFIG`, where --resume takes no value
        parser.error('the following arguments are required: config' + (
            f' (--resume took {args.resume} as its checkpoint: put --resume after CONFIG)'
            if args.resume not in (None, 'auto') and args.resume.endswith('.py') else ''))
    if args.resume not in (None, 'auto') and not osp.isfile(args.resume):
        parser.error(f'--resume {args.resume}: no such checkpoint (or give --resume no value: the latest '
                     'checkpoint in the work dir)')
    problem = config_problem(args.config)
    if problem:
        parser.error(problem)
    export_local_rank(args.local_rank)
    return args


def enable_amp(cfg: Config) -> None:
    """Switch the optimizer wrapper to ``AmpOptimWrapper`` (as mmseg's ``--amp`` does)."""
    wrapper_type = cfg.optim_wrapper.get('type', 'OptimWrapper')
    if wrapper_type == 'AmpOptimWrapper':
        print_log('AMP training is already enabled in your config.', logger='current', level=logging.WARNING)
        return
    if not torch.cuda.is_available():
        raise ValueError('--amp needs a CUDA GPU (mmengine\'s AmpOptimWrapper); train without --amp on a CPU')
    if wrapper_type != 'OptimWrapper':
        raise ValueError(f'--amp is only supported with OptimWrapper, but got {wrapper_type}')
    cfg.optim_wrapper.type = 'AmpOptimWrapper'
    cfg.optim_wrapper.setdefault('loss_scale', 'dynamic')


def main() -> None:
    args = parse_args()
    cfg = Config.fromfile(args.config)
    if args.cfg_options is not None:
        cfg.merge_from_dict(args.cfg_options)
    cfg.work_dir = work_dir_for(cfg, args.config, args.work_dir)
    if args.amp:
        enable_amp(cfg)
    if args.resume == 'auto':
        cfg.resume = True
        cfg.load_from = None
    elif args.resume is not None:
        cfg.resume = True
        cfg.load_from = args.resume
    prepare_cfg(cfg, args.launcher)
    runner = build_runner(cfg)
    runner.train()
    shutdown_distributed()


if __name__ == '__main__':
    main()
