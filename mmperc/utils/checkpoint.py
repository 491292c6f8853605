"""Safe loading of mmengine checkpoints with ``torch.load(weights_only=True)`` (torch>=2.6)."""
import codecs
import os.path as osp
import pickle
from typing import Any, List, Union

import numpy as np
import torch
from mmengine.runner.checkpoint import CheckpointLoader


class UnsafeCheckpointError(pickle.UnpicklingError):
    """A checkpoint holds pickled objects outside mmperc's allow-list."""


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
    """
    try:
        return torch.load(filename, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as err:
        try:
            found = torch.serialization.get_unsafe_globals_in_checkpoint(filename)
        except Exception:  # noqa: BLE001 - a broken file: report the original error
            found = []
        raise UnsafeCheckpointError(
            f'refusing to load {filename}: it pickles objects outside the safe allow-list '
            f'{found or ""} and loading it could run arbitrary code. Checkpoints written by '
            "mmperc's tools load safely; if you trust this file, re-save it with "
            '`python tools/sanitize_checkpoint.py IN OUT --trust`.\n'
            f'torch said: {str(err).splitlines()[0]}') from err


@CheckpointLoader.register_scheme(prefixes='', force=True)
def load_from_local(filename: str, map_location: Union[str, torch.device, None]) -> Any:
    """mmengine's local-file loader, through :func:`safe_torch_load`."""
    filename = osp.expanduser(filename)
    if not osp.isfile(filename):
        raise FileNotFoundError(f'{filename} can not be found.')
    return safe_torch_load(filename, map_location)
