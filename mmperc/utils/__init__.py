"""Utilities: safe checkpoint loading, SyncBN handling, run-time set-up."""
from .checkpoint import UnreadableCheckpointError, UnsafeCheckpointError, register_safe_globals, safe_torch_load
from .consistency import check_same_on_all_ranks, tensors_digest
from .logs import read_scalars
from .run_files import iter_checkpoints, last_checkpoint
from .runtime import (add_safe_checkpoint_hook, build_runner, default_dist_backend, export_local_rank, prepare_cfg,
                      setup_distributed, shutdown_distributed, work_dir_for)
from .sync_bn import revert_sync_bn_without_cuda, sync_bn_to_bn
from .tool_cfg import checkpoint_problem, config_problem, resolve_teacher_config, save_predictions_to

__all__ = [
    'check_same_on_all_ranks', 'tensors_digest', 'read_scalars', 'iter_checkpoints', 'last_checkpoint',
    'UnreadableCheckpointError', 'UnsafeCheckpointError', 'register_safe_globals', 'safe_torch_load',
    'add_safe_checkpoint_hook',
    'build_runner', 'default_dist_backend', 'export_local_rank', 'prepare_cfg', 'setup_distributed',
    'shutdown_distributed', 'work_dir_for',
    'revert_sync_bn_without_cuda', 'sync_bn_to_bn', 'checkpoint_problem', 'config_problem', 'resolve_teacher_config',
    'save_predictions_to'
]
