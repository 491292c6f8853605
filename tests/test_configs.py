"""Every config loads, builds, and its file name agrees with its content."""
import copy
import functools
import itertools
import os.path as osp
import re
from glob import glob
from typing import Any, Dict, List, Tuple

import pytest
import torch
import yaml
from mmengine.config import Config

import mmperc  # noqa: F401  (registers PerceptualDistillSegmentor and RandomPerceptualLoss)
from mmperc.models.segmentors import resolve_config_path
from mmperc.utils import sync_bn_to_bn
from mmseg.registry import MODELS
from mmseg.utils import register_all_modules

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
# the paper's segmentation configs; demo, CondInst and depth configs have tests of their own
CONFIGS = sorted(p for p in glob(osp.join(REPO, 'configs', '**', '*.py'), recursive=True)
                 if not osp.relpath(p, REPO).startswith(('configs/demo', 'configs/_base_'))
                 and not osp.basename(p).startswith(('condinst', 'depth')))
PERC_CONFIGS = [path for path in CONFIGS if '_perc-' in osp.basename(path)]
R18_BASELINES = [path for path in CONFIGS if osp.basename(path).startswith('pspnet_r18-d8_4x')]

# mmseg's pattern: model_backbone_algo-teacher_gpusxbatch-schedule_dataset-crop.
NAME = re.compile(r'^(?P<model>[a-z0-9]+)_(?P<backbone>r\d+|hr\d+s?)(?P<d8>-d8)?'
                  r'(?:_perc-(?P<teacher>r101|hr48))?'
                  r'_(?P<gpus>\d+)xb(?P<batch>\d+)-(?P<iters>\d+)k'
                  r'_(?P<dataset>cityscapes|ade20k|voc12aug)-(?P<h>\d+)x(?P<w>\d+)\.py$')
# Dataset class, classes, total batch of the paper (Sec. 4.2), random crop of the paper.
DATASETS = {
    'cityscapes': ('CityscapesDataset', 19, 8, (769, 769)),
    'ade20k': ('ADE20KDataset', 150, 16, (512, 512)),
    'voc12aug': ('PascalVOCDataset', 21, 16, (512, 512)),
}
PAPER_ITERS = {'cityscapes': 40000, 'ade20k': 80000, 'voc12aug': 20000}
# ImageNet weights of each backbone, as in mmseg.
PRETRAINED = {
    'r18': 'open-mmlab://resnet18_v1c',
    'r50': 'open-mmlab://resnet50_v1c',
    'r101': 'open-mmlab://resnet101_v1c',
    'hr18s': 'open-mmlab://msra/hrnetv2_w18_small',
    'hr48': 'open-mmlab://msra/hrnetv2_w48',
}
# HRNet: (stage4 branch widths, stage2 blocks per branch); W18-small has 2 blocks, not 4.
HRNETS = {'hr18s': ((18, 36, 72, 144), (2, 2)), 'hr48': ((48, 96, 192, 384), (4, 4))}
# mmseg config folder of each model in the file name.
MMSEG_DIRS = {'pspnet': 'pspnet', 'fcn': 'hrnet', 'deeplabv3plus': 'deeplabv3plus'}
# The nine rows of Table 6: students x datasets.
STUDENTS = ('pspnet_r18', 'fcn_hr18s', 'deeplabv3plus_r50')
PERC_KEYS = ('type', 'teacher', 'loss_perc', 'loss_kd')
# What mmseg's PSPNet R18 configs change in their R50 ones, e.g. in MMSEG_R18.
MMSEG_R18 = 'mmseg::pspnet/pspnet_r18-d8_4xb2-80k_cityscapes-769x769.py'
R18_SWITCH = (('pretrained', ), ('backbone', 'depth'), ('decode_head', 'in_channels'),
              ('decode_head', 'channels'), ('auxiliary_head', 'in_channels'),
              ('auxiliary_head', 'channels'))


@pytest.fixture(scope='module', autouse=True)
def mmseg_modules() -> None:
    register_all_modules()


def parse(path: str) -> Dict[str, str]:
    match = NAME.match(osp.basename(path))
    assert match, f'{osp.basename(path)} does not follow mmseg\'s config name pattern'
    return match.groupdict()


@functools.lru_cache(maxsize=None)
def load(path: str) -> Config:
    """Load a config once per session; callers must not mutate it."""
    return Config.fromfile(path)


def strip_scope(obj: Any) -> Any:
    """Drop the ``_scope_`` keys mmengine adds to configs inherited with ``mmseg::``."""
    if isinstance(obj, dict):
        return {k: strip_scope(v) for k, v in obj.items() if k != '_scope_'}
    if isinstance(obj, (list, tuple)):
        return type(obj)(strip_scope(v) for v in obj)
    return obj


def train_datasets(cfg: Config) -> List[dict]:
    dataset = cfg.train_dataloader.dataset
    return list(dataset.datasets) if dataset.type == 'ConcatDataset' else [dataset]


