"""Shared fixtures: tiny real mmseg model configs and teacher checkpoints saved by the tests."""
import copy
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import List, Optional

import pytest
import torch
from mmengine.config import Config
from mmengine.registry import DefaultScope

import mmperc  # noqa: F401
from mmperc.models.losses import max_pool_relu, winograd_f4
from mmperc.models.segmentors import resolve_config_path
from mmperc.testing import shrink_for_quick_run
from mmperc.utils import read_scalars

ROOT = Path(__file__).resolve().parents[1]

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
    return save_checkpoint(model_cfg(TEACHER_CFG, SHRUNK_TEACHER), tmp_path_factory.mktemp('teacher') / 'teacher.pth')


def run_tool(*args, timeout: int = 600, env: Optional[dict] = None, cwd: Optional[Path] = None) -> str:
    """Run ``python <args>`` from the repository root (or ``cwd``); assert success; return its output."""
    env = dict(os.environ, PYTHONPATH=str(ROOT), **(env or {}))
    result = subprocess.run([sys.executable, *map(str, args)], cwd=cwd or ROOT, env=env, capture_output=True,
                            text=True, timeout=timeout)
    assert result.returncode == 0, (result.stdout[-4000:] + result.stderr[-4000:])
    return result.stdout + result.stderr


def quick_cfg(path: str, kind: str, data_root: str, out: Optional[Path] = None, **kwargs) -> Config:
    """Load a real config, shrink it for a quick run on generated data, optionally dump it."""
    cfg = Config.fromfile(path if '::' not in path else resolve_config_path(path))
    shrink_for_quick_run(cfg, kind, data_root, **kwargs)
    if out is not None:
        cfg.dump(str(out))
    return cfg


def scalars(work_dir) -> List[dict]:
    """The per-iteration scalars mmengine logged under ``work_dir`` (all runs, resumed ones too)."""
    return read_scalars(work_dir)


def miou(output: str) -> float:
    """The last mIoU that tools/test.py printed."""
    found = re.findall(r'mIoU: ([0-9.]+)', output)
    assert found, output[-2000:]
    return float(found[-1])


def save_checkpoint(model_cfg_dict: dict, path: Path, seed: int = 0) -> str:
    """Build a model from its config with random weights and save it as a checkpoint."""
    torch.manual_seed(seed)
    torch.save({'state_dict': build(model_cfg_dict).state_dict(), 'meta': {}}, path)
    return str(path)


@pytest.fixture(params=[0, 1], ids=['baseline', 'x86-64-v3'])
def simd_level(request):
    """Each version of the C++ kernels this CPU runs (csrc/simd_levels.h: the x86-64 baseline, and
    x86-64-v3), in both extensions; the CPU's best again afterwards."""
    exts = [module._ext for module in (winograd_f4, max_pool_relu) if module._ext is not None]
    if not exts:
        pytest.skip('the C++ extension is not built')
    before = [ext.simd_level() for ext in exts]
    try:
        for ext in exts:
            ext.set_simd_level(request.param)
    except RuntimeError:
        pytest.skip('this CPU has no x86-64-v3')
    yield request.param
    for ext, level in zip(exts, before):
        ext.set_simd_level(level)
