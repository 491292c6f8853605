"""benchmarks/bench_winograd_layers.py runs end to end (small maps) with every column and small errors."""
import re

from conftest import run_tool

from mmperc.models.losses import winograd_f4


def test_every_layer_with_times_and_float32_errors():
    out = run_tool('benchmarks/bench_winograd_layers.py', '--scale', 0.125, '--repeats', 1, timeout=600)
    rows = [line for line in out.splitlines() if re.match(r'^\d+ -> \d+ at', line)]
    assert len(rows) == 7, out
    for row in rows:
        errors = row.split('   ')[-1].split(', ')
        assert len(errors) == 8, row
        measured = [float(e) for e in errors if e != '-']
        assert len(measured) == (8 if winograd_f4.available() else 4) and max(measured) < 1e-5, row
