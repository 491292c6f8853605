"""Tests of the synthetic datasets: mmseg's own dataset classes and base configs load them."""
import filecmp
import os
import os.path as osp
from typing import Dict, List, Set

import numpy as np
import pytest
from mmengine.config import Config
from PIL import Image

from mmperc.testing import (BASE_CONFIGS, KINDS, MARKER_FILE, add_ignore_boundaries,
                            base_config_path, class_appearance, dataset_cfg_overrides,
                            make_ade20k, make_cityscapes, make_dataset, make_scene, make_voc,
                            point_cfg_to, set_pipeline_sizes, voc_palette)

NUM_TRAIN, NUM_VAL = 4, 2
CROP = (32, 32)  # (h, w), small instead of the configs' 512-pixel crops
SCALE = (128, 64)  # (w, h) bound of the resize, mmseg's convention
VALID: Dict[str, Set[int]] = {
    'cityscapes': set(range(19)),
    'ade20k': set(range(150)),
    'pascal_voc12': set(range(21)),
    'pascal_voc12_aug': set(range(21)),
}


@pytest.fixture(scope='module', autouse=True)
def mmseg_scope() -> None:
    """Register mmseg's datasets and transforms and make 'mmseg' the default scope."""
    from mmseg.utils import register_all_modules
    register_all_modules(init_default_scope=True)


@pytest.fixture(scope='module')
def roots(tmp_path_factory: pytest.TempPathFactory) -> Dict[str, str]:
    """One generated dataset of each kind."""
    return {
        kind: make_dataset(kind, str(tmp_path_factory.mktemp(kind)), NUM_TRAIN, NUM_VAL)
        for kind in KINDS
    }


def load_base_cfg(kind: str, data_root: str) -> Config:
    """mmseg's base dataset config of ``kind``, pointed at ``data_root``, with small sizes."""
    cfg = Config.fromfile(base_config_path(kind))
    point_cfg_to(cfg, kind, data_root)
    return set_pipeline_sizes(cfg, CROP, SCALE)


def build(dataset_cfg: dict):
    """Build a dataset config through mmseg's registry."""
    from mmseg.registry import DATASETS
    return DATASETS.build(dataset_cfg)


def files_under(root: str) -> List[str]:
    """Sorted relative paths of all files under ``root``."""
    return sorted(
        osp.relpath(osp.join(d, f), root) for d, _, names in os.walk(root) for f in names)


def read_index_png(path: str) -> np.ndarray:
    """Class indices of a label PNG ('L' or 'P')."""
    return np.asarray(Image.open(path))


# --------------------------------------------------------------------------- scenes


@pytest.mark.parametrize('num_classes,background,classes', [
    (19, (10, 2, 0), None),
    (151, (3, 2, 7), list(range(21))),
    (21, 0, list(range(1, 21))),
    (2, 0, None),
])
def test_make_scene_values(num_classes, background, classes):
    image, label = make_scene(np.random.default_rng(3), (40, 56), num_classes, classes,
                              background)
    assert image.shape == (40, 56, 3) and image.dtype == np.uint8
    assert label.shape == (40, 56) and label.dtype == np.uint8
    bands = {background} if isinstance(background, int) else set(background)
    allowed = bands | set(range(num_classes) if classes is None else classes)
    assert set(np.unique(label)) <= allowed
    assert len(np.unique(label)) >= 2  # there is structure: at least one boundary


def test_make_scene_deterministic():
    first = make_scene(np.random.default_rng(7), (32, 48), 19)
    again = make_scene(np.random.default_rng(7), (32, 48), 19)
    other = make_scene(np.random.default_rng(8), (32, 48), 19)
    assert all(np.array_equal(a, b) for a, b in zip(first, again))
    assert not np.array_equal(first[0], other[0])
    assert not np.array_equal(first[1], other[1])


