"""Tiny NYU-Depth-v2-format datasets (images + 16-bit depth PNGs in mm) for mmseg's NYUDataset."""
import os
import os.path as osp
from typing import Tuple

import numpy as np

from .datasets import _check_counts, _params, _prepare_root, _write_marker

__all__ = ['make_nyu']


def _depth_scene(rng: np.random.Generator, size: Tuple[int, int]) -> Tuple[np.ndarray, np.ndarray]:
    """A room: a receding floor/wall gradient with nearer boxes; colour follows depth and surface."""
    height, width = size
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
    depth = 2.0 + 6.0 * (1 - ys / height) + rng.uniform(-0.5, 0.5)  # metres, far at the top
    img = np.stack([60 + 15 * depth, 90 + 10 * depth, 140 - 8 * depth], -1)
    for _ in range(int(rng.integers(2, 5))):
        y0, x0 = int(rng.integers(0, height * 3 // 4)), int(rng.integers(0, width * 3 // 4))
        h, w = int(rng.integers(height // 8, height // 3)), int(rng.integers(width // 8, width // 3))
        near = rng.uniform(0.8, 3.0)
        depth[y0:y0 + h, x0:x0 + w] = near + 0.1 * (xs[y0:y0 + h, x0:x0 + w] - x0) / max(w, 1)
        img[y0:y0 + h, x0:x0 + w] = rng.uniform(40, 220, size=3)
    img = np.clip(img + rng.normal(0, 4, img.shape), 0, 255).astype(np.uint8)
    depth_mm = (depth * 1000).astype(np.uint16)
    holes = rng.random((height, width)) < 0.02  # missing depth, as a Kinect leaves
    depth_mm[holes] = 0
    return img, depth_mm


def make_nyu(root: str, num_train: int = 4, num_val: int = 2, size: Tuple[int, int] = (96, 128),
             seed: int = 0) -> str:
    """Write ``<root>/nyu/{images,annotations}/{train,test}/<room>_<n>.{jpg,png}``.

    Depth PNGs are uint16 millimetres (0 = missing), read by mmseg's
    ``LoadDepthAnnotation(depth_rescale_factor=1e-3)``. The room (``bedroom``) is one of
    ``NYUDataset``'s classes, which it reads from the file name as ``category_id``. A root
    already holding a dataset generated with the same arguments is reused; any other non-empty
    one is refused.

    Args:
        root (str): Parent folder.
        num_train (int): Training images. Defaults to 4.
        num_val (int): Test images. Defaults to 2.
        size (tuple[int, int]): ``(height, width)``. Defaults to (96, 128).
        seed (int): Seed. Defaults to 0.

    Returns:
        str: The data root.

    Raises:
        FileExistsError: ``<root>/nyu`` holds other data (e.g. the real NYU): never touched.
    """
    import cv2
    _check_counts(num_train=num_train, num_val=num_val)
    data_root = osp.join(root, 'nyu')
    params = _params('nyu', num_train=num_train, num_val=num_val, size=size, seed=seed)
    if _prepare_root(data_root, params):
        return data_root
    for split, count in (('train', num_train), ('test', num_val)):
        os.makedirs(osp.join(data_root, 'images', split), exist_ok=True)
        os.makedirs(osp.join(data_root, 'annotations', split), exist_ok=True)
        rng = np.random.default_rng([seed, 0 if split == 'train' else 1])
        for i in range(count):
            img, depth = _depth_scene(rng, size)
            name = f'bedroom_{i:04d}'  # NYUDataset: the text before the first digit, less one character
            cv2.imwrite(osp.join(data_root, 'images', split, name + '.jpg'), img[..., ::-1])
            cv2.imwrite(osp.join(data_root, 'annotations', split, name + '.png'), depth)
    _write_marker(data_root, params)
    return data_root
