"""Safe loading of mmengine checkpoints with ``torch.load(weights_only=True)`` (torch>=2.6):
local files and URLs (``http(s)://``, ``open-mmlab://``, ``torchvision://``, ``mmcls://``)."""
import codecs
import contextlib
import os.path as osp
import pickle
from typing import Any, Iterator, List, Optional, Union
from urllib.parse import urlparse

import mmengine.runner.checkpoint as mmengine_checkpoint
import numpy as np
import torch
from mmengine.runner.checkpoint import CheckpointLoader


class UnsafeCheckpointError(pickle.UnpicklingError):
    """A checkpoint holds pickled objects outside mmperc's allow-list."""


class UnreadableCheckpointError(ValueError):
    """A file is not a readable torch checkpoint (empty, truncated, or not one at all)."""


def _numpy_safe_globals() -> List[Any]:
    """numpy's array/dtype reconstructors, under their numpy 1.x and 2.x names.

    mmengine checkpoints may carry numpy arrays and dtypes (e.g. in
    ``dataset_meta``); rebuilding those runs no user code.
    """
    try:
        multiarray = np._core.multiarray  # numpy >= 2
    except AttributeError:
        multiarray = np.core.multiarray
    safe: List[Any] = [np.ndarray, np.dtype, codecs.encode]
    for func in (multiarray._reconstruct, multiarray.scalar):
        for module in ('numpy.core.multiarray', 'numpy._core.multiarray'):
            safe.append((func, f'{module}.{func.__name__}'))
    dtype_classes = {type(np.dtype(t)) for t in np.sctypeDict.values()}
    for cls in sorted(dtype_classes, key=lambda c: c.__name__):
        safe.append((cls, f'numpy.dtypes.{cls.__name__}'))
    return safe


def register_safe_globals() -> None:
    """Allow-list exactly the types mmengine/mmseg checkpoints contain.

    mmengine's message hub (``HistoryBuffer``) is *not* allow-listed: its
    pickle needs ``builtins.getattr``, which would let a crafted file reach
    any attribute. :class:`mmperc.engine.SafeCheckpointHook` saves it as plain
    tensors instead.
    """
    torch.serialization.add_safe_globals(_numpy_safe_globals())


def safe_torch_load(filename: str, map_location: Union[str, torch.device, None] = None) -> Any:
    """``torch.load(weights_only=True)`` with a clear error for unsafe files.

    Raises:
        FileNotFoundError: ``filename`` does not exist.
        UnsafeCheckpointError: The file pickles objects outside the allow-list.
        UnreadableCheckpointError: The file is empty, truncated or not a torch checkpoint.
    """
    with _refused_as(filename):
        return _as_loaded(torch.load(filename, map_location=map_location, weights_only=True))


@contextlib.contextmanager
def _refused_as(filename: str) -> Iterator[None]:
    """Re-raise what ``torch.load(weights_only=True)`` of ``filename`` failed with as
    :func:`_refusal` explains it (other errors as they are)."""
    try:
        yield
    except (pickle.UnpicklingError, EOFError, RuntimeError) as err:
        refusal = _refusal(filename, err)
        if refusal is None:
            raise
        raise refusal from err


