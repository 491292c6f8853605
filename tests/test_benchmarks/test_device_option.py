"""The benchmark scripts take --device cpu or cuda, and refuse a device index by name."""
import subprocess
import sys

import pytest

from conftest import ROOT


@pytest.mark.parametrize('script', ['bench_loss.py', 'profile_loss.py', 'sweep_bands.py', 'check_gradients.py'])
def test_a_device_index_is_refused_by_name(script):
    # the scripts sync and pick autocast by the device's type: 'cuda:0' would time without syncs
    result = subprocess.run([sys.executable, f'benchmarks/{script}', '--device', 'cuda:0'], cwd=ROOT,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 2 and "invalid choice: 'cuda:0'" in result.stderr, result.stderr
