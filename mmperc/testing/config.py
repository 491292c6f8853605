"""Point mmseg dataset configs at generated data and shrink their pipelines for quick runs."""
import os.path as osp
from typing import Any, Dict, Iterator, List, Tuple

from mmengine.config import Config

from .datasets import KINDS

__all__ = [
    'BASE_CONFIGS', 'DATASET_TYPES', 'base_config_path', 'point_cfg_to', 'dataset_cfg_overrides',
    'set_pipeline_sizes'
]

#: The mmseg base dataset config of each kind, for ``Config.fromfile`` after resolving.
BASE_CONFIGS = {kind: f'mmseg::_base_/datasets/{kind}.py' for kind in KINDS}
#: The mmseg dataset class that each kind's configs use.
DATASET_TYPES = {
    'cityscapes': 'CityscapesDataset',
    'ade20k': 'ADE20KDataset',
    'pascal_voc12': 'PascalVOCDataset',
    'pascal_voc12_aug': 'PascalVOCDataset',
}
Size = Tuple[int, int]
_LOADERS = ('train_dataloader', 'val_dataloader', 'test_dataloader')


def _check_kind(kind: str) -> None:
    """Raise ``ValueError`` for an unknown kind."""
    if kind not in DATASET_TYPES:
        raise ValueError(f'kind must be one of {tuple(DATASET_TYPES)}, but got {kind!r}')


def base_config_path(kind: str) -> str:
    """Local path of mmseg's ``configs/_base_/datasets/<kind>.py`` inside the installed package.

    Found next to ``mmseg/__init__.py`` (``.mim/configs``), which, unlike
    ``mmengine.utils.get_installed_path``, does not need ``pkg_resources``.

    Args:
        kind (str): One of :data:`~mmperc.testing.KINDS`.

    Returns:
        str: The config file path.

    Raises:
        ValueError: ``kind`` is unknown.
        FileNotFoundError: The installed mmseg ships no such config.
    """
    import mmseg

    _check_kind(kind)
    path = osp.join(osp.dirname(mmseg.__file__), '.mim', 'configs', '_base_', 'datasets',
                    f'{kind}.py')
    if not osp.isfile(path):
        raise FileNotFoundError(f'mmseg base config not found: {path}')
    return path


def _leaf_datasets(dataset: dict) -> Iterator[dict]:
    """The real datasets inside wrappers (``ConcatDataset.datasets``, ``RepeatDataset.dataset``)."""
    if 'datasets' in dataset:
        for child in dataset['datasets']:
            yield from _leaf_datasets(child)
    elif 'dataset' in dataset:
        yield from _leaf_datasets(dataset['dataset'])
    else:
        yield dataset


def _loader_datasets(cfg: Config) -> List[dict]:
    """Leaf dataset configs of the train, val and test dataloaders present in ``cfg``."""
    leaves = []
    for name in _LOADERS:
        loader = cfg.get(name)
        if loader is not None and loader.get('dataset') is not None:
            leaves += list(_leaf_datasets(loader['dataset']))
    return leaves


def _type_name(type_: Any) -> str:
    """``'mmseg.CityscapesDataset'`` or the class itself -> ``'CityscapesDataset'``."""
    name = type_ if isinstance(type_, str) else getattr(type_, '__name__', str(type_))
    return name.split('.')[-1]


