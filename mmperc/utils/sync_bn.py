"""Turn SyncBN into BN in a model config when there is no GPU to synchronise on."""
from typing import Any

import torch
from mmengine.logging import print_log

_SYNC_BN_TYPES = ('SyncBN', 'MMSyncBN', 'nn.SyncBatchNorm', 'SyncBatchNorm')


def is_sync_bn(norm_type: Any) -> bool:
    """Whether a norm config's ``type`` is a synchronised batch norm: a registry name, or a class
    (``torch.nn.SyncBatchNorm``, mmcv's ``SyncBatchNorm``) as pure-Python configs give it."""
    if isinstance(norm_type, str):
        return norm_type in _SYNC_BN_TYPES
    return isinstance(norm_type, type) and (issubclass(norm_type, torch.nn.SyncBatchNorm)
                                            or norm_type.__name__ == 'SyncBatchNorm')


def sync_bn_to_bn(cfg: Any) -> int:
    """Replace every ``dict(type='SyncBN', ...)`` under ``cfg`` (or a SyncBN class as the type,
    :func:`is_sync_bn`) by ``type='BN'`` in place.

    Args:
        cfg (Any): A (nested) config dict/list, e.g. ``cfg.model``.

    Returns:
        int: How many norm configs were changed.
    """
    changed = 0
    if isinstance(cfg, dict):
        if is_sync_bn(cfg.get('type')):
            cfg['type'] = 'BN'
            changed += 1
        for value in cfg.values():
            changed += sync_bn_to_bn(value)
    elif isinstance(cfg, (list, tuple)):
        for value in cfg:
            changed += sync_bn_to_bn(value)
    return changed


def revert_sync_bn_without_cuda(cfg: Any) -> int:
    """On a machine without CUDA, turn SyncBN into BN in ``cfg.model`` with one warning.

    SyncBN needs CUDA and a process group; BN computes the same statistics per
    process, which is what a CPU run can do.

    Returns:
        int: How many norm configs were changed (0 with CUDA).
    """
    if torch.cuda.is_available() or 'model' not in cfg:
        return 0
    changed = sync_bn_to_bn(cfg.model)
    if changed:
        print_log(
            f'No CUDA device: {changed} SyncBN layer config(s) of the model were converted '
            'to BN (SyncBN needs GPUs).', logger='current', level=30)
    return changed
