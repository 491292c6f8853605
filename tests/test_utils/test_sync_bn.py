"""SyncBN configs become BN on machines without CUDA."""
import pytest
import torch
from mmengine.config import Config

from mmperc.models.segmentors import resolve_config_path
from mmperc.utils import revert_sync_bn_without_cuda, sync_bn_to_bn


def _types(cfg):
    if isinstance(cfg, dict):
        return [cfg.get('type')] + [t for v in cfg.values() for t in _types(v)]
    if isinstance(cfg, (list, tuple)):
        return [t for v in cfg for t in _types(v)]
    return []


def test_sync_bn_to_bn_on_real_config():
    cfg = Config.fromfile(resolve_config_path('mmseg::pspnet/pspnet_r18-d8_4xb2-80k_cityscapes-769x769.py'))
    assert 'SyncBN' in _types(cfg.model)
    changed = sync_bn_to_bn(cfg.model)
    assert changed >= 3  # backbone, decode head, auxiliary head
    assert 'SyncBN' not in _types(cfg.model)
    assert sync_bn_to_bn(cfg.model) == 0


@pytest.mark.skipif(torch.cuda.is_available(), reason='checks the CPU path')
def test_revert_without_cuda():
    cfg = Config(dict(model=dict(type='X', norm_cfg=dict(type='SyncBN'), head=dict(norm_cfg=dict(type='SyncBN')))))
    assert revert_sync_bn_without_cuda(cfg) == 2
    assert _types(cfg.model).count('BN') == 2


def test_sync_bn_given_as_a_class_becomes_bn():
    """Pure-Python configs give the norm's type as a class: torch's and mmcv's SyncBatchNorm
    are converted like the registry names; other norms are left alone."""
    from mmcv.ops import SyncBatchNorm as MMSyncBatchNorm
    cfg = dict(backbone=dict(norm_cfg=dict(type=torch.nn.SyncBatchNorm, requires_grad=True)),
               head=dict(norm_cfg=dict(type=MMSyncBatchNorm)), neck=dict(norm_cfg=dict(type=torch.nn.BatchNorm2d)),
               aux=[dict(norm_cfg=dict(type='GN', num_groups=2))])
    assert sync_bn_to_bn(cfg) == 2
    assert cfg['backbone']['norm_cfg'] == dict(type='BN', requires_grad=True)
    assert cfg['head']['norm_cfg']['type'] == 'BN' and cfg['neck']['norm_cfg']['type'] is torch.nn.BatchNorm2d
    assert cfg['aux'][0]['norm_cfg']['type'] == 'GN'
