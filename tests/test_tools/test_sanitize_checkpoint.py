"""tools/sanitize_checkpoint.py turns a trusted plain-mmengine checkpoint into a safe one."""
import subprocess
import sys

import torch
from mmengine.logging import HistoryBuffer, MessageHub
from mmengine.runner.checkpoint import _load_checkpoint

from conftest import ROOT, run_tool


def test_sanitize_requires_trust_and_makes_a_safe_checkpoint(tmp_path):
    hub = MessageHub('sanitize-test')
    hub.update_scalar('train/loss', 0.5)
    src, dst = tmp_path / 'plain.pth', tmp_path / 'safe.pth'
    torch.save({'state_dict': {'w': torch.ones(3)}, 'message_hub': hub.state_dict(), 'meta': {'iter': 7}}, src)
    assert torch.serialization.get_unsafe_globals_in_checkpoint(str(src))  # HistoryBuffer, getattr, ...
    refused = subprocess.run([sys.executable, 'tools/sanitize_checkpoint.py', str(src), str(dst)], cwd=ROOT,
                             capture_output=True, text=True)
    assert refused.returncode != 0 and '--trust' in refused.stderr and not dst.exists()
    run_tool('tools/sanitize_checkpoint.py', src, dst, '--trust')
    assert torch.serialization.get_unsafe_globals_in_checkpoint(str(dst)) == []
    loaded = _load_checkpoint(str(dst), map_location='cpu')
    assert torch.equal(loaded['state_dict']['w'], torch.ones(3)) and loaded['meta']['iter'] == 7
    from mmperc.engine import decode_message_hub
    buffer = decode_message_hub(loaded['message_hub'])['log_scalars']['train/loss']
    assert isinstance(buffer, HistoryBuffer) and buffer.current() == 0.5


def test_sanitize_writes_nothing_when_it_cannot_make_the_file_safe(tmp_path):
    import argparse
    src, dst = tmp_path / 'plain.pth', tmp_path / 'safe.pth'
    torch.save({'state_dict': {'w': torch.ones(3)}, 'meta': {'args': argparse.Namespace(lr=0.1)}}, src)
    failed = subprocess.run([sys.executable, 'tools/sanitize_checkpoint.py', str(src), str(dst), '--trust'],
                            cwd=ROOT, capture_output=True, text=True)
    assert failed.returncode != 0 and 'Namespace' in failed.stderr and 'nothing written' in failed.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ['plain.pth']
