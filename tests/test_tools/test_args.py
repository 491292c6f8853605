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
def test_local_rank_argument_is_exported(monkeypatch, tmp_path, tool, args):
    """A launcher that passes only ``--local-rank`` (torch.distributed.launch without
    --use-env, as mmseg's tools expect) gets LOCAL_RANK set; torchrun's own is kept."""
    parse_args = _tool(tool).parse_args
    monkeypatch.chdir(tmp_path)
    for name in args:
        (tmp_path / name).write_text('')
    monkeypatch.setenv('LOCAL_RANK', '0')  # recorded first, so teardown restores the session's own
    monkeypatch.delenv('LOCAL_RANK')
    monkeypatch.setattr(sys, 'argv', [tool] + args + ['--local-rank', '3'])
    assert parse_args().local_rank == 3 and os.environ['LOCAL_RANK'] == '3'
    monkeypatch.setenv('LOCAL_RANK', '1')
    monkeypatch.setattr(sys, 'argv', [tool] + args + ['--local_rank', '0'])
    parse_args()
    assert os.environ['LOCAL_RANK'] == '1'


@pytest.mark.parametrize('tool,argv,message', [
    ('train', ['--resume', 'cfg.py'], 'required: config .*put --resume after CONFIG'),  # mmseg's order
    ('train', ['missing.py'], r'config missing.py not found \(a relative path is read from the current directory'),
    ('train', ['mmseg::pspnet/x.py'], r"read only through _base_.*_base_ = \['mmseg::pspnet/x.py'\]"),
    ('train', ['cfg.py', '--resume', 'missing.pth'], '--resume missing.pth: no such checkpoint'),
    ('test', ['missing.py', 'ckpt.pth'], 'config missing.py not found'),
    ('test', ['cfg.py', 'missing.pth'], 'checkpoint missing.pth not found: pass one written by tools/train.py'),
])
def test_bad_paths_are_usage_errors_naming_the_fix(monkeypatch, tmp_path, capsys, tool, argv, message):
    import re
    monkeypatch.chdir(tmp_path)
    (tmp_path / 'cfg.py').write_text('')
    (tmp_path / 'ckpt.pth').write_text('')
    monkeypatch.setattr(sys, 'argv', [tool] + argv)
    with pytest.raises(SystemExit) as exit_info:
        _tool(tool).parse_args()
    assert exit_info.value.code == 2 and re.search(message, capsys.readouterr().err)


def test_urls_and_resume_without_a_value_pass(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    (tmp_path / 'cfg.py').write_text('')
    monkeypatch.setattr(sys, 'argv', ['test', 'cfg.py', 'https://example.org/ckpt.pth'])
    assert _tool('test').parse_args().checkpoint == 'https://example.org/ckpt.pth'
    monkeypatch.setattr(sys, 'argv', ['train', 'cfg.py', '--resume'])
    assert _tool('train').parse_args().resume == 'auto'
