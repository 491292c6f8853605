"""tools/train.py and tools/test.py parse mmseg's arguments as mmseg's tools do."""
import importlib.util
import os
import sys
from pathlib import Path

import pytest

TOOLS = Path(__file__).resolve().parents[2] / 'tools'


def _tool(name: str):
    spec = importlib.util.spec_from_file_location(f'mmperc_tool_{name}', TOOLS / f'{name}.py')
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize('tool,args', [('train', ['cfg.py']), ('test', ['cfg.py', 'ckpt.pth'])])
def test_local_rank_argument_is_exported(monkeypatch, tool, args):
    """A launcher that passes only ``--local-rank`` (torch.distributed.launch without
    --use-env, as mmseg's tools expect) gets LOCAL_RANK set; torchrun's own is kept."""
    parse_args = _tool(tool).parse_args
    monkeypatch.setenv('LOCAL_RANK', '0')  # recorded first, so teardown restores the session's own
    monkeypatch.delenv('LOCAL_RANK')
    monkeypatch.setattr(sys, 'argv', [tool] + args + ['--local-rank', '3'])
    assert parse_args().local_rank == 3 and os.environ['LOCAL_RANK'] == '3'
    monkeypatch.setenv('LOCAL_RANK', '1')
    monkeypatch.setattr(sys, 'argv', [tool] + args + ['--local_rank', '0'])
    parse_args()
    assert os.environ['LOCAL_RANK'] == '1'
