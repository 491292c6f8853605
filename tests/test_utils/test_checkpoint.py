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
from mmperc.utils import UnreadableCheckpointError, UnsafeCheckpointError, safe_torch_load


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


def test_legacy_format_payload_is_refused_naming_the_global(tmp_path):
    """torch can list the globals of zip files only; a legacy-format file's refusal quotes torch."""
    path = tmp_path / 'legacy.pth'
    torch.save({'meta': {'x': _Payload()}}, path, _use_new_zipfile_serialization=False)
    with pytest.raises(UnsafeCheckpointError, match=r'(?s)allow-list and loading.*torch said: .*GLOBAL .*system'):
        safe_torch_load(str(path))


@pytest.mark.parametrize('content,why', [
    (b'', 'empty or truncated'), (b'<html>404 Not Found</html>', 'HTML error page.*protocol 4 or 5'),
    ('truncated', 'empty or truncated'), ('truncated legacy', 'empty or truncated')])
def test_unreadable_files_are_not_called_unsafe(tmp_path, content, why):
    """An empty file, an HTML page or a truncated zip or legacy-format file is not a checkpoint:
    say so, not 'unsafe'."""
    path = tmp_path / 'bad.pth'
    if isinstance(content, str):  # a real checkpoint cut short
        torch.save({'state_dict': {'w': torch.ones(1000)}}, path,
                   _use_new_zipfile_serialization='legacy' not in content)
        content = path.read_bytes()[:600]
    path.write_bytes(content)
    with pytest.raises(UnreadableCheckpointError, match=f'could not be read as a torch checkpoint: .*{why}') as info:
        safe_torch_load(str(path))
    assert 'allow-list' not in str(info.value)
    with pytest.raises(UnreadableCheckpointError):
        _load_checkpoint(str(path), map_location='cpu')


def test_encoded_message_hub_is_safe_and_round_trips(tmp_path):
    state = _hub_state()
    path = tmp_path / 'safe.pth'
    torch.save({'message_hub': encode_message_hub(state)}, path)
    assert torch.serialization.get_unsafe_globals_in_checkpoint(str(path)) == []
    # decoded by the loader itself: resumed by a train script whose config lacks the hook, the
    # history is kept (mmengine skipped every encoded entry with a warning); the hook's own decode
    # of what is already decoded changes nothing
    loaded = _load_checkpoint(str(path), map_location='cpu')['message_hub']
    assert decode_message_hub(loaded) == loaded
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


class _Marker:
    """A pickled object whose unpickling creates a file: whether it ran is visible."""

    def __init__(self, path: str) -> None:
        self.path = path

    def __reduce__(self):
        return (open, (self.path, 'w'))


def test_url_checkpoints_load_safely(tmp_path, monkeypatch):
    """http(s):// and the schemes that resolve to a URL (open-mmlab://, torchvision://, mmcls://)
    load the downloaded (here: already cached) file with weights_only=True, as local files do:
    torch.hub's own default is weights_only=False."""
    monkeypatch.setenv('TORCH_HOME', str(tmp_path / 'torch'))
    cache = tmp_path / 'torch' / 'hub' / 'checkpoints'
    cache.mkdir(parents=True)
    marker = tmp_path / 'ran'
    for name in ('evil.pth', 'resnet18_v1c-b5776b93.pth'):  # the second: open-mmlab://resnet18_v1c's file
        torch.save({'state_dict': {}, 'meta': {'x': _Marker(str(marker))}}, cache / name)
    for url in ('https://download.example.invalid/x/evil.pth', 'open-mmlab://resnet18_v1c'):
        with pytest.raises(UnsafeCheckpointError, match='evil.pth|resnet18_v1c'):
            _load_checkpoint(url, map_location='cpu')
    assert not marker.exists()
    torch.save({'state_dict': {'w': torch.ones(2)}, 'meta': {'cfg': 'a = 1'}}, cache / 'good.pth')
    ckpt = _load_checkpoint('https://download.example.invalid/x/good.pth', map_location='cpu')
    assert torch.equal(ckpt['state_dict']['w'], torch.ones(2)) and ckpt['meta'] == {'cfg': 'a = 1'}


def test_config_code_in_meta_is_dropped(tmp_path):
    """mmengine's Runner.resume runs meta['config'] as Python (Config.fromstring): a file of safe
    types could carry code there, so the loaders drop it (mmengine 0.10 saves meta['cfg'])."""
    path = tmp_path / 'ckpt.pth'
    code = f"x = __import__('builtins').open({str(tmp_path / 'ran')!r}, 'w')"
    torch.save({'state_dict': {'w': torch.ones(2)}, 'meta': {'config': code, 'cfg': 'a = 1', 'iter': 2}}, path)
    assert torch.serialization.get_unsafe_globals_in_checkpoint(str(path)) == []  # all safe types
    for ckpt in (_load_checkpoint(str(path), map_location='cpu'), safe_torch_load(str(path))):
        assert ckpt['meta'] == {'cfg': 'a = 1', 'iter': 2}
    assert not (tmp_path / 'ran').exists()
