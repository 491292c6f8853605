"""Shared fixtures: tiny real mmseg model configs and teacher checkpoints saved by the tests."""
import copy
from typing import Optional

import pytest
import torch
from mmengine.config import Config
from mmengine.registry import DefaultScope

import mmperc  # noqa: F401
from mmperc.models.segmentors import resolve_config_path

STUDENT_CFG = 'mmseg::pspnet/pspnet_r18-d8_4xb2-80k_cityscapes-769x769.py'
TEACHER_CFG = 'mmseg::pspnet/pspnet_r101-d8_4xb2-80k_cityscapes-769x769.py'
# The real teacher config with its backbone shrunk to ResNet-18 widths, so tests stay fast.
SHRUNK_TEACHER = {
    'model.backbone.depth': 18,
    'model.decode_head.in_channels': 512,
    'model.decode_head.channels': 128,
    'model.auxiliary_head.in_channels': 256,
    'model.auxiliary_head.channels': 64,
    'model.pretrained': None,
}


def model_cfg(path: str = STUDENT_CFG, cfg_options: Optional[dict] = None) -> Config:
    """``cfg.model`` of a real mmseg config, BN instead of SyncBN, no pretrained download."""
    cfg = Config.fromfile(resolve_config_path(path))
    if cfg_options:
        cfg.merge_from_dict(cfg_options)
    model = copy.deepcopy(cfg.model)
    model.pretrained = None
    mmperc.utils.sync_bn_to_bn(model)
    return model


def build(model: dict):
    from mmseg.registry import MODELS
    with DefaultScope.overwrite_default_scope('mmseg'):
        return MODELS.build(model)


@pytest.fixture(scope='session')
def teacher_ckpt(tmp_path_factory) -> str:
    """A teacher checkpoint from the real PSPNet-R101 config with an R18-sized backbone."""
    torch.manual_seed(0)
    teacher = build(model_cfg(TEACHER_CFG, SHRUNK_TEACHER))
    path = tmp_path_factory.mktemp('teacher') / 'teacher.pth'
    torch.save({'state_dict': teacher.state_dict(), 'meta': {}}, path)
    return str(path)
