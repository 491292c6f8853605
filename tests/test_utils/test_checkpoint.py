"""Safe checkpoint loading: mmengine checkpoints load, arbitrary pickles are refused."""
import argparse
import os

import numpy as np
import pytest
import torch
from mmengine.logging import HistoryBuffer, MessageHub
from mmengine.runner.checkpoint import _load_checkpoint

import mmperc  # noqa: F401
from mmperc.engine import decode_message_hub, encode_message_hub
from mmperc.utils import UnsafeCheckpointError, safe_torch_load


class _Payload:
    """A pickled object whose unpickling would run code."""

    def __reduce__(self):
        return (os.system, ('echo pwned',))


def _hub_state() -> dict:
    hub = MessageHub(f'test-{id(object())}')
    for i in range(5):
        hub.update_scalar('train/loss', 1.0 / (i + 1))
        hub.update_scalar('train/lr', np.float64(0.01))
    hub.update_info('iter', 5)
    return hub.state_dict()


def test_numpy_in_meta_loads(tmp_path):
    path = tmp_path / 'ckpt.pth'
    torch.save({'state_dict': {'w': torch.ones(2)},
                'meta': {'palette': np.arange(6, dtype=np.uint8).reshape(2, 3), 'seed': np.int64(3),
                         'classes': ('a', 'b')}}, path)
    ckpt = _load_checkpoint(str(path), map_location='cpu')
    assert np.array_equal(ckpt['meta']['palette'], np.arange(6).reshape(2, 3))
    assert torch.equal(ckpt['state_dict']['w'], torch.ones(2))


def test_plain_message_hub_is_refused_with_clear_error(tmp_path):
    """What mmengine saves by itself (HistoryBuffer + builtins.getattr) is not allow-listed."""
    path = tmp_path / 'unsafe.pth'
    torch.save({'message_hub': _hub_state()}, path)
    with pytest.raises(UnsafeCheckpointError, match='refusing to load'):
        _load_checkpoint(str(path), map_location='cpu')


@pytest.mark.parametrize('payload', [_Payload(), argparse.Namespace(a=1)])
def test_arbitrary_objects_are_refused(tmp_path, payload):
    path = tmp_path / 'evil.pth'
    torch.save({'state_dict': {}, 'meta': {'x': payload}}, path)
    with pytest.raises(UnsafeCheckpointError, match='allow-list'):
        safe_torch_load(str(path))
    with pytest.raises(UnsafeCheckpointError):
        _load_checkpoint(str(path), map_location='cpu')


def test_encoded_message_hub_is_safe_and_round_trips(tmp_path):
    state = _hub_state()
    path = tmp_path / 'safe.pth'
    torch.save({'message_hub': encode_message_hub(state)}, path)
    assert torch.serialization.get_unsafe_globals_in_checkpoint(str(path)) == []
    loaded = decode_message_hub(_load_checkpoint(str(path), map_location='cpu')['message_hub'])
    for key, buffer in state['log_scalars'].items():
        restored = loaded['log_scalars'][key]
        assert isinstance(restored, HistoryBuffer)
        assert np.allclose(restored.data[0], buffer.data[0])
        assert np.allclose(restored.data[1], buffer.data[1])
        assert restored.max_length == buffer.max_length
    hub = MessageHub('restored-hub')
    hub.load_state_dict(loaded)
    assert hub.get_scalar('train/loss').current() == pytest.approx(0.2)
    assert hub.get_info('iter') == 5


def test_missing_file_raises_file_not_found(tmp_path):
    with pytest.raises(FileNotFoundError):
        _load_checkpoint(str(tmp_path / 'nope.pth'), map_location='cpu')