def test_class_appearance_is_learnable():
    """Local mean colours of one scene classify another scene's pixels by nearest mean."""
    import cv2

    def local_colours(seed: int):
        image, label = make_scene(np.random.default_rng(seed), (128, 128), 19)
        smooth = cv2.blur(image.astype(np.float32), (11, 11))
        return smooth.reshape(-1, 3), label.reshape(-1)

    train_x, train_y = local_colours(0)
    test_x, test_y = local_colours(1)
    classes = np.intersect1d(np.unique(train_y), np.unique(test_y))
    means = np.stack([train_x[train_y == c].mean(0) for c in classes])
    keep = np.isin(test_y, classes)
    dist = ((test_x[keep, None, :] - means[None]) ** 2).sum(-1)
    accuracy = (classes[dist.argmin(1)] == test_y[keep]).mean()
    assert accuracy > 0.6
    assert class_appearance(3) == class_appearance(3)
    assert class_appearance(3)[0] != class_appearance(4)[0]  # neighbours differ in texture


@pytest.mark.parametrize('kwargs', [
    dict(size=(0, 8)),
    dict(num_classes=256),
    dict(num_classes=0),
    dict(classes=[19]),
    dict(classes=[]),
    dict(background=(0, 25)),
    dict(num_shapes=(4, 2)),
    dict(ignore_index=3),
])
def test_make_scene_rejects_bad_arguments(kwargs):
    args = dict(size=(16, 16), num_classes=19)
    args.update(kwargs)
    with pytest.raises(ValueError):
        make_scene(np.random.default_rng(0), **args)


@pytest.mark.parametrize('width,ignored_columns', [(0, 0), (1, 1), (3, 3)])
def test_add_ignore_boundaries(width, ignored_columns):
    label = np.zeros((6, 10), np.uint8)
    label[:, 5:] = 4
    out = add_ignore_boundaries(label, width)
    assert (out == 255).sum() == 6 * ignored_columns
    assert set(np.unique(out)) <= {0, 4, 255}
    assert (label == 255).sum() == 0  # the input is not modified


# --------------------------------------------------------------------------- datasets


@pytest.mark.parametrize('kind', KINDS)
def test_mmseg_loads_generated_dataset(kind, roots):
    cfg = load_base_cfg(kind, roots[kind])
    train = build(cfg.train_dataloader.dataset)
    val = build(cfg.val_dataloader.dataset)
    num_aug = NUM_TRAIN if kind == 'pascal_voc12_aug' else 0
    assert len(train) == NUM_TRAIN + num_aug
    assert len(val) == NUM_VAL

    sample = train[0]
    assert tuple(sample['inputs'].shape) == (3, *CROP)
    gt = sample['data_samples'].gt_sem_seg.data.numpy()
    assert gt.shape == (1, *CROP)
    assert set(np.unique(gt)) <= VALID[kind] | {255}

    # Validation: no crop, the label reaches the model exactly as in the file (ADE20K: reduced).
    sample = val[0]
    gt = sample['data_samples'].gt_sem_seg.data.numpy()[0]
    raw = read_index_png(val.get_data_info(0)['seg_map_path'])
    expected = np.where(raw == 0, 255, raw - 1) if kind == 'ade20k' else raw
    np.testing.assert_array_equal(gt, expected)
    assert set(np.unique(gt)) <= VALID[kind] | {255}
    assert len(set(np.unique(gt)) - {255}) >= 2


def test_ade20k_reduce_zero_label(roots):
    val = build(load_base_cfg('ade20k', roots['ade20k']).val_dataloader.dataset)
    raws = [read_index_png(val.get_data_info(i)['seg_map_path']) for i in range(len(val))]
    raw_values = set(np.unique(np.concatenate([r.ravel() for r in raws])))
    assert 0 in raw_values and raw_values <= set(range(21))  # "other" plus classes 1..20
    reduced = set()
    for i in range(len(val)):
        reduced |= set(np.unique(val[i]['data_samples'].gt_sem_seg.data.numpy()))
    assert reduced == {v - 1 for v in raw_values if v} | {255}
    assert max(reduced - {255}) < 149


