"""Distillation end to end for the other students and dataset formats, and for a user's own config."""
import textwrap

import pytest
import torch
from mmengine.config import Config

from conftest import ROOT, build, miou, model_cfg, quick_cfg, run_tool, save_checkpoint, scalars
from mmperc.testing import make_dataset

CASES = [
    # (perc config, its mmseg base, dataset kind)
    ('configs/perc/fcn_hr18s_perc-hr48_4xb4-80k_ade20k-512x512.py',
     'mmseg::hrnet/fcn_hr18s_4xb4-80k_ade20k-512x512.py', 'ade20k'),
    ('configs/perc/deeplabv3plus_r50-d8_perc-r101_4xb4-20k_voc12aug-512x512.py',
     'mmseg::deeplabv3plus/deeplabv3plus_r50-d8_4xb4-20k_voc12aug-512x512.py', 'pascal_voc12_aug'),
]


@pytest.mark.parametrize('perc,base,kind', CASES, ids=['hrnet-ade20k', 'deeplabv3plus-voc12aug'])
def test_student_trains_with_teacher_and_checkpoint_is_plain(perc, base, kind, tmp_path):
    data_root = make_dataset(kind, str(tmp_path / 'data'), num_train=2, num_val=2)
    # the teacher: the student's own base config with random weights, saved by the test
    teacher = save_checkpoint(model_cfg(base), tmp_path / 'teacher.pth')
    cfg = quick_cfg(str(ROOT / perc), kind, data_root, max_iters=2)
    cfg.model.teacher = dict(config=base, checkpoint=teacher)
    cfg.dump(str(tmp_path / 'perc.py'))
    run_tool('tools/train.py', tmp_path / 'perc.py', '--work-dir', tmp_path / 'work')
    logged = [s for s in scalars(tmp_path / 'work') if 'decode.loss_perc' in s]
    assert len(logged) == 2 and all(0 < s['decode.loss_perc'] < 1e3 for s in logged)
    ckpt = tmp_path / 'work' / 'iter_2.pth'
    state_dict = torch.load(ckpt, weights_only=True)['state_dict']
    base_cfg = quick_cfg(base, kind, data_root, tmp_path / 'base.py')
    build(base_cfg.model).load_state_dict(state_dict, strict=True)
    assert 0 <= miou(run_tool('tools/test.py', tmp_path / 'base.py', ckpt, '--work-dir', tmp_path / 't')) <= 100


def test_user_config_of_another_model_with_the_same_few_lines(tmp_path, teacher_ckpt):
    """FCN-R18 is not among the nine configs: the same snippet works on it."""
    user_cfg = tmp_path / 'fcn_r18-d8_perc_cityscapes.py'
    user_cfg.write_text(textwrap.dedent(f"""
        _base_ = ['mmseg::fcn/fcn_r18-d8_4xb2-80k_cityscapes-769x769.py']
        custom_imports = dict(imports=['mmperc'], allow_failed_imports=False)
        model = dict(
            type='PerceptualDistillSegmentor',
            teacher=dict(config='mmseg::fcn/fcn_r18-d8_4xb2-80k_cityscapes-769x769.py',
                         checkpoint={str(tmp_path / 'teacher.pth')!r}),
            loss_perc=dict(type='RandomPerceptualLoss', loss_weight=0.1))
    """))
    cfg = Config.fromfile(str(user_cfg))
    assert cfg.model.type == 'PerceptualDistillSegmentor' and cfg.model.backbone.depth == 18
    save_checkpoint(model_cfg('mmseg::fcn/fcn_r18-d8_4xb2-80k_cityscapes-769x769.py'), tmp_path / 'teacher.pth')
    data_root = make_dataset('cityscapes', str(tmp_path / 'data'), num_train=2, num_val=1)
    quick_cfg(str(user_cfg), 'cityscapes', data_root, tmp_path / 'run.py', max_iters=1)
    run_tool('tools/train.py', tmp_path / 'run.py', '--work-dir', tmp_path / 'work')
    assert 'decode.loss_perc' in scalars(tmp_path / 'work')[0]
