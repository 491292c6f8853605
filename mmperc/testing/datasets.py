"""Tiny Cityscapes, ADE20K and Pascal VOC 2012 (+aug) datasets in their real on-disk layouts.

The files are laid out exactly as mmseg 1.x's dataset classes and ``_base_/datasets``
configs expect, so those load them unchanged. With ``root='data'`` each generator writes to
the default ``data_root`` of mmseg's base config (``data/cityscapes``,
``data/ade/ADEChallengeData2016``, ``data/VOCdevkit/VOC2012``). Scene ``i`` of a split
depends only on ``(seed, dataset, split, i)``, so output is byte-for-byte reproducible and
adding images does not change the existing ones.
"""
import json
import os
import os.path as osp
import sys
from typing import Dict, Iterator, List, Optional, Sequence, Tuple, Union

import numpy as np
from mmengine.utils import ProgressBar
from PIL import Image

from .scenes import add_ignore_boundaries, make_scene

__all__ = [
    'KINDS', 'MARKER_FILE', 'voc_palette', 'make_cityscapes', 'make_ade20k', 'make_voc',
    'make_dataset'
]

#: Dataset kinds, named after mmseg's ``configs/_base_/datasets/<kind>.py``.
KINDS = ('cityscapes', 'ade20k', 'pascal_voc12', 'pascal_voc12_aug')
#: Written last in each generated data root; records how it was generated.
MARKER_FILE = 'mmperc_synthetic.json'

_FORMAT_VERSION = 1
_CITIES = {'train': ('aachen', 'bochum', 'bremen'), 'val': ('frankfurt', 'lindau', 'munster')}
_SPLIT_CODES = {'train': 0, 'val': 1, 'aug': 2}
_DATASET_CODES = {'cityscapes': 0, 'ade20k': 1, 'voc': 2}

Size = Tuple[int, int]


def voc_palette() -> List[int]:
    """The Pascal VOC colour map (768 ints) used by ``SegmentationClass`` PNGs.

    Returns:
        list[int]: ``[r0, g0, b0, r1, ...]`` for indices 0..255; 255 is (224, 224, 192).
    """
    palette = []
    for index in range(256):
        r = g = b = 0
        code = index
        for shift in range(7, -1, -1):
            r |= ((code >> 0) & 1) << shift
            g |= ((code >> 1) & 1) << shift
            b |= ((code >> 2) & 1) << shift
            code >>= 3
        palette += [r, g, b]
    return palette


def _check_counts(**counts: int) -> None:
    """Raise ``ValueError`` for a negative image count."""
    for name, count in counts.items():
        if count < 0:
            raise ValueError(f'{name} must be >= 0, but got {count}')


def _prepare_root(data_root: str, params: dict) -> bool:
    """Check ``data_root`` before writing.

    Returns:
        bool: True if ``data_root`` already holds a dataset generated with ``params`` (so
        nothing needs to be written).

    Raises:
        FileExistsError: ``data_root`` is non-empty and was not generated with ``params``
            (real data, another configuration, or an interrupted run): it is never touched.
    """
    marker = osp.join(data_root, MARKER_FILE)
    if osp.isfile(marker):
        with open(marker) as f:
            if json.load(f) == params:
                return True
    if osp.isdir(data_root) and os.listdir(data_root):
        raise FileExistsError(
            f'{data_root} is not empty and holds no synthetic dataset generated with {params}; '
            'remove it or choose another root')
    os.makedirs(data_root, exist_ok=True)
    return False


def _write_marker(data_root: str, params: dict) -> None:
    """Record the generation parameters; written last, so it marks a complete dataset."""
    with open(osp.join(data_root, MARKER_FILE), 'w') as f:
        json.dump(params, f, indent=1, sort_keys=True)


def _scenes(jobs: Sequence[Tuple[str, int]], dataset: str, seed: int, size: Size,
            scene_args: dict,
            progress: bool) -> Iterator[Tuple[str, int, np.ndarray, np.ndarray]]:
    """Yield ``(split, index, image, label)`` for each job, with an optional progress bar."""
    bar = ProgressBar(len(jobs), file=sys.stdout) if progress and jobs else None
    for split, index in jobs:
        rng = np.random.default_rng(
            [seed, _DATASET_CODES[dataset], _SPLIT_CODES[split], index])
        yield (split, index, *make_scene(rng, size, **scene_args))
        if bar is not None:
            bar.update()
    if bar is not None:
        bar.file.write('\n')


