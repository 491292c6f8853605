"""PerceptualCondInstMaskHead on CondInst-R50 (mmdet) with a generated COCO-format dataset."""
import pytest
import torch
from mmengine.config import Config
from mmengine.dataset import pseudo_collate
from mmengine.registry import DefaultScope

from conftest import ROOT, run_tool, scalars
from mmperc.testing import make_coco

PERC = ROOT / 'configs/perc/condinst_r50_fpn_perc_ms-poly-90k_coco-instance.py'
BASE = 'mmdet::condinst/condinst_r50_fpn_ms-poly-90k_coco_instance.py'
SIZE = 128


def quick_det_cfg(path, data_root: str) -> Config:
    """The real config with tiny pipelines, no pretrained download and 2 iterations."""
    from mmperc.models.segmentors import resolve_config_path
    cfg = Config.fromfile(str(path) if '::' not in str(path) else resolve_config_path(str(path)))
    cfg.model.backbone.init_cfg = None
    train = [dict(type='LoadImageFromFile'), dict(type='LoadAnnotations', with_bbox=True, with_mask=True),
             dict(type='Resize', scale=(SIZE, SIZE), keep_ratio=True), dict(type='PackDetInputs')]
    test = [dict(type='LoadImageFromFile'), dict(type='Resize', scale=(SIZE, SIZE), keep_ratio=True),
            dict(type='LoadAnnotations', with_bbox=True, with_mask=True),
            dict(type='PackDetInputs', meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape', 'scale_factor'))]
    for loader, split, pipeline in (('train_dataloader', 'train', train), ('val_dataloader', 'val', test),
                                    ('test_dataloader', 'val', test)):
        cfg[loader].update(batch_size=2, num_workers=0, persistent_workers=False)
        cfg[loader].dataset.update(data_root=data_root, ann_file=f'annotations/instances_{split}2017.json',
                                   data_prefix=dict(img=f'{split}2017/'), pipeline=pipeline)
    for evaluator in ('val_evaluator', 'test_evaluator'):
        cfg[evaluator].ann_file = data_root + 'annotations/instances_val2017.json'
    cfg.train_cfg = dict(type='IterBasedTrainLoop', max_iters=2, val_interval=100)
    cfg.param_scheduler = None
    cfg.default_hooks.checkpoint = dict(type='CheckpointHook', by_epoch=False, interval=2)
    cfg.default_hooks.logger = dict(type='LoggerHook', interval=1)
    return cfg


@pytest.fixture(scope='module')
def data_root(tmp_path_factory):
    return make_coco(str(tmp_path_factory.mktemp('coco')), num_train=4, num_val=2, size=(SIZE, SIZE))


def test_gradient_of_loss_perc_reaches_the_mask_head(data_root):
    from mmdet.registry import DATASETS, MODELS
    cfg = quick_det_cfg(PERC, data_root)
    with DefaultScope.overwrite_default_scope('mmdet'):
        torch.manual_seed(0)
        model = MODELS.build(cfg.model).train()
        dataset = DATASETS.build(cfg.train_dataloader.dataset)
    assert type(model.mask_head).__name__ == 'PerceptualCondInstMaskHead'
    data = model.data_preprocessor(pseudo_collate([dataset[0], dataset[1]]), True)
    losses = model.loss(data['inputs'], data['data_samples'])
    assert {'loss_mask', 'loss_perc', 'loss_cls', 'loss_bbox'} <= set(losses)
    assert torch.isfinite(losses['loss_perc']) and losses['loss_perc'] > 0
    params = [p for p in model.mask_head.parameters() if p.requires_grad]
    grads = torch.autograd.grad(losses['loss_perc'], params, allow_unused=True)
    assert any(g is not None and g.abs().sum() > 0 for g in grads)
    assert not [k for k in model.state_dict() if 'loss_perc' in k]


def test_train_two_iterations_and_load_into_base_config(data_root, tmp_path):
    cfg = quick_det_cfg(PERC, data_root)
    cfg.dump(str(tmp_path / 'condinst_perc.py'))
    run_tool('tools/train.py', tmp_path / 'condinst_perc.py', '--work-dir', tmp_path / 'work')
    logged = [s for s in scalars(tmp_path / 'work') if 'loss_perc' in s]
    assert len(logged) == 2 and all(0 < s['loss_perc'] < 1e3 for s in logged)
    state_dict = torch.load(tmp_path / 'work' / 'iter_2.pth', weights_only=True)['state_dict']
    from mmdet.registry import MODELS
    base = quick_det_cfg(BASE, data_root)
    with DefaultScope.overwrite_default_scope('mmdet'):
        MODELS.build(base.model).load_state_dict(state_dict, strict=True)


@pytest.mark.parametrize('empty', ['one', 'all'])
def test_images_without_instances_as_mmdet(data_root, empty):
    """An image without ground-truth instances adds 0 to both mask losses, as mmdet's own head does;
    with positives elsewhere in the batch the perceptual term keeps its gradient, and a batch
    without any gets the same value and gradients as mmdet's ``loss_mask`` (0, none)."""
    from mmdet.registry import DATASETS, MODELS
    cfg = quick_det_cfg(PERC, data_root)
    with DefaultScope.overwrite_default_scope('mmdet'):
        torch.manual_seed(0)
        model = MODELS.build(cfg.model).train()
        dataset = DATASETS.build(cfg.train_dataloader.dataset)
    data = model.data_preprocessor(pseudo_collate([dataset[0], dataset[1]]), True)
    samples = data['data_samples']
    for sample in samples[:1] if empty == 'one' else samples:
        sample.gt_instances = sample.gt_instances[torch.zeros(len(sample.gt_instances), dtype=torch.bool)]
    losses = model.loss(data['inputs'], samples)
    assert torch.is_tensor(losses['loss_perc']) and torch.isfinite(losses['loss_perc'])
    if empty == 'one':
        assert losses['loss_perc'] > 0 and losses['loss_perc'].requires_grad
    else:
        assert float(losses['loss_perc']) == 0 == float(losses['loss_mask'])
        assert losses['loss_perc'].requires_grad == losses['loss_mask'].requires_grad