def test_voc_layout(roots):
    data_root = roots['pascal_voc12_aug']
    sets = osp.join(data_root, 'ImageSets', 'Segmentation')
    names = {
        split: open(osp.join(sets, f'{split}.txt')).read().split()
        for split in ('train', 'val', 'aug', 'trainaug')
    }
    assert [len(names[s]) for s in ('train', 'val', 'aug')] == [NUM_TRAIN, NUM_VAL, NUM_TRAIN]
    assert names['trainaug'] == names['train'] + names['aug']
    assert not set(names['val']) & set(names['trainaug'])
    assert not set(names['train']) & set(names['aug'])
    for name in names['train']:
        official = Image.open(osp.join(data_root, 'SegmentationClass', f'{name}.png'))
        aug = Image.open(osp.join(data_root, 'SegmentationClassAug', f'{name}.png'))
        assert official.mode == 'P' and official.getpalette()[:768] == voc_palette()
        assert aug.mode == 'L'
        official, aug = np.asarray(official), np.asarray(aug)
        assert 255 in official and 255 not in aug  # boundaries only in the official labels
        keep = official != 255
        np.testing.assert_array_equal(official[keep], aug[keep])
    for name in names['val']:
        assert osp.isfile(osp.join(data_root, 'SegmentationClass', f'{name}.png'))
    assert voc_palette()[3:6] == [128, 0, 0] and voc_palette()[-3:] == [224, 224, 192]


def test_voc_aug_concat_dataset(roots):
    cfg = load_base_cfg('pascal_voc12_aug', roots['pascal_voc12_aug'])
    assert cfg.train_dataloader.dataset.type == 'ConcatDataset'
    train = build(cfg.train_dataloader.dataset)
    assert [len(d) for d in train.datasets] == [NUM_TRAIN, NUM_TRAIN]
    assert [d.data_prefix['seg_map_path'] for d in train.datasets] == [
        osp.join(roots['pascal_voc12_aug'], 'SegmentationClass'),
        osp.join(roots['pascal_voc12_aug'], 'SegmentationClassAug')
    ]
    # The last sample comes from the aug dataset and has no boundary pixels.
    gt = train[len(train) - 1]['data_samples'].gt_sem_seg.data.numpy()
    assert set(np.unique(gt)) <= VALID['pascal_voc12_aug'] | {255}


def split_stems(kind: str, data_root: str) -> Dict[str, Set[str]]:
    """Image stems of the training and validation splits."""
    if kind.startswith('pascal_voc12'):
        sets = osp.join(data_root, 'ImageSets', 'Segmentation')
        return {
            split: set(open(osp.join(sets, f'{split}.txt')).read().split())
            for split in ('trainaug', 'val')
        }
    folders = {'cityscapes': ('leftImg8bit/train', 'leftImg8bit/val'),
               'ade20k': ('images/training', 'images/validation')}[kind]
    return {
        folder: {osp.basename(f).split('.')[0] for f in files_under(osp.join(data_root, folder))}
        for folder in folders
    }


@pytest.mark.parametrize('kind', KINDS)
def test_train_and_val_do_not_overlap(kind, roots):
    stems = list(split_stems(kind, roots[kind]).values())
    assert len(stems) == 2 and all(stems)
    assert not stems[0] & stems[1]


@pytest.mark.parametrize('kind', KINDS)
def test_generation_is_deterministic(kind, tmp_path):
    first = make_dataset(kind, str(tmp_path / 'a'), 2, 1, seed=5)
    again = make_dataset(kind, str(tmp_path / 'b'), 2, 1, seed=5)
    other = make_dataset(kind, str(tmp_path / 'c'), 2, 1, seed=6)
    names = files_under(first)
    assert names == files_under(again) == files_under(other)
    images = [n for n in names if n.endswith(('.jpg', '_leftImg8bit.png'))]
    assert len(images) == {'pascal_voc12_aug': 5}.get(kind, 3)
    match, mismatch, errors = filecmp.cmpfiles(first, again, names, shallow=False)
    assert match == names and not mismatch and not errors
    match, mismatch, errors = filecmp.cmpfiles(first, other, images, shallow=False)
    assert mismatch == images


def test_more_images_keep_the_first_ones(tmp_path):
    small = make_cityscapes(str(tmp_path / 'small'), 1, 1, seed=2)
    big = make_cityscapes(str(tmp_path / 'big'), 3, 2, seed=2)
    names = [n for n in files_under(small) if n != MARKER_FILE]
    assert len(names) == 4
    match, _, _ = filecmp.cmpfiles(small, big, names, shallow=False)
    assert match == names


