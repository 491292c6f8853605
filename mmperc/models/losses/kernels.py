"""Whether mmperc's C++ CPU kernels (``csrc/``, built by ``pip install --no-build-isolation -e .``)
are used.

``MMPERC_KERNELS=0`` in the environment, read at import, turns them off: the loss network then
runs PyTorch's ops alone, the path CUDA and installs without the build take (the same values
within float32 rounding, slower on the CPU). ``tools/run_tests.sh`` runs the loss tests that way
too, so that path stays tested on a machine without a GPU.
"""
import importlib
import os
from types import ModuleType
from typing import Optional

ENV = 'MMPERC_KERNELS'


def enabled() -> bool:
    """Whether the C++ kernels may be used: ``MMPERC_KERNELS`` unset or ``1``, not ``0``."""
    value = os.environ.get(ENV, '1')
    if value not in ('0', '1'):
        raise ValueError(f'{ENV} must be 0 (PyTorch ops only) or 1 (the C++ kernels, the default), '
                         f'but got {value!r}')
    return value == '1'


def load(name: str) -> Optional[ModuleType]:
    """The built extension ``name`` of this package (e.g. ``'_winograd_f4'``), or None when it
    is not built or ``MMPERC_KERNELS=0``."""
    if not enabled():
        return None
    try:
        return importlib.import_module(f'{__package__}.{name}')
    except ImportError:  # not built: a checkout used without `pip install -e .`, or no compiler
        return None
