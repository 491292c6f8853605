"""tools/demo.py end to end (a smoke run of every stage) and the demo configs."""
import re

import pytest
from mmengine.config import Config

from conftest import ROOT, run_tool

DEMO_CONFIGS = sorted((ROOT / 'configs' / 'demo').glob('*.py'))


@pytest.mark.parametrize('path', DEMO_CONFIGS, ids=[p.name for p in DEMO_CONFIGS])
def test_demo_config_names_match_content(path):
    match = re.match(r'^pspnet_r(\d+)-d8(?:_perc-(gt|r\d+))?_1xb(\d+)-(\d+)it_(scenes|nuclei)-(\d+)x(\d+)\.py$',
                     path.name)
    assert match, path.name
    depth, perc, batch, iters, data, h, w = match.groups()
    cfg = Config.fromfile(str(path))
    assert cfg.model.backbone.depth == int(depth)
    assert cfg.train_dataloader.batch_size == int(batch)
    assert cfg.train_cfg.max_iters == int(iters) == cfg.param_scheduler[0].end
    crop = [t for t in cfg.train_dataloader.dataset.pipeline if t.type == 'RandomCrop'][0].crop_size
    assert tuple(crop) == (int(h), int(w))
    if perc == 'gt':
        assert [loss.type for loss in cfg.model.decode_head.loss_decode][-1] == 'RandomPerceptualLoss'
    elif perc:
        assert cfg.model.type == 'PerceptualDistillSegmentor'
        assert f'pspnet_{perc}-d8' in cfg.model.teacher.config and data in cfg.model.teacher.config
        teacher = Config.fromfile(str(path.parent / cfg.model.teacher.config))  # read beside it, as _base_
        assert teacher.model.decode_head.num_classes == cfg.model.decode_head.num_classes
    assert cfg.train_dataloader.dataset.data_root == f'data/demo/{"cityscapes" if data == "scenes" else data}'
    assert cfg.model.pretrained is None  # nothing to download


def test_demo_smoke_run_writes_table_and_figures(tmp_path):
    # started outside the repository: the distilled students find their teacher configs beside them
    out = run_tool(ROOT / 'tools' / 'demo.py', '--work-dir', tmp_path / 'demo', '--data-root', tmp_path / 'data',
                   '--num-train', 4, '--num-val', 2, '--max-iters', 1, timeout=900, cwd=tmp_path)
    assert 'wrote' in out
    table = (tmp_path / 'demo' / 'results.md').read_text()
    rows = [line for line in table.splitlines() if line.startswith('| ') and 'mIoU' not in line]
    runs = ['teacher', 'ce', 'perc_gt', 'perc_teacher']
    assert [tuple(row.split('|')[i].strip() for i in (1, 2)) for row in rows] == \
        [(data, run) for data in ('scenes', 'nuclei') for run in runs]
    for row in rows:
        miou, bf = (float(row.split('|')[i]) for i in (4, 5))
        assert 0 <= miou <= 100 and 0 <= bf <= 100
    from PIL import Image
    for name, min_width, min_height in (('predictions.png', 600, 600), ('curves.png', 900, 600)):
        with Image.open(tmp_path / 'demo' / name) as image:  # a row of panels per dataset
            assert image.width >= min_width and image.height >= min_height
    assert (tmp_path / 'data' / 'nuclei' / 'img_dir' / 'val').is_dir()


def _demo_module():
    import importlib.util
    spec = importlib.util.spec_from_file_location('mmperc_demo', ROOT / 'tools' / 'demo.py')
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_teacher_is_trained_once_then_reused(tmp_path):
    """A cached teacher is reused (no job, no dependency); otherwise the distilled student waits
    for the checkpoint the teacher's run will write."""
    import argparse
    demo = _demo_module()
    args = argparse.Namespace(retrain_teacher=False, max_iters=None, seed=0)
    config = demo.TRACKS[0][2][0][1]
    teacher, data = str(tmp_path / 'teacher'), str(tmp_path / 'data')
    ckpt, train = demo.teacher_checkpoint(config, args, teacher, data)
    assert train and ckpt == str(tmp_path / 'teacher' / 'iter_300.pth')
    (tmp_path / 'teacher' / 'iter_300.pth').write_bytes(b'')  # the run finished
    assert demo.teacher_checkpoint(config, args, teacher, data) == (ckpt, False)
    args.retrain_teacher = True
    assert demo.teacher_checkpoint(config, args, teacher, data) == (ckpt, True)
    assert not (tmp_path / 'teacher' / 'iter_300.pth').exists()  # the stale one is gone before training


def test_teacher_of_a_smoke_run_or_other_data_is_not_reused(tmp_path):
    """A --max-iters run's teacher, or one trained on other data or with another seed, is
    never what a full demo distils from (it was: whatever the folder's last checkpoint was)."""
    import argparse
    demo = _demo_module()
    config = demo.TRACKS[0][2][0][1]
    teacher, data = str(tmp_path / 'teacher'), str(tmp_path / 'data')
    smoke = argparse.Namespace(retrain_teacher=False, max_iters=2, seed=0)
    ckpt, train = demo.teacher_checkpoint(config, smoke, teacher, data)
    assert train and ckpt.endswith('iter_2.pth')
    (tmp_path / 'teacher' / 'iter_2.pth').write_bytes(b'')
    (tmp_path / 'teacher' / 'last_checkpoint').write_text(ckpt)
    full = argparse.Namespace(retrain_teacher=False, max_iters=None, seed=0)
    assert demo.teacher_checkpoint(config, full, teacher, data)[1]
    (tmp_path / 'teacher' / 'iter_300.pth').write_bytes(b'')
    assert not demo.teacher_checkpoint(config, full, teacher, data)[1]
    assert demo.teacher_checkpoint(config, full, teacher, str(tmp_path / 'other'))[1]  # other data
    (tmp_path / 'teacher' / 'iter_300.pth').write_bytes(b'')
    assert demo.teacher_checkpoint(config, argparse.Namespace(**{**vars(full), 'seed': 1}), teacher, data)[1]


def test_smoke_run_keeps_the_cached_full_teacher(tmp_path):
    """A --max-iters run trains its teacher in a folder of its own: the next full demo still
    reuses the full schedule's teacher instead of deleting and training it again."""
    import argparse
    demo = _demo_module()
    config, data = demo.TRACKS[0][2][0][1], str(tmp_path / 'data')
    full = argparse.Namespace(retrain_teacher=False, max_iters=None, seed=0)
    smoke = argparse.Namespace(retrain_teacher=False, max_iters=2, seed=0)
    ckpt, train = demo.teacher_checkpoint(config, full, demo.run_dir(str(tmp_path), 'teacher', full), data)
    assert train and ckpt == str(tmp_path / 'teacher' / 'iter_300.pth')
    (tmp_path / 'teacher' / 'iter_300.pth').write_bytes(b'')  # the full run finished
    smoke_dir = demo.run_dir(str(tmp_path), 'teacher', smoke)
    assert smoke_dir != demo.run_dir(str(tmp_path), 'teacher', full)
    assert demo.run_dir(str(tmp_path), 'ce', smoke) == str(tmp_path / 'ce')
    assert demo.teacher_checkpoint(config, smoke, smoke_dir, data)[1]
    assert demo.teacher_checkpoint(config, full, str(tmp_path / 'teacher'), data) == (ckpt, False)
