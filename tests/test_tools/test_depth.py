"""The perceptual loss in mmseg's depth path: DepthEstimator + NYU format + loss_decode."""
import torch
from mmengine.config import Config

from conftest import ROOT, build, run_tool, scalars
from mmperc.testing import make_nyu

DEPTH = ROOT / 'configs/depth/depth_r18_vpdhead_perc_4xb8-25k_nyu-480x480.py'


def test_depth_config_trains_two_iterations_with_loss_perc(tmp_path):
    data_root = make_nyu(str(tmp_path), num_train=4, num_val=2, size=(96, 128))
    cfg = Config.fromfile(str(DEPTH))
    cfg.model.backbone.init_cfg = None
    cfg.model.data_preprocessor.size = (64, 64)
    for loader in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        cfg[loader].update(num_workers=0, persistent_workers=False)
        cfg[loader].dataset.data_root = data_root
    cfg.train_dataloader.batch_size = 2
    cfg.train_dataloader.dataset.pipeline[4].crop_size = (64, 64)
    cfg.val_dataloader.dataset.pipeline[1].scale = (128, 96)
    cfg.test_dataloader = cfg.val_dataloader
    cfg.val_evaluator.crop_type = None
    cfg.test_evaluator = cfg.val_evaluator
    cfg.train_cfg = dict(type='IterBasedTrainLoop', max_iters=2, val_interval=2)
    cfg.param_scheduler[0].end = 2
    cfg.default_hooks.checkpoint.interval = 2
    cfg.default_hooks.logger = dict(type='LoggerHook', interval=1)
    cfg.dump(str(tmp_path / 'depth.py'))
    run_tool('tools/train.py', tmp_path / 'depth.py', '--work-dir', tmp_path / 'work')
    logged = scalars(tmp_path / 'work')
    train = [s for s in logged if 'decode.loss_perc' in s]
    assert len(train) == 2 and all(0 < s['decode.loss_perc'] < 1e3 for s in train)
    assert all('decode.loss_silog' in s for s in train)
    assert any('rmse' in s for s in logged)  # mmseg's DepthMetric ran on the generated test split
    state_dict = torch.load(tmp_path / 'work' / 'iter_2.pth', weights_only=True)['state_dict']
    plain = Config.fromfile(str(tmp_path / 'depth.py')).model
    plain.decode_head.loss_decode = dict(type='SiLogLoss')
    build(plain).load_state_dict(state_dict, strict=True)
