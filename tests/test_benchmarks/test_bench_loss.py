"""benchmarks/bench_loss.py runs end to end (tiny sizes) and prints every ratio it promises."""
import re

from conftest import run_tool


def test_bench_loss_prints_loss_and_step_ratios():
    out = run_tool('benchmarks/bench_loss.py', '--size', 32, '--step-size', 64, '--batch', 2, '--repeats', 1,
                   '--step-repeats', 1, timeout=900)
    rows = [line for line in out.splitlines() if re.match(r'^\(\d', line)]
    assert len(rows) == 4 and all(row.endswith('True') for row in rows), out  # same loss value as the reference
    for name in ('from 1/8', 'kept', "first: the first call's peak", 'ratio (A)', 'ratio (B)', 'teacher forward',
                 'ground-truth target',
                 'whole distillation step, teacher in bf16 autocast (model.teacher.autocast=bfloat16)'):
        assert name in out, out


def test_bench_loss_with_label_targets_matches_the_one_hot_reference():
    out = run_tool('benchmarks/bench_loss.py', '--targets', 'labels', '--no-step', '--size', 32, '--batch', 2,
                   '--repeats', 1, timeout=600)
    assert 'target: ground-truth labels' in out, out
    rows = [line for line in out.splitlines() if re.match(r'^\(\d', line)]
    assert len(rows) == 4 and all(row.endswith('True') for row in rows), out


def test_rows_reach_on_row_as_they_are_measured(capsys):
    """On CUDA the table is printed row by row (a device run's time limit keeps the rows done):
    each row reaches ``on_row`` before the next setting runs, and prints as the table does."""
    import importlib.util

    from conftest import ROOT
    spec = importlib.util.spec_from_file_location('bench_loss', ROOT / 'benchmarks' / 'bench_loss.py')
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    seen, settings = [], [((1, 1, 1, 1, 1), 3, 32), ((1, 1, 1, 1, 1), 4, 32)]
    real = bench._loss_setting
    bench._loss_setting = lambda *a, **k: (seen.append(('setting', a[1])), real(*a, **k))[1]
    rows = bench.bench_loss(settings, 'cpu', 1, 1, on_row=lambda r: (seen.append(('row', r['classes'])),
                                                                     bench.print_row(r)))
    assert seen == [('setting', 3), ('row', 3), ('setting', 4), ('row', 4)] and len(rows) == 2
    printed = capsys.readouterr().out.splitlines()
    assert len(printed) == 2 and all(line.startswith('(1, 1, 1, 1, 1)') and line.endswith('True') for line in printed)