def random_crop(cfg: Config) -> Tuple[int, int]:
    crops = {
        tuple(step.crop_size)
        for dataset in train_datasets(cfg) for step in dataset.pipeline if step.type == 'RandomCrop'
    }
    assert len(crops) == 1, f'expected one RandomCrop size, got {crops}'
    return crops.pop()


def check_backbone(model_cfg: dict, token: str) -> None:
    """The backbone (and its ImageNet weights) is the one the name says."""
    backbone = model_cfg['backbone']
    if token.startswith('r'):
        assert backbone['type'] == 'ResNetV1c'
        assert backbone['depth'] == int(token[1:])
    else:
        widths, blocks = HRNETS[token]
        assert backbone['type'] == 'HRNet'
        assert tuple(backbone['extra']['stage4']['num_channels']) == widths
        assert tuple(backbone['extra']['stage2']['num_blocks']) == blocks
        assert tuple(model_cfg['decode_head']['in_channels']) == widths
    assert model_cfg['pretrained'] == PRETRAINED[token]


def pop_key(tree: dict, keys: Tuple[str, ...]) -> Any:
    """Remove and return ``tree[keys[0]][keys[1]]...``."""
    *parents, last = keys
    for key in parents:
        tree = tree[key]
    return tree.pop(last)


def baseline_path(path: str) -> str:
    """The config a ``_perc`` config extends: the same name without ``_perc-<teacher>``."""
    name = re.sub(r'_perc-[a-z0-9]+', '', osp.basename(path))
    folder = MMSEG_DIRS[parse(path)['model']]
    local = osp.join(REPO, 'configs', folder, name)
    return local if osp.isfile(local) else resolve_config_path(f'mmseg::{folder}/{name}')


def build_student(cfg: Config) -> torch.nn.Module:
    """Build the model on CPU without downloading anything (no ImageNet weights, no teacher)."""
    model_cfg = copy.deepcopy(cfg.model)
    model_cfg.pretrained = None
    model_cfg.backbone.pop('init_cfg', None)
    sync_bn_to_bn(model_cfg)
    return MODELS.build(model_cfg)


@pytest.mark.parametrize('path', CONFIGS, ids=osp.basename)
def test_name_agrees_with_content(path: str) -> None:
    """Backbone, gpus x batch, schedule, dataset and crop are the name's and the paper's."""
    fields = parse(path)
    cfg = load(path)
    dataset_type, num_classes, paper_batch, paper_crop = DATASETS[fields['dataset']]
    check_backbone(cfg.model, fields['backbone'])
    # gpus x batch: per-GPU batch in the config; the total batch is the paper's.
    assert cfg.train_dataloader.batch_size == int(fields['batch'])
    assert int(fields['gpus']) * int(fields['batch']) == paper_batch
    # schedule: SGD lr 0.01, poly 0.9 decaying to the last iteration.
    max_iters = int(fields['iters']) * 1000
    assert cfg.train_cfg.max_iters == max_iters == PAPER_ITERS[fields['dataset']]
    assert cfg.optim_wrapper.optimizer.type == 'SGD'
    assert cfg.optim_wrapper.optimizer.lr == pytest.approx(0.01)
    (poly, ) = [s for s in cfg.param_scheduler if s.type == 'PolyLR']
    assert (poly.begin, poly.end, poly.power) == pytest.approx((0, max_iters, 0.9))
    # dataset and classes
    datasets = train_datasets(cfg)
    assert {d.type for d in datasets} == {dataset_type}
    if fields['dataset'] == 'voc12aug':
        assert len(datasets) == 2 and any('aug' in d.ann_file for d in datasets)
    assert cfg.model.decode_head.num_classes == num_classes
    if cfg.model.get('auxiliary_head'):
        assert cfg.model.auxiliary_head.num_classes == num_classes
    # crop (h x w): the train crop and the padded input size.
    crop = (int(fields['h']), int(fields['w']))
    assert random_crop(cfg) == crop
    assert tuple(cfg.model.data_preprocessor.size) == crop
    if crop != paper_crop:  # only HRNet on Cityscapes: mmseg has no 769x769 HRNet
        assert fields['model'] == 'fcn' and fields['dataset'] == 'cityscapes'


@pytest.mark.parametrize('path', CONFIGS, ids=osp.basename)
def test_model_builds_and_predicts_num_classes(path: str) -> None:
    """The model builds from the registry without the teacher and outputs num_classes maps."""
    fields = parse(path)
    cfg = load(path)
    num_classes = DATASETS[fields['dataset']][1]
    model = build_student(cfg).eval()
    if fields['teacher']:
        assert type(model).__name__ == 'PerceptualDistillSegmentor'
        assert model._teacher is None, 'the teacher must be built only for training'
        assert model.loss_perc.loss_weight == pytest.approx(0.1)
    else:
        assert type(model).__name__ == 'EncoderDecoder'
    # A tiny forward checks the channel plumbing (e.g. the R18 head widths).
    with torch.no_grad():
        logits = model._forward(torch.zeros(1, 3, 64, 64))
    assert logits.shape[:2] == (1, num_classes)