def _refusal(filename: str, err: Exception) -> Optional[Exception]:
    """The error for a file ``torch.load(weights_only=True)`` failed on: unsafe (naming what it
    pickles) or unreadable; None for an error of another kind (e.g. a CUDA ``map_location``)."""
    lines = [line for line in str(err).splitlines() if line.strip()]
    truncated = ('PytorchStreamReader', 'unexpected EOF')  # a zip / a legacy-format file cut short
    if isinstance(err, RuntimeError) and not any(t in line for t in truncated for line in lines):
        return None
    try:
        found = torch.serialization.get_unsafe_globals_in_checkpoint(filename)
    except Exception:  # noqa: BLE001 - not a zip checkpoint: torch's message names the global
        found = []
    said = next((line for line in lines if 'GLOBAL' in line), None)
    if found or said:
        return UnsafeCheckpointError(
            f'refusing to load {filename}: it pickles objects outside the safe allow-list'
            f'{" " + str(found) if found else ""} and loading it could run arbitrary code. Checkpoints '
            "written by mmperc's tools load safely; if you trust this file, re-save it with "
            '`python tools/sanitize_checkpoint.py IN OUT --trust`.\n'
            f'torch said: {said or lines[0]}')
    said = next((line for line in lines if 'Unsupported operand' in line), None)
    if said:  # a pickle opcode the safe loader does not read
        why = ('torch\'s safe loader cannot parse it: another kind of file (an HTML error page, a git-lfs '
               'pointer?), or a checkpoint pickled with protocol 4 or 5. Download or copy it again, or, if it is '
               'a checkpoint you trust, re-save it with `python tools/sanitize_checkpoint.py IN OUT --trust`.')
    else:
        said = lines[0] if lines else 'end of file'
        why = 'it is empty or truncated (an interrupted download or copy?): download or copy it again.'
    return UnreadableCheckpointError(
        f'{filename} could not be read as a torch checkpoint: {why} torch said: {type(err).__name__}: {said}')


def _as_loaded(checkpoint: Any) -> Any:
    """What the safe loaders return: the checkpoint without ``meta['config']``
    (:func:`_without_config_code`), its message hub's history rebuilt from the tensors
    :class:`~mmperc.engine.SafeCheckpointHook` saved it as, so that a run resumed by any train
    script keeps it, whether or not its config names the hook."""
    from mmperc.engine import decode_message_hub  # mmperc.engine imports mmengine only
    checkpoint = _without_config_code(checkpoint)
    if isinstance(checkpoint, dict) and isinstance(checkpoint.get('message_hub'), dict):
        checkpoint['message_hub'] = decode_message_hub(checkpoint['message_hub'])
    return checkpoint


def _without_config_code(checkpoint: Any) -> Any:
    """The checkpoint without ``meta['config']``: mmengine's ``Runner.resume`` runs that string
    as a Python config (``Config.fromstring``) for a GPU-count check, so a crafted file made
    only of safe types could still run code on ``--resume``. mmengine 0.10 saves its config as
    ``meta['cfg']``; ``config`` comes from mmcv 1.x-era checkpoints (e.g. mmseg 0.x's model
    zoo, whose weights load unchanged) or crafted ones. The file itself is not changed."""
    meta = checkpoint.get('meta') if isinstance(checkpoint, dict) else None
    if isinstance(meta, dict):
        meta.pop('config', None)
    return checkpoint


@CheckpointLoader.register_scheme(prefixes='', force=True)
def load_from_local(filename: str, map_location: Union[str, torch.device, None]) -> Any:
    """mmengine's local-file loader, through :func:`safe_torch_load`."""
    filename = osp.expanduser(filename)
    if not osp.isfile(filename):
        raise FileNotFoundError(f'{filename} can not be found.')
    return safe_torch_load(filename, map_location)


def safe_load_url(url: str,
                  model_dir: Optional[str] = None,
                  map_location: Union[str, torch.device, None] = None,
                  progress: bool = True,
                  check_hash: bool = False,
                  file_name: Optional[str] = None) -> Any:
    """``torch.hub.load_state_dict_from_url`` with ``weights_only=True`` (its default is False).

    mmengine's URL loaders (``http(s)://``, and through them ``open-mmlab://``,
    ``torchvision://``, ``mmcls://``: the teachers' and backbones' pretrained weights) call
    it as ``load_url``; mmperc puts this one in its place, so a tampered download or cached
    file is refused like a local one.

    Raises:
        UnsafeCheckpointError: The file pickles objects outside the allow-list.
        UnreadableCheckpointError: The file is empty, truncated or not a torch checkpoint.
    """
    cached = osp.join(model_dir or osp.join(torch.hub.get_dir(), 'checkpoints'),
                      file_name or osp.basename(urlparse(url).path))
    with _refused_as(cached):
        checkpoint = torch.hub.load_state_dict_from_url(
            url, model_dir=model_dir, map_location=map_location, progress=progress, check_hash=check_hash,
            file_name=file_name, weights_only=True)
    return _as_loaded(checkpoint)


mmengine_checkpoint.load_url = safe_load_url
