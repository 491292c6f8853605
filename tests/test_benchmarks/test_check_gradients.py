"""benchmarks/check_gradients.py: mmperc's gradient against the reference's, case by case."""
import importlib.util
import sys

import pytest

from conftest import ROOT, run_tool


@pytest.fixture
def check_gradients():
    sys.path.insert(0, str(ROOT / 'benchmarks'))
    spec = importlib.util.spec_from_file_location('check_gradients', ROOT / 'benchmarks' / 'check_gradients.py')
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    yield module
    sys.path.remove(str(ROOT / 'benchmarks'))


def test_every_case_within_bounds_on_the_cpu():
    out = run_tool('benchmarks/check_gradients.py', '--device', 'cpu', '--size', 96, '--classes', 5, timeout=600)
    rows = [line for line in out.splitlines() if line.startswith('C=')]
    assert len(rows) == 16 and all(row.endswith('ok') for row in rows), out  # 2 targets x 2 layouts x 2 bands x 2 dtypes
    # the banded backward is among them: at 96 pixels the small budget cuts the maps into bands
    assert sum('bands=default (1)' in row for row in rows) == 8 and not any('many (1)' in row for row in rows), out
    assert sum('reference in fp16' in row for row in rows) == 8 and 'every case within bounds' in out, out


def test_a_wrong_gradient_fails_the_check(check_gradients, monkeypatch):
    """The reference built from another loss network: the cases mismatch and the script exits 1."""
    make_reference = check_gradients.reference_network
    other = check_gradients.RandomPerceptualLoss(num_convs=(2, 2, 3, 3, 3), in_channels=5, seed=1)
    monkeypatch.setattr(check_gradients, 'reference_network', lambda loss: make_reference(other))
    monkeypatch.setattr(sys, 'argv', ['check_gradients.py', '--device', 'cpu', '--size', 32, '--classes', '5'])
    monkeypatch.setattr(sys, 'argv', [str(a) for a in sys.argv])
    with pytest.raises(SystemExit) as exit_info:
        check_gradients.main()
    assert exit_info.value.code == 1
    rows = list(check_gradients.check('cpu', 32, 2, [5]))
    assert rows and not any(row['ok'] for row in rows)
