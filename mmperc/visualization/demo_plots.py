"""Figures of the demo: prediction grids and training curves."""
import os.path as osp
from glob import glob
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

COLUMN_TITLES = {'ce': 'CE', 'perc_gt': 'CE+perc (GT)', 'perc_teacher': 'CE+perc (teacher)', 'teacher': 'teacher'}


def colorize(label: np.ndarray, palette: Sequence[Sequence[int]], ignore_index: int = 255) -> np.ndarray:
    """``(H, W)`` labels as an RGB image; ignored pixels black."""
    lut = np.zeros((256, 3), dtype=np.uint8)
    lut[:len(palette)] = np.asarray(palette, dtype=np.uint8)
    lut[ignore_index] = 0
    return lut[label.astype(np.uint8)]


def _pyplot():
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    return plt


def plot_curves(scalars: Dict[str, List[dict]], out: str) -> None:
    """Training loss and validation mIoU / boundary F against iteration, one line per run."""
    plt = _pyplot()
    fig, axes = plt.subplots(1, 3, figsize=(15, 4))
    for name, entries in scalars.items():
        train = [e for e in entries if 'loss' in e and 'iter' in e]
        val = [e for e in entries if 'mIoU' in e]
        label = COLUMN_TITLES.get(name, name)
        axes[0].plot([e['iter'] for e in train], [e['loss'] for e in train], label=label)
        axes[1].plot([e['step'] for e in val], [e['mIoU'] for e in val], marker='o', label=label)
        axes[2].plot([e['step'] for e in val], [e['bF'] for e in val], marker='o', label=label)
    for ax, title in zip(axes, ('training loss (total)', 'val mIoU (%)', 'val boundary F-score (%)')):
        ax.set_title(title)
        ax.set_xlabel('iteration')
        ax.grid(alpha=0.3)
        ax.legend()
    fig.tight_layout()
    fig.savefig(out, dpi=100)
    plt.close(fig)


def _val_pairs(data_root: str, num_images: int) -> List[Tuple[str, str]]:
    images = sorted(glob(osp.join(data_root, 'leftImg8bit', 'val', '*', '*_leftImg8bit.png')))[:num_images]
    return [(img, img.replace('leftImg8bit', 'gtFine', 1).replace('_leftImg8bit.png', '_gtFine_labelTrainIds.png'))
            for img in images]


def plot_predictions(runs: List[Tuple[str, str, Optional[str]]], data_root: str, out: str,
                     num_images: int = 3) -> None:
    """image | ground truth | each run's prediction, for the first validation images.

    Args:
        runs (list[tuple]): ``(name, config path, checkpoint)`` per run; runs
            without a checkpoint are skipped.
        data_root (str): Cityscapes-format root with a ``val`` split.
        out (str): PNG path.
        num_images (int): Rows. Defaults to 3.
    """
    import mmcv
    from mmseg.apis import inference_model, init_model
    from mmseg.datasets import CityscapesDataset

    palette = CityscapesDataset.METAINFO['palette']
    pairs = _val_pairs(data_root, num_images)
    order = [name for name in ('ce', 'perc_gt', 'perc_teacher', 'teacher') if name in {r[0] for r in runs}]
    predictions = {}
    for name, config, checkpoint in runs:
        if checkpoint is None:
            continue
        model = init_model(config, checkpoint, device='cpu')
        predictions[name] = [inference_model(model, img).pred_sem_seg.data[0].numpy() for img, _ in pairs]
    order = [name for name in order if name in predictions]
    plt = _pyplot()
    cols = 2 + len(order)
    fig, axes = plt.subplots(len(pairs), cols, figsize=(3 * cols, 1.7 * len(pairs)), squeeze=False)
    for row, (img, gt) in enumerate(pairs):
        panels = [mmcv.imread(img, channel_order='rgb'), colorize(mmcv.imread(gt, flag='unchanged'), palette)]
        panels += [colorize(predictions[name][row], palette) for name in order]
        for col, (panel, title) in enumerate(zip(panels, ['image', 'ground truth'] +
                                                 [COLUMN_TITLES.get(n, n) for n in order])):
            axes[row, col].imshow(panel)
            axes[row, col].set_axis_off()
            if row == 0:
                axes[row, col].set_title(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(out, dpi=100)
    plt.close(fig)
