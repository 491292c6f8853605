"""tools/train.py and tools/test.py end to end on a generated Cityscapes-format dataset."""
import re

import pytest
import torch
from mmengine.config import Config

from conftest import ROOT, SHRUNK_TEACHER, TEACHER_CFG, build, miou, quick_cfg, run_tool, scalars
from mmperc.testing import make_dataset

BASE = 'mmseg::pspnet/pspnet_r18-d8_4xb2-80k_cityscapes-769x769.py'
PERC = str(ROOT / 'configs/perc/pspnet_r18-d8_perc-r101_4xb2-40k_cityscapes-769x769.py')


@pytest.fixture(scope='module')
def data_root(tmp_path_factory):
    return make_dataset('cityscapes', str(tmp_path_factory.mktemp('data')), num_train=4, num_val=2)


@pytest.fixture(scope='module')
def base_run(tmp_path_factory, data_root):
    """2 iterations of the plain mmseg PSPNet-R18 config, then --resume to 4."""
    tmp = tmp_path_factory.mktemp('base')
    quick_cfg(BASE, 'cityscapes', data_root, tmp / 'base.py', max_iters=2)
    run_tool('tools/train.py', tmp / 'base.py', '--work-dir', tmp / 'work')
    return tmp


def test_train_plain_mmseg_config_writes_safe_checkpoint(base_run):
    ckpt = base_run / 'work' / 'iter_2.pth'
    assert ckpt.is_file()
    assert torch.serialization.get_unsafe_globals_in_checkpoint(str(ckpt)) == []
    state = torch.load(ckpt, weights_only=True)
    assert state['meta']['iter'] == 2


def test_resume_continues_at_the_right_iteration(base_run):
    out = run_tool('tools/train.py', base_run / 'base.py', '--work-dir', base_run / 'work', '--resume',
                   '--cfg-options', 'train_cfg.max_iters=4', 'train_cfg.val_interval=4',
                   'default_hooks.checkpoint.interval=4')
    assert re.search(r'resumed epoch: 0, iter: 2', out), out[-3000:]
    iters = [s['iter'] for s in scalars(base_run / 'work') if 'loss' in s]
    assert iters[-2:] == [3, 4]
    resumed = torch.load(base_run / 'work' / 'iter_4.pth', weights_only=True)
    assert resumed['meta']['iter'] == 4
    # the message hub came back through SafeCheckpointHook: the loss history of iterations 1-2 too
    from mmperc.engine import decode_message_hub
    history = decode_message_hub(resumed['message_hub'])['log_scalars']['train/loss']
    assert len(history.data[0]) == 4
    explicit = run_tool('tools/train.py', base_run / 'base.py', '--work-dir', base_run / 'work2',
                        '--resume', base_run / 'work' / 'iter_2.pth', '--cfg-options', 'train_cfg.max_iters=3',
                        'train_cfg.val_interval=3', 'default_hooks.checkpoint.interval=3')
    assert 'resumed epoch: 0, iter: 2' in explicit


def test_test_tool_reports_miou_and_writes_outputs(base_run):
    out = run_tool('tools/test.py', base_run / 'base.py', base_run / 'work' / 'iter_2.pth', '--work-dir',
                   base_run / 'test', '--out', base_run / 'preds', '--show-dir', 'vis')
    assert 0 <= miou(out) <= 100
    assert len(list((base_run / 'preds').glob('**/*.png'))) == 2
    assert len(list((base_run / 'test').glob('**/vis/**/*.png'))) == 2


def test_test_tool_out_with_a_list_of_metrics(base_run):
    """--out with test_evaluator a list (as mmperc's demo configs have): the metric that writes
    predictions gets the directory, the others are left alone."""
    cfg = Config.fromfile(str(base_run / 'base.py'))
    cfg.test_evaluator = [dict(type='IoUMetric', iou_metrics=['mIoU']), dict(type='BoundaryFScore')]
    cfg.dump(str(base_run / 'metrics.py'))
    out = run_tool('tools/test.py', base_run / 'metrics.py', base_run / 'work' / 'iter_2.pth', '--work-dir',
                   base_run / 'test_metrics', '--out', base_run / 'preds_metrics')
    assert 0 <= miou(out) <= 100 and 'bF' in out
    assert len(list((base_run / 'preds_metrics').glob('**/*.png'))) == 2


@pytest.fixture(scope='module')
def perc_run(tmp_path_factory, data_root, teacher_ckpt):
    """2 iterations of the PSPNet-R18 _perc config with a small teacher saved by the test."""
    tmp = tmp_path_factory.mktemp('perc')
    cfg = quick_cfg(PERC, 'cityscapes', data_root, tmp / 'perc.py', max_iters=2)
    cfg.model.teacher = dict(config=TEACHER_CFG, checkpoint=teacher_ckpt, cfg_options=dict(SHRUNK_TEACHER))
    cfg.dump(str(tmp / 'perc.py'))
    out = run_tool('tools/train.py', tmp / 'perc.py', '--work-dir', tmp / 'work')
    return tmp, out


def test_perc_config_trains_and_logs_both_losses(perc_run):
    tmp, out = perc_run
    logged = [s for s in scalars(tmp / 'work') if 'decode.loss_ce' in s]
    assert len(logged) == 2
    for entry in logged:
        assert entry['decode.loss_perc'] > 0 and entry['decode.loss_perc'] < 1e3
        assert 'aux.loss_ce' in entry


def test_perc_checkpoint_is_a_plain_mmseg_checkpoint(perc_run, data_root, tmp_path):
    tmp, _ = perc_run
    ckpt = tmp / 'work' / 'iter_2.pth'
    state_dict = torch.load(ckpt, weights_only=True)['state_dict']
    assert not [k for k in state_dict if 'teacher' in k or 'loss_perc' in k]
    base = quick_cfg(BASE, 'cityscapes', data_root, tmp_path / 'base.py')
    model = build(base.model)
    model.load_state_dict(state_dict, strict=True)
    # a missing teacher checkpoint proves that testing never builds or loads the teacher
    perc_out = run_tool('tools/test.py', tmp / 'perc.py', ckpt, '--work-dir', tmp_path / 'a', '--cfg-options',
                        f'model.teacher.checkpoint={tmp_path}/missing-teacher.pth')
    base_out = run_tool('tools/test.py', tmp_path / 'base.py', ckpt, '--work-dir', tmp_path / 'b')
    assert miou(perc_out) == miou(base_out)
