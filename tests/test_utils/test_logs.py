"""mmperc.utils.read_scalars: mmengine's per-run scalars.json, oldest run first."""
import json

import pytest

from mmperc.utils import read_scalars


def _log(work_dir, stamp: str, text: str) -> None:
    path = work_dir / stamp / 'vis_data' / 'scalars.json'
    path.parent.mkdir(parents=True)
    path.write_text(text)


def test_runs_in_order_and_a_last_line_cut_short_is_left_out(tmp_path):
    _log(tmp_path, '20261128_010000', json.dumps({'iter': 1, 'loss': 1.0}) + '\n')
    _log(tmp_path, '20261128_020000', json.dumps({'iter': 2, 'loss': 0.5}) + '\n{"iter": 3, "lo')  # killed mid-line
    assert [e['iter'] for e in read_scalars(tmp_path)] == [1, 2]
    assert [e['iter'] for e in read_scalars(tmp_path, latest_only=True)] == [2]
    _log(tmp_path, '20261128_030000', '{"iter": 4, "lo\n' + json.dumps({'iter': 5}) + '\n')  # broken mid-file
    with pytest.raises(json.JSONDecodeError):
        read_scalars(tmp_path)