def _save(path: str, array: np.ndarray, palette: Optional[List[int]] = None) -> None:
    """Save an RGB image (JPEG quality 95 or PNG) or an index map (PNG, 'P' with a palette)."""
    os.makedirs(osp.dirname(path), exist_ok=True)
    image = Image.fromarray(array)
    if palette is not None:
        image.putpalette(palette)
    if path.endswith('.jpg'):
        image.save(path, quality=95)
    else:
        image.save(path)


def _params(kind: str, **values: Union[int, float, Sequence, None]) -> dict:
    """JSON-normalised generation parameters (tuples become lists)."""
    return json.loads(
        json.dumps(dict(kind=kind, format_version=_FORMAT_VERSION, **values), default=int))


def make_cityscapes(root: str,
                    num_train: int = 4,
                    num_val: int = 2,
                    size: Size = (64, 128),
                    seed: int = 0,
                    classes: Optional[Sequence[int]] = None,
                    background: Sequence[int] = (10, 2, 0),
                    num_shapes: Tuple[int, int] = (3, 8),
                    noise_std: float = 8.0,
                    ignore_width: int = 0,
                    progress: bool = False) -> str:
    """Generate a Cityscapes-format dataset (19 train ids, 255 = ignore).

    Writes ``leftImg8bit/{train,val}/<city>/<city>_<i>_000019_leftImg8bit.png`` and
    ``gtFine/{train,val}/<city>/..._gtFine_labelTrainIds.png`` (the files that mmseg's
    ``tools/dataset_converters/cityscapes.py`` produces and ``CityscapesDataset`` reads)
    under ``<root>/cityscapes``. Train and val use different cities.

    Args:
        root (str): Parent folder; the dataset goes to ``<root>/cityscapes``.
        num_train (int): Number of training images. Defaults to 4.
        num_val (int): Number of validation images. Defaults to 2.
        size (tuple[int, int]): ``(height, width)``. Defaults to (64, 128).
        seed (int): Random seed. Defaults to 0.
        classes (Sequence[int], optional): Train ids of the shapes. Defaults to all of
            0..18 except the background ones.
        background (Sequence[int]): Train ids of the background bands from top to bottom.
            Defaults to (10, 2, 0): sky, building, road.
        num_shapes (tuple[int, int]): Inclusive range of shapes per image. Defaults to (3, 8).
        noise_std (float): Pixel noise standard deviation. Defaults to 8.0.
        ignore_width (int): Width of 255-valued class boundaries; 0 for none. Defaults to 0.
        progress (bool): Show a progress bar. Defaults to False.

    Returns:
        str: The data root, ``<root>/cityscapes``.

    Raises:
        FileExistsError: The data root is non-empty and not this synthetic dataset.
    """
    _check_counts(num_train=num_train, num_val=num_val)
    data_root = osp.join(root, 'cityscapes')
    params = _params('cityscapes', num_train=num_train, num_val=num_val, size=size, seed=seed,
                     classes=classes, background=background, num_shapes=num_shapes,
                     noise_std=noise_std, ignore_width=ignore_width)
    if _prepare_root(data_root, params):
        return data_root
    jobs = [('train', i) for i in range(num_train)] + [('val', i) for i in range(num_val)]
    scene_args = dict(num_classes=19, classes=classes, background=background,
                      num_shapes=num_shapes, noise_std=noise_std, ignore_width=ignore_width)
    for split, i, image, label in _scenes(jobs, 'cityscapes', seed, size, scene_args, progress):
        cities = _CITIES[split]
        city = cities[i % len(cities)]
        stem = f'{city}_{i:06d}_000019'
        _save(osp.join(data_root, 'leftImg8bit', split, city, f'{stem}_leftImg8bit.png'), image)
        _save(osp.join(data_root, 'gtFine', split, city, f'{stem}_gtFine_labelTrainIds.png'),
              label)
    _write_marker(data_root, params)
    return data_root


