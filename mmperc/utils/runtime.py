"""Prepare an mmengine config for the machine it runs on (CPU/GPU, single/distributed)."""
import datetime
import os
from typing import Optional

import torch
import torch.distributed as dist
from mmengine.config import Config
from mmengine.logging import print_log
from mmengine.registry import RUNNERS
from mmengine.runner import Runner

from .sync_bn import revert_sync_bn_without_cuda
from .tool_cfg import resolve_teacher_config

SAFE_CHECKPOINT_HOOK = 'SafeCheckpointHook'


def export_local_rank(local_rank: int) -> None:
    """``LOCAL_RANK`` from the tools' ``--local-rank`` when the launcher did not set it (as
    mmseg's tools do: a launcher may pass the argument only)."""
    os.environ.setdefault('LOCAL_RANK', str(local_rank))


def default_dist_backend() -> str:
    """``MMPERC_DIST_BACKEND`` if set, else NCCL with CUDA and gloo without."""
    return os.environ.get('MMPERC_DIST_BACKEND') or ('nccl' if torch.cuda.is_available() else 'gloo')


def add_custom_hook(cfg: Config, hook_type: str) -> None:
    """Append ``dict(type=hook_type)`` (one of mmperc's hooks) to ``custom_hooks`` once."""
    hooks = list(cfg.get('custom_hooks', None) or [])
    if not any(h.get('type') in (hook_type, f'mmperc.{hook_type}') for h in hooks):
        hooks.append(dict(type=hook_type))
    cfg.custom_hooks = hooks


def add_safe_checkpoint_hook(cfg: Config) -> None:
    """Append :class:`~mmperc.engine.SafeCheckpointHook` to ``custom_hooks`` once."""
    add_custom_hook(cfg, SAFE_CHECKPOINT_HOOK)


def setup_distributed(cfg: Config, launcher: str) -> None:
    """Make ``launcher='pytorch'`` work on CPUs as well as GPUs.

    mmengine 0.10's launcher calls ``torch.cuda.set_device`` and its DDP
    wrapper passes ``device_ids``; both fail without CUDA. Without CUDA this
    initialises a gloo process group itself (mmengine then skips its own
    initialisation), wraps the model in DDP without ``device_ids`` and adds
    :class:`~mmperc.engine.SyncBuffersEveryIterHook` (BN, which stands in for SyncBN, keeps
    the same running statistics on every rank). With CUDA it only sets
    the backend (``MMPERC_DIST_BACKEND`` may ask for gloo on GPUs): mmengine's launcher then puts
    each rank on its own GPU (``LOCAL_RANK``), which a process group made here would skip,
    leaving every rank on GPU 0.
    """
    if launcher == 'none':
        return
    backend = default_dist_backend()
    cfg.merge_from_dict({'env_cfg.dist_cfg.backend': backend})  # also where the config has no env_cfg
    if torch.cuda.is_available():
        return
    if launcher != 'pytorch':
        raise ValueError(f'launcher {launcher!r} without CUDA is not supported: use --launcher pytorch (torchrun)')
    if not dist.is_initialized():
        # the rest of env_cfg.dist_cfg as mmengine's init_dist passes it (timeout in seconds)
        kwargs = {k: v for k, v in cfg.env_cfg.dist_cfg.items() if k not in ('backend', 'init_backend')}
        if kwargs.get('timeout') is not None:
            kwargs['timeout'] = datetime.timedelta(seconds=kwargs['timeout'])
        dist.init_process_group(backend=backend, **kwargs)
    wrapper = dict(cfg.get('model_wrapper_cfg', None) or {})
    wrapper.setdefault('type', 'MMDistributedDataParallel')
    wrapper.setdefault('broadcast_buffers', False)
    wrapper.setdefault('find_unused_parameters', cfg.get('find_unused_parameters', False))
    wrapper['device_ids'] = None
    cfg.model_wrapper_cfg = wrapper
    add_custom_hook(cfg, 'SyncBuffersEveryIterHook')  # BN for SyncBN: the same running statistics on every rank
    print_log(f'No CUDA: distributed run on {backend} over {dist.get_world_size()} CPU processes.',
              logger='current')


def shutdown_distributed() -> None:
    """Wait for every rank, then destroy the process group before the interpreter exits.

    Left to interpreter exit, gloo's worker threads can be torn down while still joinable and
    a rank aborts ("terminate called without an active exception", SIGABRT) after a run that
    finished: seen once in the two-process CPU test. A no-op without a process group.
    """
    if dist.is_available() and dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()


def prepare_cfg(cfg: Config, launcher: str = 'none') -> Config:
    """Everything the tools do to a config before building the runner."""
    cfg.launcher = launcher
    resolve_teacher_config(cfg)
    revert_sync_bn_without_cuda(cfg)
    add_safe_checkpoint_hook(cfg)
    setup_distributed(cfg, launcher)
    return cfg


def build_runner(cfg: Config) -> Runner:
    """``Runner.from_cfg`` or the config's own ``runner_type``."""
    if 'runner_type' not in cfg:
        return Runner.from_cfg(cfg)
    return RUNNERS.build(cfg)


def work_dir_for(cfg: Config, config_path: str, work_dir: Optional[str]) -> str:
    """``--work-dir`` > ``cfg.work_dir`` > ``./work_dirs/<config name>`` (mmseg's rule)."""
    if work_dir is not None:
        return work_dir
    if cfg.get('work_dir', None) is not None:
        return cfg.work_dir
    return os.path.join('./work_dirs', os.path.splitext(os.path.basename(config_path))[0])
