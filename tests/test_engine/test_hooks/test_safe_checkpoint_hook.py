"""mmperc.engine.SafeCheckpointHook: what it saves loads with weights_only=True and round-trips."""
from collections import OrderedDict, defaultdict, namedtuple

import numpy as np
import torch
from mmengine.logging import HistoryBuffer, MessageHub
from mmengine.runner.checkpoint import _load_checkpoint

from mmperc.engine import SafeCheckpointHook


def test_meta_containers_a_hook_may_add_save_safely(tmp_path):
    """defaultdicts and namedtuples in meta (a user hook's) become the plain containers
    weights_only loads, instead of failing the save or the load."""
    Point = namedtuple('Point', 'x y')
    counts = defaultdict(int, a=np.int64(2))
    hub = MessageHub('safe-hook-test')
    hub.update_scalar('train/loss', 0.5)
    checkpoint = dict(meta=dict(counts=counts, point=Point(np.float32(1.5), [np.arange(3)]),
                                order=OrderedDict(b=1, a=2), iter=3),
                      message_hub=hub.state_dict())
    SafeCheckpointHook().before_save_checkpoint(None, checkpoint)
    path = tmp_path / 'ckpt.pth'
    torch.save(checkpoint, path)
    assert torch.serialization.get_unsafe_globals_in_checkpoint(str(path)) == []
    loaded = _load_checkpoint(str(path), map_location='cpu')
    SafeCheckpointHook().after_load_checkpoint(None, loaded)
    meta = loaded['meta']
    assert meta['counts'] == {'a': 2} and type(meta['counts']) is dict
    assert meta['point'][0] == 1.5 and torch.equal(meta['point'][1][0], torch.arange(3))
    assert type(meta['order']) is OrderedDict and list(meta['order']) == ['b', 'a']
    assert isinstance(loaded['message_hub']['log_scalars']['train/loss'], HistoryBuffer)


def test_history_decodes_wherever_resume_mapped_it(tmp_path, monkeypatch):
    """A GPU run's --resume loads the checkpoint onto its GPU (map_location='cuda:N'), whose
    tensors refuse ``.numpy()``: decoding the loss history must not go through numpy (it did,
    and every GPU resume failed). Here CUDA tensors are stood in for by making ``.numpy()`` fail
    as theirs does."""
    hub = MessageHub('safe-hook-device-test')
    for loss in (0.5, 0.25, 0.125):
        hub.update_scalar('train/loss', loss)
    checkpoint = dict(message_hub=hub.state_dict())
    SafeCheckpointHook().before_save_checkpoint(None, checkpoint)
    path = tmp_path / 'ckpt.pth'
    torch.save(checkpoint, path)
    loaded = _load_checkpoint(str(path), map_location='cpu')

    def no_numpy(self, *args, **kwargs):
        raise TypeError("can't convert cuda:0 device type tensor to numpy")

    monkeypatch.setattr(torch.Tensor, 'numpy', no_numpy)
    SafeCheckpointHook().after_load_checkpoint(None, loaded)
    buffer = loaded['message_hub']['log_scalars']['train/loss']
    assert isinstance(buffer, HistoryBuffer)
    assert buffer.data[0].tolist() == [0.5, 0.25, 0.125] and buffer.current() == 0.125