def make_ade20k(root: str,
                num_train: int = 4,
                num_val: int = 2,
                size: Size = (96, 96),
                seed: int = 0,
                classes: Optional[Sequence[int]] = tuple(range(21)),
                background: Sequence[int] = (3, 2, 7),
                num_shapes: Tuple[int, int] = (3, 8),
                noise_std: float = 8.0,
                progress: bool = False) -> str:
    """Generate an ADE20K-format dataset (labels 1..150, 0 = "other").

    Writes ``images/{training,validation}/ADE_{train,val}_<i>.jpg`` and
    ``annotations/{training,validation}/ADE_{train,val}_<i>.png`` under
    ``<root>/ade/ADEChallengeData2016``. ``ADE20KDataset`` reduces the labels with
    ``reduce_zero_label=True``: 0 becomes 255 (ignored) and ``c`` becomes ``c - 1``.

    Args:
        root (str): Parent folder; the dataset goes to ``<root>/ade/ADEChallengeData2016``.
        num_train (int): Number of training images. Defaults to 4.
        num_val (int): Number of validation images. Defaults to 2.
        size (tuple[int, int]): ``(height, width)``. Defaults to (96, 96).
        seed (int): Random seed. Defaults to 0.
        classes (Sequence[int], optional): Labels of the shapes, in 0..150; None for all but
            the background ones. Defaults to 0..20: "other" and the 20 most frequent
            ADE20K classes, few enough to learn from a small dataset.
        background (Sequence[int]): Labels of the background bands from top to bottom.
            Defaults to (3, 2, 7): sky, building, road.
        num_shapes (tuple[int, int]): Inclusive range of shapes per image. Defaults to (3, 8).
        noise_std (float): Pixel noise standard deviation. Defaults to 8.0.
        progress (bool): Show a progress bar. Defaults to False.

    Returns:
        str: The data root, ``<root>/ade/ADEChallengeData2016``.

    Raises:
        FileExistsError: The data root is non-empty and not this synthetic dataset.
    """
    _check_counts(num_train=num_train, num_val=num_val)
    data_root = osp.join(root, 'ade', 'ADEChallengeData2016')
    params = _params('ade20k', num_train=num_train, num_val=num_val, size=size, seed=seed,
                     classes=classes, background=background, num_shapes=num_shapes,
                     noise_std=noise_std)
    if _prepare_root(data_root, params):
        return data_root
    jobs = [('train', i) for i in range(num_train)] + [('val', i) for i in range(num_val)]
    scene_args = dict(num_classes=151, classes=classes, background=background,
                      num_shapes=num_shapes, noise_std=noise_std)
    folders = {'train': ('training', 'ADE_train'), 'val': ('validation', 'ADE_val')}
    for split, i, image, label in _scenes(jobs, 'ade20k', seed, size, scene_args, progress):
        folder, prefix = folders[split]
        stem = f'{prefix}_{i + 1:08d}'
        _save(osp.join(data_root, 'images', folder, f'{stem}.jpg'), image)
        _save(osp.join(data_root, 'annotations', folder, f'{stem}.png'), label)
    _write_marker(data_root, params)
    return data_root


