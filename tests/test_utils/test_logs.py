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


def test_latest_only_is_the_newest_run_even_when_it_logged_nothing(tmp_path):
    """A run that failed before its first log leaves its folder (and its .log) but no
    scalars.json: the newest run's log is then empty, not the run before's."""
    _log(tmp_path, '20261128_010000', json.dumps({'iter': 1, 'mIoU': 40.0}) + '\n')
    newest = tmp_path / '20261128_020000'
    newest.mkdir()
    (newest / '20261128_020000.log').write_text('Traceback ...\n')
    assert read_scalars(tmp_path, latest_only=True) == []
    assert [e['iter'] for e in read_scalars(tmp_path)] == [1]
    (tmp_path / 'zz_not_a_run' / 'vis_data').mkdir(parents=True)  # other folders are no runs
    (tmp_path / 'zz_not_a_run' / 'vis_data' / 'scalars.json').write_text(json.dumps({'iter': 9}) + '\n')
    assert read_scalars(tmp_path, latest_only=True) == [] and len(read_scalars(tmp_path)) == 1


def test_a_later_test_run_does_not_hide_the_training_log(tmp_path):
    """tools/test.py into the training's work dir (both default to work_dirs/<config>) makes a
    newer run folder holding its metrics as <timestamp>.json and no scalars.json."""
    _log(tmp_path, '20261128_010000', json.dumps({'iter': 2, 'mIoU': 40.0}) + '\n')
    test_run = tmp_path / '20261128_020000'
    (test_run / 'vis_data').mkdir(parents=True)
    (test_run / '20261128_020000.json').write_text(json.dumps({'mIoU': 41.0}))
    (test_run / '20261128_020000.log').write_text('Iter(test) [1/1] mIoU: 41.0\n')
    assert [e['iter'] for e in read_scalars(tmp_path, latest_only=True)] == [2]