def point_cfg_to(cfg: Config, kind: str, data_root: str) -> Config:
    """Set ``data_root`` of every dataset in the train/val/test dataloaders, in place.

    Datasets inside wrappers are found too, e.g. both datasets of the ``ConcatDataset`` that
    ``pascal_voc12_aug.py`` trains on. The top-level ``data_root`` variable, if present, is
    updated as well so that a dumped config stays consistent.

    Args:
        cfg (Config): A config with mmseg dataloaders.
        kind (str): One of :data:`~mmperc.testing.KINDS`; every dataset must be of the
            matching class (:data:`DATASET_TYPES`).
        data_root (str): The generated data root, e.g. from :func:`make_dataset`.

    Returns:
        Config: ``cfg`` itself.

    Raises:
        ValueError: ``kind`` is unknown, ``cfg`` has no dataloader, or a dataset is of
            another class.
    """
    _check_kind(kind)
    leaves = _loader_datasets(cfg)
    if not leaves:
        raise ValueError(f'config has none of {_LOADERS} with a dataset')
    for dataset in leaves:
        if _type_name(dataset.get('type')) != DATASET_TYPES[kind]:
            raise ValueError(f'kind {kind!r} expects {DATASET_TYPES[kind]} datasets, but the '
                             f'config has {dataset.get("type")!r}')
        dataset['data_root'] = data_root
    if 'data_root' in cfg:
        cfg['data_root'] = data_root
    return cfg


def dataset_cfg_overrides(kind: str, data_root: str) -> Dict[str, str]:
    """``--cfg-options`` / ``Config.merge_from_dict`` keys pointing mmseg's base layout at data.

    Assumes the dataloaders of ``_base_/datasets/<kind>.py``: for ``'pascal_voc12_aug'`` the
    training dataset is a ``ConcatDataset`` of two datasets (list keys ``datasets.0`` and
    ``datasets.1``). For configs of another layout use :func:`point_cfg_to`.

    Args:
        kind (str): One of :data:`~mmperc.testing.KINDS`.
        data_root (str): The generated data root.

    Returns:
        dict[str, str]: Dotted keys mapped to ``data_root``.

    Raises:
        ValueError: ``kind`` is unknown.
    """
    _check_kind(kind)
    train = (['train_dataloader.dataset.datasets.0', 'train_dataloader.dataset.datasets.1']
             if kind == 'pascal_voc12_aug' else ['train_dataloader.dataset'])
    keys = train + ['val_dataloader.dataset', 'test_dataloader.dataset']
    return {f'{key}.data_root': data_root for key in keys}


def _resize_transform(transform: dict, crop_size: Size, scale: Size) -> None:
    """Set the size options of one transform (recursing into ``TestTimeAug``)."""
    kind = _type_name(transform.get('type'))
    if kind == 'TestTimeAug':
        for group in transform['transforms']:
            for child in group:
                _resize_transform(child, crop_size, scale)
    elif kind in ('RandomResize', 'Resize') and 'scale' in transform:
        transform['scale'] = scale
    elif kind == 'RandomCrop':
        transform['crop_size'] = crop_size
    elif kind == 'Pad' and 'size' in transform:
        transform['size'] = crop_size


def set_pipeline_sizes(cfg: Config, crop_size: Size, scale: Size) -> Config:
    """Shrink the resize, crop and pad sizes of all dataloader pipelines, in place.

    Sets ``RandomResize.scale`` and ``Resize.scale`` (not ``scale_factor``) to ``scale``,
    ``RandomCrop.crop_size`` and ``Pad.size`` to ``crop_size``, and, if the config has a
    model whose data preprocessor pads to a fixed size, that size to ``crop_size``.
    Note mmseg's conventions: ``crop_size`` is ``(height, width)``, ``scale`` is
    ``(width, height)``; e.g. Cityscapes uses ``crop_size=(512, 1024)``,
    ``scale=(2048, 1024)``.

    Args:
        cfg (Config): A config with mmseg dataloaders.
        crop_size (tuple[int, int]): ``(height, width)`` of training crops.
        scale (tuple[int, int]): ``(width, height)`` bound of the (random) resize.

    Returns:
        Config: ``cfg`` itself.
    """
    crop_size, scale = tuple(crop_size), tuple(scale)
    for dataset in _loader_datasets(cfg):
        for transform in dataset.get('pipeline', []):
            _resize_transform(transform, crop_size, scale)
    preprocessor = cfg.get('model', {}).get('data_preprocessor') or {}
    if preprocessor.get('size') is not None:
        preprocessor['size'] = crop_size
    return cfg
