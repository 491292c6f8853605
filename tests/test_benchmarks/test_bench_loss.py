"""benchmarks/bench_loss.py runs end to end (tiny sizes) and prints every ratio it promises."""
import re

from conftest import run_tool


def test_bench_loss_prints_loss_and_step_ratios():
    out = run_tool('benchmarks/bench_loss.py', '--size', 32, '--step-size', 64, '--batch', 2, '--repeats', 1,
                   '--step-repeats', 1, timeout=900)
    rows = [line for line in out.splitlines() if re.match(r'^\(\d', line)]
    assert len(rows) == 4 and all(row.endswith('True') for row in rows), out  # same loss value as the reference
    for name in ('from 1/8', 'kept', 'ratio (A)', 'ratio (B)', 'teacher forward', 'ground-truth target',
                 'whole distillation step, teacher in bf16 autocast (model.teacher.autocast=bfloat16)'):
        assert name in out, out


def test_bench_loss_with_label_targets_matches_the_one_hot_reference():
    out = run_tool('benchmarks/bench_loss.py', '--targets', 'labels', '--no-step', '--size', 32, '--batch', 2,
                   '--repeats', 1, timeout=600)
    assert 'target: ground-truth labels' in out, out
    rows = [line for line in out.splitlines() if re.match(r'^\(\d', line)]
    assert len(rows) == 4 and all(row.endswith('True') for row in rows), out
