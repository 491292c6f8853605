"""Save mmengine's message hub as plain tensors so checkpoints load with ``weights_only=True``."""
from collections import OrderedDict
from typing import Any, Dict, Optional

import numpy as np
import torch
from mmengine.hooks import Hook
from mmengine.logging import HistoryBuffer
from mmengine.registry import HOOKS

_TAG = '__history_buffer__'


def _to_safe(value: Any) -> Any:
    """numpy values as tensors/Python scalars; containers recursively, as the plain ``dict``,
    ``OrderedDict``, ``list`` and ``tuple`` that ``weights_only`` loads (a ``defaultdict`` or a
    namedtuple a hook put in ``meta`` could neither be rebuilt as its type nor loaded)."""
    if isinstance(value, np.ndarray):
        return torch.from_numpy(np.ascontiguousarray(value))
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, dict):
        return (OrderedDict if isinstance(value, OrderedDict) else dict)((k, _to_safe(v)) for k, v in value.items())
    if isinstance(value, (list, tuple)):
        return (list if isinstance(value, list) else tuple)(_to_safe(v) for v in value)
    return value


def encode_history_buffer(buffer: HistoryBuffer) -> Dict[str, Any]:
    """A ``HistoryBuffer`` as a tagged dict of tensors (no pickled classes)."""
    log_history, count_history = buffer.data
    return {
        _TAG: True,
        'log_history': torch.from_numpy(np.ascontiguousarray(log_history, dtype=np.float64)),
        'count_history': torch.from_numpy(np.ascontiguousarray(count_history, dtype=np.float64)),
        'max_length': int(buffer.max_length),
    }


def decode_history_buffer(value: Dict[str, Any]) -> HistoryBuffer:
    """Inverse of :func:`encode_history_buffer`, wherever ``--resume`` mapped the tensors (GPU
    runs load onto their GPU, whose tensors have no ``.numpy()``)."""
    return HistoryBuffer(
        log_history=value['log_history'].tolist(),
        count_history=value['count_history'].tolist(),
        max_length=value['max_length'])


def encode_message_hub(state: Dict[str, Any]) -> Dict[str, Any]:
    """Make ``MessageHub.state_dict()`` loadable by ``torch.load(weights_only=True)``."""
    state = dict(state)
    state['log_scalars'] = {
        key: encode_history_buffer(value) if isinstance(value, HistoryBuffer) else _to_safe(value)
        for key, value in state.get('log_scalars', {}).items()
    }
    state['runtime_info'] = _to_safe(dict(state.get('runtime_info', {})))
    return state


def decode_message_hub(state: Dict[str, Any]) -> Dict[str, Any]:
    """Rebuild the ``HistoryBuffer`` objects ``MessageHub.load_state_dict`` expects."""
    state = dict(state)
    state['log_scalars'] = {
        key: decode_history_buffer(value) if isinstance(value, dict) and value.get(_TAG) else value
        for key, value in state.get('log_scalars', {}).items()
    }
    return state


@HOOKS.register_module()
class SafeCheckpointHook(Hook):
    """Keep checkpoints free of pickled Python objects beyond tensors and builtins.

    mmengine pickles its message hub's ``HistoryBuffer`` objects (and with
    them ``builtins.getattr``) into every checkpoint, so torch>=2.6's
    ``weights_only=True`` loading refuses ``--resume``. Allow-listing
    ``getattr`` would let a crafted checkpoint reach any attribute, so this
    hook instead stores the buffers as tensors before saving and rebuilds them
    after loading. ``mmperc``'s ``tools/train.py`` adds it to every run.
    """

    priority = 'VERY_LOW'

    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        if checkpoint.get('message_hub') is not None:
            checkpoint['message_hub'] = encode_message_hub(checkpoint['message_hub'])
        if checkpoint.get('meta') is not None:
            checkpoint['meta'] = _to_safe(checkpoint['meta'])

    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        hub: Optional[dict] = checkpoint.get('message_hub')
        if hub is not None:
            checkpoint['message_hub'] = decode_message_hub(hub)
