"""benchmarks/profile_loss.py runs end to end (tiny sizes): a timed table per side and band budget."""
import re

from conftest import run_tool


def test_profile_prints_a_table_for_the_reference_and_each_band_budget():
    out = run_tool('benchmarks/profile_loss.py', '--device', 'cpu', '--size', 32, '--classes', 5, '--budgets', 0.01, 0,
                   '--repeats', 1, '--top', 500, timeout=600)  # every op: rankings by time vary
    header = r'^== (.+?): [\d.]+ ms per forward\+backward \(reference / this: [\d.]+x\), \d+ page faults per call$'
    headers = re.findall(header, out, re.M)
    assert headers == ['reference', 'mmperc', 'mmperc, bands of 0.01 MiB', 'mmperc, bands of 0 MiB'], out
    assert out.count('Self CPU time total') == 4 and 'aten::' in out, out
    assert 'aten::constant_pad_nd' not in out, out  # the loss never pads its class maps
    first_layer = [line.split() for line in out.splitlines() if line.startswith('float32 ')]
    assert [(row[1], row[2]) for row in first_layer] == [('nchw', '5'), ('nchw', '8'), ('channels_last', '5'),
                                                         ('channels_last', '8')], out
    # mmperc's own forward and backward ran under each budget (the reference has none)
    assert out.count('FrozenVGGEmbedBackward') == 3, out


def test_profile_with_label_targets():
    out = run_tool('benchmarks/profile_loss.py', '--device', 'cpu', '--size', 32, '--classes', 12, '--targets',
                   'labels', '--repeats', 1, '--top', 500, '--faults', timeout=600)
    assert 'target=labels' in out and out.count('Self CPU time total') == 2, out
    assert 'aten::embedding_bag' in out or 'aten::_embedding_bag' in out, out  # the gathered first layer
    assert out.count('page faults in all (under the dispatch mode), the most by:') == 2, out
