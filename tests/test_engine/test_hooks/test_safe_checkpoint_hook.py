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
