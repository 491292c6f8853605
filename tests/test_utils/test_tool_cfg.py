"""mmperc.utils.tool_cfg: tools/test.py's --out and the teacher config's path."""
import pytest
from mmengine.config import Config

from conftest import ROOT
from mmperc.models.segmentors.teacher import resolve_config_path
from mmperc.utils import resolve_teacher_config, save_predictions_to

DEMO = str(ROOT / 'configs/demo/pspnet_r18-d8_1xb8-100it_scenes-64x64.py')


def test_out_goes_to_the_metrics_that_write_predictions():
    cfg = Config.fromfile(DEMO)  # test_evaluator: [IoUMetric, BoundaryFScore]
    save_predictions_to(cfg, 'preds')
    iou, boundary = cfg.test_evaluator
    assert (iou.output_dir, iou.keep_results) == ('preds', True)
    assert 'output_dir' not in boundary and 'keep_results' not in boundary
    single = Config(dict(test_evaluator=dict(type='IoUMetric')))
    save_predictions_to(single, 'preds')
    assert single.test_evaluator.output_dir == 'preds'
    with pytest.raises(ValueError, match="add dict\\(type='IoUMetric'\\)"):
        save_predictions_to(Config(dict(test_evaluator=[dict(type='BoundaryFScore')])), 'preds')
    with pytest.raises(ValueError, match="mmdet's CondInst.*own test script"):  # not an mmseg metric at all
        save_predictions_to(Config(dict(test_evaluator=dict(type='CocoMetric'))), 'preds')


def _student(tmp_path, teacher_path: str) -> Config:
    configs = tmp_path / 'configs' / 'mydata'
    configs.mkdir(parents=True, exist_ok=True)
    (configs / 'teacher.py').write_text("model = dict(type='EncoderDecoder')\n")
    (configs / 'student.py').write_text(f'model = dict(teacher=dict(config={teacher_path!r}))\n')
    return Config.fromfile(str(configs / 'student.py'))


def test_relative_teacher_config_is_found_beside_the_config(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # the repository root a user trains from
    cfg = _student(tmp_path, './teacher.py')
    with pytest.raises(FileNotFoundError, match='read from the current directory'):
        resolve_config_path(cfg.model.teacher.config)
    resolve_teacher_config(cfg)
    assert cfg.model.teacher.config == str(tmp_path / 'configs' / 'mydata' / 'teacher.py')
    assert resolve_config_path(cfg.model.teacher.config) == cfg.model.teacher.config
    for kept in ('configs/mydata/teacher.py', 'mmseg::pspnet/x.py', './missing.py'):
        cfg = _student(tmp_path, kept)  # found from here, packaged, or nowhere: left as written
        resolve_teacher_config(cfg)
        assert cfg.model.teacher.config == kept
    plain = Config(dict(model=dict(type='EncoderDecoder')))
    resolve_teacher_config(plain)  # no teacher: nothing to do
    assert 'teacher' not in plain.model
