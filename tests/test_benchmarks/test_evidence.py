"""benchmarks/evidence.py: the studies' tables from per-run metrics (training itself is stubbed here;
tools/train.py has end-to-end tests of its own)."""
import argparse
import importlib.util
import json

import pytest

from conftest import ROOT


@pytest.fixture
def evidence(monkeypatch):
    spec = importlib.util.spec_from_file_location('evidence', ROOT / 'benchmarks' / 'evidence.py')
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    calls = []

    def fake_train(config, work_dir, seed, options, args):
        calls.append((config.name, work_dir, seed, tuple(options)))
        if any('std=1.0' in o for o in options):
            return {'diverged': False, 'mIoU': 0.5, 'bF': 0.0}
        if any('a=1.0' in o for o in options):
            return {'diverged': True}
        return {'diverged': False, 'mIoU': 20.0 + seed, 'bF': 50.0 + seed}

    monkeypatch.setattr(module, 'train', fake_train)
    module.calls = calls
    return module


def args(tmp_path, seeds=2):
    return argparse.Namespace(seeds=seeds, max_iters=100, work_dir=str(tmp_path), demo_dir='', data_root='')


def test_init_table_counts_divergence_and_collapse(evidence, tmp_path):
    table = evidence.study_init(args(tmp_path))
    rows = {line.split('|')[1].strip(): line for line in table.splitlines() if line.startswith('| ')}
    assert set(evidence.INITS) <= set(rows)
    assert rows['paper'].split('|')[2].strip() == '20.50 ± 0.71'
    assert rows['N(0,1)'].endswith('| 0 / 2 / 2 |')  # finite loss, nothing learnt
    assert rows['U[-1,1]'].endswith('| 2 / 0 / 2 |') and 'diverged' in rows['U[-1,1]']
    assert len(evidence.calls) == 2 * len(evidence.INITS)


def test_structure_study_shares_the_default_run_with_the_init_study(evidence, tmp_path):
    table = evidence.study_structure(args(tmp_path, seeds=1))
    dirs = {options: work_dir for _, work_dir, _, options in evidence.calls}
    assert dirs[()].endswith('seed0')
    assert 'init/paper' in [w for c, w, _, o in evidence.calls if c.startswith('pspnet_r18-d8_perc') and not o][0]
    assert {c for c, *_ in evidence.calls} == {evidence.CE.name, evidence.PERC.name}
    assert len([line for line in table.splitlines() if line.startswith('| ')]) == 2 + len(evidence.STRUCTURES)


def test_only_the_losss_divergence_counts_as_diverged(evidence):
    assert evidence.diverged('ValueError: RandomPerceptualLoss got a non-finite (NaN/Inf) prediction: lower')
    for crash in ('ValueError: RandomPerceptualLoss got a non-finite (NaN/Inf) target: a teacher',
                  'FileNotFoundError: teacher config not found', 'UserWarning: the dominant class is NaN-free'):
        assert not evidence.diverged(crash)


def test_cached_run_of_another_length_is_refused(evidence, tmp_path):
    module_train = importlib.util.module_from_spec(
        importlib.util.spec_from_file_location('evidence_real', ROOT / 'benchmarks' / 'evidence.py'))
    module_train.__spec__.loader.exec_module(module_train)
    run = tmp_path / 'run'
    run.mkdir()
    (run / 'metrics.json').write_text(json.dumps({'diverged': False, 'mIoU': 1.0, 'bF': 1.0, 'max_iters': 200}))
    with pytest.raises(RuntimeError, match='200 iterations'):
        module_train.train(module_train.PERC, str(run), 0, [], args(tmp_path))
    assert module_train.train(module_train.PERC, str(run), 0, [], argparse.Namespace(**{**vars(args(tmp_path)),
                                                                                          'max_iters': 200}))['mIoU'] == 1.0


def test_seeds_study_leaves_diverged_runs_out_of_the_statistics(evidence, tmp_path, monkeypatch):
    """A diverged run has no mIoU: the seeds table counts it, the means and Welch's test leave it
    out (they raised KeyError), and too few finished runs say so instead of printing p = nan."""
    runs = iter([{'diverged': False, 'mIoU': 20.0, 'bF': 50.0}, {'diverged': True},
                 {'diverged': False, 'mIoU': 21.0, 'bF': 51.0}, {'diverged': False, 'mIoU': 24.0, 'bF': 55.0},
                 {'diverged': False, 'mIoU': 22.0, 'bF': 52.0}, {'diverged': False, 'mIoU': 25.0, 'bF': 56.0}])
    monkeypatch.setattr(evidence, 'train', lambda *a: next(runs))
    table = evidence.study_seeds(args(tmp_path, seeds=3))
    assert '| CE + perc (teacher) | 24.50 ± 0.71 | 55.50 ± 0.71 | 3 (1 diverged, left out) |' in table, table
    assert "Welch's t = " in table
    runs = iter([{'diverged': False, 'mIoU': 20.0, 'bF': 50.0}, {'diverged': True}])
    assert 'needs at least 2 finished runs per side' in evidence.study_seeds(args(tmp_path, seeds=1))
