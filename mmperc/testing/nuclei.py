"""Real nuclei: stardist's fluorescence image of the 2018 Data Science Bowl as an mmseg dataset.

``stardist==0.9.2`` (PyPI) ships a real 512x512 fluorescence-microscopy image of cell nuclei
with its instance masks (125 nuclei; Caicedo et al., Nature Methods 2019). Installing the wheel
``--no-deps`` is enough: the files are found with ``importlib`` without importing stardist
(which needs TensorFlow), and read with ``tifffile``.

The image is cut into non-overlapping tiles; the right-most column of tiles is the validation
split, so no validation pixel is ever seen in training. Labels are 0 = background and
1 = nucleus, with two-pixel seams (one pixel on each side) set to background where two nuclei
touch, so touching nuclei stay apart (the structure a per-pixel loss tends to blur). The layout is mmseg's
generic one (``img_dir/{train,val}/*.png``, ``ann_dir/{train,val}/*.png``), which the stock
``BaseSegDataset`` reads (``configs/_base_/datasets/nuclei_dsb2018-64x64.py``).
"""
import hashlib
import importlib.util
import os.path as osp
import sys
from pathlib import Path
from typing import Tuple

import numpy as np
from mmengine.utils import ProgressBar

from .datasets import _params, _prepare_root, _save, _write_marker

__all__ = ['NUCLEI_CLASSES', 'nuclei_source', 'make_nuclei']

NUCLEI_CLASSES = ('background', 'nucleus')  # as in configs/_base_/datasets/nuclei_dsb2018-64x64.py
_STARDIST_HINT = 'pip install --no-deps stardist==0.9.2 tifffile (make setup installs both)'


def nuclei_source() -> Tuple[np.ndarray, np.ndarray, str]:
    """The image, its instance mask and the SHA-256 of both files, from the installed stardist.

    Raises:
        ImportError: stardist's wheel (or tifffile) is not installed; the message says how.
    """
    spec = importlib.util.find_spec('stardist')  # finds the package without importing it
    if spec is None or not spec.submodule_search_locations:
        raise ImportError(f'the real nuclei image comes from the stardist wheel: {_STARDIST_HINT}')
    folder = Path(list(spec.submodule_search_locations)[0]) / 'data' / 'images'
    paths = [folder / 'img2d.tif', folder / 'mask2d.tif']
    missing = [str(p) for p in paths if not p.is_file()]
    if missing:
        raise ImportError(f'stardist is installed but lacks {missing}: {_STARDIST_HINT}')
    try:
        import tifffile
    except ImportError as e:
        raise ImportError(f'reading the nuclei image needs tifffile: {_STARDIST_HINT}') from e
    digest = hashlib.sha256(b''.join(p.read_bytes() for p in paths)).hexdigest()
    return tifffile.imread(str(paths[0])), tifffile.imread(str(paths[1])), digest


def semantic_labels(instances: np.ndarray) -> np.ndarray:
    """0/1 labels from an instance mask, with background seams between touching instances.

    A pixel becomes background if one of its 4-neighbours belongs to another instance.
    """
    labels = (instances > 0).astype(np.uint8)
    padded = np.pad(instances, 1, mode='edge')
    center = padded[1:-1, 1:-1]
    for dy, dx in ((0, 1), (1, 0), (1, 2), (2, 1)):
        neighbour = padded[dy:dy + instances.shape[0], dx:dx + instances.shape[1]]
        labels[(center > 0) & (neighbour > 0) & (neighbour != center)] = 0
    return labels


def to_rgb(image: np.ndarray) -> np.ndarray:
    """A single-channel microscopy image as 8-bit RGB, stretched to its 0.2-99.8 percentiles."""
    low, high = np.percentile(image, (0.2, 99.8))
    scaled = np.clip((image.astype(np.float64) - low) / max(high - low, 1e-6), 0, 1)
    gray = np.round(scaled * 255).astype(np.uint8)
    return np.repeat(gray[..., None], 3, axis=2)


def make_nuclei(root: str, tile: int = 128, val_columns: int = 1, progress: bool = False) -> str:
    """Write stardist's nuclei image as tiles in mmseg's generic layout under ``<root>/nuclei``.

    Args:
        root (str): Parent folder; the dataset goes to ``<root>/nuclei``.
        tile (int): Tile side in pixels; must divide the image (512). Defaults to 128.
        val_columns (int): Right-most tile columns held out for validation. Defaults to 1.
        progress (bool): Show a progress bar. Defaults to False.

    Returns:
        str: The data root, ``<root>/nuclei``.

    Raises:
        ImportError: stardist's wheel is not installed.
        ValueError: ``tile`` does not divide the image or leaves no training column.
        FileExistsError: The data root holds something else.
    """
    image, instances, digest = nuclei_source()
    height, width = instances.shape
    columns = width // tile
    if tile < 1 or height % tile or width % tile or not 0 < val_columns < columns:
        raise ValueError(f'tile={tile} must divide the {height}x{width} image and leave training '
                         f'columns beside val_columns={val_columns}')
    data_root = osp.join(root, 'nuclei')
    params = _params('nuclei_dsb2018', tile=tile, val_columns=val_columns, source_sha256=digest)
    if _prepare_root(data_root, params):
        return data_root
    rgb, labels = to_rgb(image), semantic_labels(instances)
    jobs = [(row, col) for row in range(height // tile) for col in range(columns)]
    bar = ProgressBar(len(jobs), file=sys.stdout) if progress else None
    for row, col in jobs:
        split = 'val' if col >= columns - val_columns else 'train'
        window = (slice(row * tile, (row + 1) * tile), slice(col * tile, (col + 1) * tile))
        name = f'dsb2018_r{row}_c{col}.png'
        _save(osp.join(data_root, 'img_dir', split, name), rgb[window])
        _save(osp.join(data_root, 'ann_dir', split, name), labels[window])
        if bar is not None:
            bar.update()
    if bar is not None:
        bar.file.write('\n')
    _write_marker(data_root, params)
    return data_root
