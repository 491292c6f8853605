"""benchmarks/gpu_prepare.py --summarize: the table of the pairs gpu_check.sh trained, from their logs."""
import importlib.util
import json

import pytest

from conftest import ROOT


@pytest.fixture
def gpu_prepare():
    spec = importlib.util.spec_from_file_location('gpu_prepare', ROOT / 'benchmarks' / 'gpu_prepare.py')
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _run(out, name: str, seconds) -> None:
    """A run's scalars.json: one training entry per logged interval."""
    path = out / name / '20261128_010000' / 'vis_data' / 'scalars.json'
    path.parent.mkdir(parents=True)
    path.write_text(''.join(json.dumps({'iter': 5 * (i + 1), 'loss': 1.0, 'time': t, 'data_time': 0.01,
                                        'memory': 4000}) + '\n' for i, t in enumerate(seconds)))


def test_summary_lists_the_pairs_this_run_trained(gpu_prepare, tmp_path, capsys):
    base, perc = gpu_prepare.RUNS
    _run(tmp_path, base + '_amp', [9.0, 0.2, 0.2, 0.2])  # the first interval (warm-up) is left out
    _run(tmp_path, perc + '_amp', [9.0, 0.3, 0.3, 0.3])
    _run(tmp_path, base, [0.5, 0.5])  # a float32 pair kept from an earlier run
    _run(tmp_path, perc, [0.5, 0.5])
    gpu_prepare.summarize(str(tmp_path), 'only')
    rows = {line.split()[0]: line.split() for line in capsys.readouterr().out.splitlines() if line.startswith('psp')}
    assert set(rows) == {base + '_amp', perc + '_amp'}
    assert rows[base + '_amp'][1:] == ['200.0', '10.0', '4000', '1.00x']
    assert rows[perc + '_amp'][1:] == ['300.0', '10.0', '4000', '1.50x']
    gpu_prepare.summarize(str(tmp_path), 'both')
    assert sum(line.startswith('psp') for line in capsys.readouterr().out.splitlines()) == 4


def test_pairs_option_matches_gpu_check(gpu_prepare):
    """gpu_check.sh passes its GPU_CHECK_AMP (both, only, none) as --pairs."""
    assert set(gpu_prepare.PAIRS) == {'both', 'only', 'none'}
    script = (ROOT / 'benchmarks' / 'gpu_check.sh').read_text()
    assert '--summarize --pairs "${GPU_CHECK_AMP:-both}"' in script
    for value in gpu_prepare.PAIRS:
        assert f'    {value}) amps=' in script
