"""Build a frozen teacher segmentor from its own config and checkpoint."""
import copy
import importlib
import logging
import os.path as osp
from typing import Optional
from urllib.error import URLError

import torch
import torch.nn as nn
from mmcv.cnn import fuse_conv_bn
from mmengine.config import Config
from mmengine.logging import print_log
from mmengine.registry import MODELS, DefaultScope
from mmengine.runner.checkpoint import _load_checkpoint
from torch import Tensor

from mmperc.utils.checkpoint import UnreadableCheckpointError
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
            f'teacher config {path!r} not found (looked at {osp.abspath(local)}); set {CONFIG_KEY} to a '
            "local config file or a packaged one such as 'mmseg::pspnet/<name>.py' (a relative path is "
            "read from the current directory; mmperc's tools also look beside the training config)")
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
        ValueError: No checkpoint given, it cannot be read or downloaded, or it does not fit the config.
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
    except (UnreadableCheckpointError, URLError) as err:  # a broken file or download, an unreachable URL
        raise ValueError(
            f'teacher checkpoint {checkpoint!r} could not be loaded: set {CHECKPOINT_KEY} to a readable '
            f'file or a reachable URL ({err})') from err
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


def fuse_conv_bn_checked(teacher: nn.Module, probe: Tensor, rtol: float = 1e-2) -> nn.Module:
    """The frozen ``teacher`` with each batch norm folded into the convolution before it
    (mmcv's ``fuse_conv_bn``, as mmdet's ``--fuse-conv-bn`` does for testing).

    A frozen teacher's batch norms are fixed affine maps, so folding them gives the same logits
    (to float rounding) without one pass over every activation (a PSPNet-R101 teacher's
    forward 1.12-1.13x faster on a 2-core CPU). ``fuse_conv_bn`` pairs a norm with the convolution
    registered before it, which is the one that runs before it in mmseg's and mmcv's modules
    but not in every model (a norm before its convolution); so the fused teacher is kept only
    if its logits for ``probe`` equal the teacher's within ``rtol`` of their largest magnitude
    (a norm folded into the wrong convolution changes them by far more than rounding does,
    TF32's 10-bit mantissa on a GPU included). Otherwise (or if folding fails) the teacher is
    returned as it was, with a warning.

    Args:
        teacher (nn.Module): A frozen segmentor in eval mode (:func:`build_teacher`).
        probe (Tensor): A preprocessed input batch for the check.
        rtol (float): Largest difference allowed, relative to the largest logit.
            Defaults to 1e-2.

    Returns:
        nn.Module: The fused teacher, frozen, or ``teacher`` itself.
    """
    try:
        fused = freeze(fuse_conv_bn(copy.deepcopy(teacher)))
        with torch.no_grad():
            expected, got = teacher._forward(probe), fused._forward(probe)
        error = float((got - expected).abs().max() / expected.abs().max().clamp(min=1e-12))
    except (RuntimeError, ValueError, TypeError, AttributeError) as err:  # e.g. shapes, a norm without affine
        reason = f'folding failed ({err})'
    else:
        if error <= rtol:
            return fused
        reason = f'the folded teacher\'s logits differ by {error:.3g} of the largest'
    print_log(f'teacher batch norms not folded into its convolutions: {reason}; the teacher runs as '
              'configured (set model.teacher.fuse_conv_bn=False to skip this check)',
              logger='current', level=logging.WARNING)
    return teacher


def probe_input(teacher: nn.Module, device: torch.device, size: int = 128) -> Tensor:
    """A fixed random batch of one ``size`` x ``size`` image with the channels of the teacher's
    first convolution, for :func:`fuse_conv_bn_checked`."""
    conv = next((m for m in teacher.modules() if isinstance(m, nn.Conv2d)), None)
    channels = conv.in_channels if conv is not None else 3
    generator = torch.Generator().manual_seed(0)
    return torch.randn(1, channels, size, size, generator=generator).to(device)
