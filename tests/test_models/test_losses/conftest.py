"""Fixtures of the loss tests: the C++ kernels' instruction sets."""
import pytest

from mmperc.models.losses import max_pool_relu, winograd_f4


@pytest.fixture(params=[0, 1], ids=['baseline', 'x86-64-v3'])
def simd_level(request):
    """Each version of the C++ kernels this CPU runs (csrc/simd_levels.h: the x86-64 baseline, and
    x86-64-v3), in both extensions; the CPU's best again afterwards."""
    exts = [module._ext for module in (winograd_f4, max_pool_relu) if module._ext is not None]
    if not exts:
        pytest.skip('the C++ extension is not built')
    before = [ext.simd_level() for ext in exts]
    try:
        for ext in exts:
            ext.set_simd_level(request.param)
    except RuntimeError:
        pytest.skip('this CPU has no x86-64-v3')
    yield request.param
    for ext, level in zip(exts, before):
        ext.set_simd_level(level)