@pytest.mark.parametrize('path', R18_BASELINES, ids=osp.basename)
def test_pspnet_r18_baseline_is_mmseg_r50_with_mmseg_r18_switch(path: str) -> None:
    """A local R18 baseline is mmseg's R50 config with exactly the edits of mmseg's R18 config."""
    mine = strip_scope(load(path).to_dict())
    r50_name = osp.basename(path).replace('_r18-', '_r50-')
    r50 = strip_scope(load(resolve_config_path(f'mmseg::pspnet/{r50_name}')).to_dict())
    r18 = strip_scope(load(resolve_config_path(MMSEG_R18)).to_dict())
    for keys in R18_SWITCH:
        r50_value = pop_key(r50['model'], keys)
        assert pop_key(mine['model'], keys) == pop_key(r18['model'], keys) != r50_value, keys
    # checkpoints that load with weights_only=True (--resume) under mmseg's own train script too
    assert mine.pop('custom_imports') == dict(imports=['mmperc'], allow_failed_imports=False)
    assert mine.pop('custom_hooks') == [dict(type='SafeCheckpointHook')]
    assert mine == r50


@pytest.mark.parametrize('path', PERC_CONFIGS, ids=osp.basename)
def test_perc_config_adds_only_the_teacher(path: str) -> None:
    """A ``_perc`` config is its baseline plus mmperc (and its checkpoint hook), the segmentor
    type and the teacher."""
    cfg = load(path)
    assert cfg.custom_imports == dict(imports=['mmperc'], allow_failed_imports=False)
    # checkpoints that load with weights_only=True (--resume) under mmseg's own train script too
    assert cfg.custom_hooks == [dict(type='SafeCheckpointHook')]
    assert cfg.model.type == 'PerceptualDistillSegmentor'
    # lambda = 0.1 (Eq. 2) and the paper's efficient loss network (Table 2), chosen for its cost
    assert cfg.model.loss_perc == dict(type='RandomPerceptualLoss', num_convs=(1, 1, 1, 1, 1), loss_weight=0.1)
    assert set(cfg.model.teacher) == {'config', 'checkpoint'}
    base = load(baseline_path(path))
    assert base.model.type == 'EncoderDecoder'
    mine = strip_scope(cfg.to_dict())
    theirs = strip_scope(base.to_dict())
    for tree in (mine, theirs):  # mmperc's own baselines name them too
        tree.pop('custom_imports', None)
        tree.pop('custom_hooks', None)
    for key in PERC_KEYS:
        mine['model'].pop(key, None)
        theirs['model'].pop(key, None)
    assert mine == theirs


@pytest.mark.parametrize('path', PERC_CONFIGS, ids=osp.basename)
def test_teacher_matches_student(path: str) -> None:
    """The teacher is the name's backbone, trained with the same recipe on the same classes."""
    fields = parse(path)
    cfg = load(path)
    teacher_path = resolve_config_path(cfg.model.teacher.config)
    teacher = load(teacher_path)
    teacher_fields = parse(teacher_path)
    assert fields['teacher'] in osp.basename(teacher_path)
    check_backbone(teacher.model, fields['teacher'])
    assert teacher_fields['model'] == fields['model']
    for key in ('gpus', 'batch', 'iters', 'dataset', 'h', 'w'):
        assert teacher_fields[key] == fields[key], key
    assert teacher.model.decode_head.num_classes == cfg.model.decode_head.num_classes
    # The teacher sees the student's normalised inputs.
    for key in ('mean', 'std', 'bgr_to_rgb'):
        assert teacher.model.data_preprocessor[key] == cfg.model.data_preprocessor[key]


@pytest.mark.parametrize('path', PERC_CONFIGS, ids=osp.basename)
def test_teacher_checkpoint_is_the_model_zoo_one(path: str) -> None:
    """An https ``.pth`` listed in mmseg's metafile, named after the teacher config."""
    teacher = load(path).model.teacher
    url = teacher.checkpoint
    assert url.startswith('https://') and url.endswith('.pth')
    teacher_path = resolve_config_path(teacher.config)
    t = parse(teacher_path)
    # mmseg 0.x checkpoint names: model_backbone_crop_schedule_dataset_date-hash.pth
    model = f"{t['model']}_{t['backbone']}{t['d8'] or ''}"
    assert osp.basename(url).startswith(f"{model}_{t['h']}x{t['w']}_{t['iters']}k_{t['dataset']}_")
    with open(osp.join(osp.dirname(teacher_path), 'metafile.yaml')) as f:
        weights = {m.get('Weights') for m in yaml.safe_load(f)['Models']}
    assert url in weights


def test_the_nine_paper_configs_exist() -> None:
    """Table 6: three students x three datasets."""
    rows = set()
    for path in PERC_CONFIGS:
        fields = parse(path)
        rows.add((f"{fields['model']}_{fields['backbone']}", fields['dataset']))
    assert rows == set(itertools.product(STUDENTS, DATASETS))
    assert len(PERC_CONFIGS) == 9
