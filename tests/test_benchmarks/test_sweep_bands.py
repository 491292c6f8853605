"""benchmarks/sweep_bands.py runs end to end (tiny sizes): every budget and layout, same value."""
import re

from conftest import run_tool


def test_sweep_prints_every_budget_and_layout_with_the_reference_value():
    # 0.01 MiB: bands of a few rows on 32x32 maps of 5 classes; 0: the whole maps
    out = run_tool('benchmarks/sweep_bands.py', '--device', 'cpu', '--size', 32, '--batch', 2, '--classes', 5,
                   '--budgets', 0.01, 0, '--repeats', 1, timeout=600)
    rows = [line.split() for line in out.splitlines() if re.match(r'^\(\d', line)]
    # 2 structures x 2 layouts x 2 budgets, float32 only on the CPU
    assert len(rows) == 8 and all(row[-1] == 'True' for row in rows), out
    assert {(row[-8], row[-7]) for row in rows} == {(layout, mib) for layout in ('nchw', 'channels_last')
                                                    for mib in ('0.01', '0')}, out