def test_existing_root_is_reused_or_protected(tmp_path):
    root = str(tmp_path)
    data_root = make_ade20k(root, 1, 1, size=(16, 16))
    stamp = os.stat(osp.join(data_root, MARKER_FILE)).st_mtime_ns
    assert make_ade20k(root, 1, 1, size=(16, 16)) == data_root  # cached, nothing rewritten
    assert os.stat(osp.join(data_root, MARKER_FILE)).st_mtime_ns == stamp
    with pytest.raises(FileExistsError):
        make_ade20k(root, 2, 1, size=(16, 16))  # other parameters: never overwritten
    os.makedirs(tmp_path / 'cityscapes' / 'leftImg8bit')  # e.g. real data
    with pytest.raises(FileExistsError):
        make_cityscapes(root, 1, 1)


def test_progress_bar(tmp_path, capsys):
    make_voc(str(tmp_path / 'quiet'), 1, 1, 1, size=(16, 16))
    assert capsys.readouterr().out == ''
    make_voc(str(tmp_path / 'loud'), 1, 1, 1, size=(16, 16), progress=True)
    assert '3/3' in capsys.readouterr().out


@pytest.mark.parametrize('call', [
    lambda root: make_dataset('coco', root),
    lambda root: make_cityscapes(root, num_train=-1),
    lambda root: make_voc(root, num_aug=-1),
    lambda root: make_voc(root, ignore_width=-1),
])
def test_generators_reject_bad_arguments(call, tmp_path):
    with pytest.raises(ValueError):
        call(str(tmp_path))


# --------------------------------------------------------------------------- configs


def leaf_roots(cfg: Config) -> List[str]:
    """``data_root`` of every dataset in the dataloaders, wrappers unpacked."""
    found = []
    for name in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        dataset = cfg[name]['dataset']
        found += [d['data_root'] for d in dataset.get('datasets', [dataset])]
    return found


@pytest.mark.parametrize('kind', KINDS)
def test_overrides_agree_with_point_cfg_to(kind):
    merged = Config.fromfile(base_config_path(kind))
    merged.merge_from_dict(dataset_cfg_overrides(kind, '/tmp/x'))
    pointed = point_cfg_to(Config.fromfile(base_config_path(kind)), kind,
                           '/tmp/x')
    expected = 4 if kind == 'pascal_voc12_aug' else 3
    assert leaf_roots(merged) == leaf_roots(pointed) == ['/tmp/x'] * expected
    assert pointed.data_root == '/tmp/x'


@pytest.mark.parametrize('kind', KINDS)
def test_base_config_path(kind):
    path = base_config_path(kind)
    assert osp.isfile(path)
    assert path.endswith(osp.join('.mim', 'configs', BASE_CONFIGS[kind].split('::')[1]))


def test_point_cfg_to_checks_kind():
    cfg = Config.fromfile(base_config_path('ade20k'))
    with pytest.raises(ValueError, match='CityscapesDataset'):
        point_cfg_to(cfg, 'cityscapes', '/tmp/x')
    with pytest.raises(ValueError):
        point_cfg_to(cfg, 'coco', '/tmp/x')
    with pytest.raises(ValueError):
        point_cfg_to(Config(dict(model=dict(type='X'))), 'ade20k', '/tmp/x')


def test_set_pipeline_sizes():
    cfg = Config.fromfile(base_config_path('pascal_voc12_aug'))
    cfg.model = dict(data_preprocessor=dict(size=(512, 512)))
    set_pipeline_sizes(cfg, (24, 40), (80, 24))
    for dataset in cfg.train_dataloader.dataset.datasets:
        sizes = {t['type']: t.get('scale', t.get('crop_size', t.get('size')))
                 for t in dataset.pipeline}
        assert sizes['RandomResize'] == (80, 24)
        assert sizes['RandomCrop'] == sizes['Pad'] == (24, 40)
    resize = [t for t in cfg.val_dataloader.dataset.pipeline if t['type'] == 'Resize']
    assert resize[0]['scale'] == (80, 24)
    assert cfg.model.data_preprocessor.size == (24, 40)
