"""Build a frozen teacher segmentor from its own config and checkpoint."""
import importlib
import os.path as osp
from typing import Optional

import torch
import torch.nn as nn
from mmengine.config import Config
from mmengine.registry import MODELS, DefaultScope
from mmengine.runner.checkpoint import _load_checkpoint

from mmperc.utils.sync_bn import sync_bn_to_bn

# ``--cfg-options`` keys a user overrides; error messages name them.
CONFIG_KEY = 'model.teacher.config'
CHECKPOINT_KEY = 'model.teacher.checkpoint'


def resolve_config_path(path: str) -> str:
    """Turn ``'mmseg::pspnet/x.py'`` (or a local path) into a local file path.

    Raises:
        FileNotFoundError: The config does not exist.
    """
    if '::' in path:
        scope, rel_path = path.split('::', 1)
        try:
            package_dir = osp.dirname(importlib.import_module(scope).__file__)
        except ImportError as err:
            raise FileNotFoundError(f'teacher config {path!r}: package {scope!r} is not installed') from err
        local = osp.join(package_dir, '.mim', 'configs', rel_path)
    else:
        local = osp.expanduser(path)
    if not osp.isfile(local):
        raise FileNotFoundError(
            f'teacher config {path!r} not found (looked at {local}); set {CONFIG_KEY} to a '
            "local config file or a packaged one such as 'mmseg::pspnet/<name>.py'")
    return local


def load_teacher_config(path: str, cfg_options: Optional[dict] = None) -> Config:
    """Read the teacher's config, with optional overrides (e.g. a shallower depth)."""
    cfg = Config.fromfile(resolve_config_path(path))
    if cfg_options:
        cfg.merge_from_dict(cfg_options)
    if 'model' not in cfg:
        raise ValueError(f'teacher config {path!r} defines no `model`')
    return cfg


def freeze(model: nn.Module) -> nn.Module:
    """Eval mode, no gradients, and marked initialised so ``init_weights`` skips it."""
    model.eval()
    for param in model.parameters():
        param.requires_grad_(False)
    for module in model.modules():
        if hasattr(module, '_is_init'):
            module._is_init = True
    return model


def build_teacher(config: str,
                  checkpoint: Optional[str],
                  cfg_options: Optional[dict] = None,
                  device: Optional[torch.device] = None) -> nn.Module:
    """Build a teacher from ``config`` and load ``checkpoint`` strictly, frozen.

    The checkpoint goes through mmengine's loader, so local paths and URLs both
    work, and through mmperc's safe ``torch.load`` (see
    :mod:`mmperc.utils.checkpoint`). Without CUDA, SyncBN layers become BN.

    Args:
        config (str): Teacher config, a path or ``'mmseg::...'``.
        checkpoint (str): Teacher weights, a path or URL.
        cfg_options (dict, optional): Overrides merged into the teacher config.
            Defaults to None.
        device (torch.device, optional): Where to put the teacher. Defaults to
            None (CPU).

    Returns:
        nn.Module: The frozen teacher in eval mode.

    Raises:
        ValueError: No checkpoint given, or it does not fit the config.
        FileNotFoundError: Config or checkpoint missing.
    """
    if not checkpoint:
        raise ValueError(
            f'a teacher needs trained weights: set {CHECKPOINT_KEY} to a checkpoint path or '
            f'URL (e.g. --cfg-options {CHECKPOINT_KEY}=/path/to/teacher.pth)')
    cfg = load_teacher_config(config, cfg_options)
    model_cfg = cfg.model
    model_cfg.pop('pretrained', None)
    if not torch.cuda.is_available():
        sync_bn_to_bn(model_cfg)
    with DefaultScope.overwrite_default_scope(cfg.get('default_scope', 'mmseg')):
        teacher = MODELS.build(model_cfg)
    try:
        state = _load_checkpoint(checkpoint, map_location='cpu')
    except FileNotFoundError as err:
        raise FileNotFoundError(
            f'teacher checkpoint {checkpoint!r} not found: set {CHECKPOINT_KEY} to an existing '
            f'file or URL ({err})') from err
    state_dict = state.get('state_dict', state) if isinstance(state, dict) else state
    if not isinstance(state_dict, dict):
        raise ValueError(f'teacher checkpoint {checkpoint!r} holds no state_dict')
    state_dict = {k[len('module.'):] if k.startswith('module.') else k: v for k, v in state_dict.items()}
    try:
        # torch's own strict check raises on every rank (mmengine's only on rank 0).
        teacher.load_state_dict(state_dict, strict=True)
    except RuntimeError as err:
        raise ValueError(
            f'teacher checkpoint {checkpoint!r} does not fit the teacher config {config!r}: '
            f'point {CONFIG_KEY} at the config the checkpoint was trained with.\n{err}') from err
    return freeze(teacher.to(device) if device is not None else teacher)