def make_voc(root: str,
             num_train: int = 4,
             num_val: int = 2,
             num_aug: int = 4,
             size: Size = (96, 96),
             seed: int = 0,
             classes: Optional[Sequence[int]] = None,
             background: Union[int, Sequence[int]] = 0,
             num_shapes: Tuple[int, int] = (3, 8),
             noise_std: float = 8.0,
             ignore_width: int = 1,
             progress: bool = False) -> str:
    """Generate a Pascal VOC 2012 dataset with the SBD "aug" extension (21 classes).

    Under ``<root>/VOCdevkit/VOC2012`` writes, as mmseg's ``pascal_voc12.py`` and
    ``pascal_voc12_aug.py`` base configs (and ``tools/dataset_converters/voc_aug.py``)
    expect:

    - ``JPEGImages/<name>.jpg`` for every image;
    - ``SegmentationClass/<name>.png`` for train and val: palette ('P') PNGs of class
      indices with 255-valued object boundaries, like the official annotations;
    - ``SegmentationClassAug/<name>.png`` for train and aug: plain grayscale index PNGs
      without boundaries, like the converted SBD annotations;
    - ``ImageSets/Segmentation/{train,val,aug,trainaug}.txt``, where ``aug`` holds the
      images in neither train nor val and ``trainaug`` is train followed by aug.

    Args:
        root (str): Parent folder; the dataset goes to ``<root>/VOCdevkit/VOC2012``.
        num_train (int): Number of VOC training images. Defaults to 4.
        num_val (int): Number of validation images. Defaults to 2.
        num_aug (int): Number of extra (SBD-only) training images. Defaults to 4.
        size (tuple[int, int]): ``(height, width)``. Defaults to (96, 96).
        seed (int): Random seed. Defaults to 0.
        classes (Sequence[int], optional): Classes of the shapes. Defaults to 1..20.
        background (int | Sequence[int]): Background class(es). Defaults to 0.
        num_shapes (tuple[int, int]): Inclusive range of shapes per image. Defaults to (3, 8).
        noise_std (float): Pixel noise standard deviation. Defaults to 8.0.
        ignore_width (int): Width of the 255-valued boundaries in ``SegmentationClass``.
            Defaults to 1.
        progress (bool): Show a progress bar. Defaults to False.

    Returns:
        str: The data root, ``<root>/VOCdevkit/VOC2012``.

    Raises:
        FileExistsError: The data root is non-empty and not this synthetic dataset.
    """
    _check_counts(num_train=num_train, num_val=num_val, num_aug=num_aug)
    if ignore_width < 0:
        raise ValueError(f'ignore_width must be >= 0, but got {ignore_width}')
    data_root = osp.join(root, 'VOCdevkit', 'VOC2012')
    params = _params('voc', num_train=num_train, num_val=num_val, num_aug=num_aug, size=size,
                     seed=seed, classes=classes, background=background,
                     num_shapes=num_shapes, noise_std=noise_std, ignore_width=ignore_width)
    if _prepare_root(data_root, params):
        return data_root
    prefixes = {'train': '2007', 'val': '2008', 'aug': '2009'}
    counts = {'train': num_train, 'val': num_val, 'aug': num_aug}
    jobs = [(split, i) for split, count in counts.items() for i in range(count)]
    names: Dict[str, List[str]] = {split: [] for split in counts}
    scene_args = dict(num_classes=21, classes=classes, background=background,
                      num_shapes=num_shapes, noise_std=noise_std)
    palette = voc_palette()
    for split, i, image, label in _scenes(jobs, 'voc', seed, size, scene_args, progress):
        name = f'{prefixes[split]}_{i:06d}'
        names[split].append(name)
        _save(osp.join(data_root, 'JPEGImages', f'{name}.jpg'), image)
        if split in ('train', 'val'):
            _save(osp.join(data_root, 'SegmentationClass', f'{name}.png'),
                  add_ignore_boundaries(label, ignore_width), palette)
        if split in ('train', 'aug'):
            _save(osp.join(data_root, 'SegmentationClassAug', f'{name}.png'), label)
    names['trainaug'] = names['train'] + names['aug']
    ann_dir = osp.join(data_root, 'ImageSets', 'Segmentation')
    os.makedirs(ann_dir, exist_ok=True)
    for split, split_names in names.items():
        with open(osp.join(ann_dir, f'{split}.txt'), 'w') as f:
            f.writelines(name + '\n' for name in split_names)
    _write_marker(data_root, params)
    return data_root


def make_dataset(kind: str,
                 root: str,
                 num_train: int = 4,
                 num_val: int = 2,
                 size: Optional[Size] = None,
                 seed: int = 0,
                 progress: bool = False) -> str:
    """Generate the dataset that mmseg's ``_base_/datasets/<kind>.py`` reads.

    Args:
        kind (str): One of :data:`KINDS`. ``'pascal_voc12_aug'`` adds ``num_train`` SBD-only
            images, so its concatenated training set has ``2 * num_train`` samples;
            ``'pascal_voc12'`` adds none (the two write to the same data root, so use
            different ``root`` folders for both).
        root (str): Parent folder, see :func:`make_cityscapes`, :func:`make_ade20k` and
            :func:`make_voc`.
        num_train (int): Number of training images. Defaults to 4.
        num_val (int): Number of validation images. Defaults to 2.
        size (tuple[int, int], optional): ``(height, width)``; None for the generator's
            default. Defaults to None.
        seed (int): Random seed. Defaults to 0.
        progress (bool): Show a progress bar. Defaults to False.

    Returns:
        str: The data root to set as the config's ``data_root``.

    Raises:
        ValueError: ``kind`` is unknown.
    """
    if kind not in KINDS:
        raise ValueError(f'kind must be one of {KINDS}, but got {kind!r}')
    sizes = {} if size is None else dict(size=size)
    if kind == 'cityscapes':
        return make_cityscapes(root, num_train, num_val, seed=seed, progress=progress, **sizes)
    if kind == 'ade20k':
        return make_ade20k(root, num_train, num_val, seed=seed, progress=progress, **sizes)
    num_aug = num_train if kind == 'pascal_voc12_aug' else 0
    return make_voc(root, num_train, num_val, num_aug, seed=seed, progress=progress, **sizes)
