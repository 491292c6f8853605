"""Tiny COCO-format instance-segmentation datasets (json + images) for mmdet's CocoDataset."""
import json
import os
import os.path as osp
from typing import List, Tuple

import numpy as np

from .datasets import _check_counts, _params, _prepare_root, _write_marker
from .scenes import class_appearance

__all__ = ['make_coco']


def _polygon(rng: np.random.Generator, height: int, width: int) -> Tuple[List[float], np.ndarray]:
    """A random ellipse as a 24-point polygon, and its filled mask."""
    import cv2
    cy, cx = rng.uniform(0.2, 0.8) * height, rng.uniform(0.2, 0.8) * width
    ry, rx = rng.uniform(0.08, 0.25) * height, rng.uniform(0.08, 0.25) * width
    angles = np.linspace(0, 2 * np.pi, 24, endpoint=False)
    points = np.stack([cx + rx * np.cos(angles), cy + ry * np.sin(angles)], axis=1)
    points[:, 0] = points[:, 0].clip(0, width - 1)
    points[:, 1] = points[:, 1].clip(0, height - 1)
    mask = np.zeros((height, width), np.uint8)
    cv2.fillPoly(mask, [points.round().astype(np.int32)], 1)
    return points.reshape(-1).round(2).tolist(), mask.astype(bool)


def _write_split(root: str, split: str, num_images: int, size: Tuple[int, int], seed: int,
                 classes: Tuple[str, ...]) -> None:
    import cv2
    height, width = size
    os.makedirs(osp.join(root, f'{split}2017'), exist_ok=True)
    rng = np.random.default_rng([seed, 0 if split == 'train' else 1])
    images, annotations = [], []
    for image_id in range(1, num_images + 1):
        img = np.full((height, width, 3), 90, np.uint8) + rng.integers(0, 20, (height, width, 3), dtype=np.uint8)
        occupied = np.zeros((height, width), bool)
        for _ in range(int(rng.integers(2, 5))):
            category = int(rng.integers(0, len(classes)))
            for _attempt in range(20):  # instances do not overlap: each mask is what the image shows
                polygon, mask = _polygon(rng, height, width)
                if not (mask & occupied).any():
                    break
            else:
                continue
            occupied |= mask
            img[mask] = class_appearance(category + 1)[3]
            ys, xs = np.nonzero(mask)
            x0, y0 = float(xs.min()), float(ys.min())
            annotations.append(dict(
                id=len(annotations) + 1, image_id=image_id, category_id=category + 1, segmentation=[polygon],
                area=float(mask.sum()), bbox=[x0, y0, float(xs.max()) - x0 + 1, float(ys.max()) - y0 + 1],
                iscrowd=0))
        name = f'{split}_{image_id:06d}.jpg'
        cv2.imwrite(osp.join(root, f'{split}2017', name), img[..., ::-1])
        images.append(dict(id=image_id, file_name=name, height=height, width=width))
    categories = [dict(id=i + 1, name=name, supercategory='thing') for i, name in enumerate(classes)]
    with open(osp.join(root, 'annotations', f'instances_{split}2017.json'), 'w') as f:
        json.dump(dict(images=images, annotations=annotations, categories=categories), f)


def make_coco(root: str, num_train: int = 4, num_val: int = 2, size: Tuple[int, int] = (128, 128),
              seed: int = 0) -> str:
    """Write ``<root>/coco/{train2017,val2017}`` and ``annotations/instances_*2017.json``.

    Images hold ellipse instances (polygon annotations, boxes, areas) of COCO's class names, so
    mmdet's ``CocoDataset`` and its pipelines read them. 2-4 are drawn per image; instances do
    not overlap, so each annotation is what the image shows (one that finds no free place in
    20 draws is left out). A root already holding a dataset generated with the same arguments
    is reused; any other non-empty one is refused.

    Args:
        root (str): Parent folder.
        num_train (int): Training images. Defaults to 4.
        num_val (int): Validation images. Defaults to 2.
        size (tuple[int, int]): ``(height, width)``. Defaults to (128, 128).
        seed (int): Seed. Defaults to 0.

    Returns:
        str: The data root, with a trailing slash as mmdet's configs write it.

    Raises:
        FileExistsError: ``<root>/coco`` holds other data (e.g. the real COCO): never touched.
    """
    from mmdet.datasets import CocoDataset
    _check_counts(num_train=num_train, num_val=num_val)
    data_root = osp.join(root, 'coco')
    params = _params('coco', num_train=num_train, num_val=num_val, size=size, seed=seed)
    if _prepare_root(data_root, params):
        return data_root + '/'
    os.makedirs(osp.join(data_root, 'annotations'), exist_ok=True)
    classes = tuple(CocoDataset.METAINFO['classes'])
    _write_split(data_root, 'train', num_train, size, seed, classes)
    _write_split(data_root, 'val', num_val, size, seed, classes)
    _write_marker(data_root, params)
    return data_root + '/'
