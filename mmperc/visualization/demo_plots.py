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


def plot_curves(scalars: Dict[str, Dict[str, List[dict]]], out: str) -> None:
    """Training loss and validation mIoU / boundary F against iteration: a row per dataset, a line per run.

    Args:
        scalars (dict): ``{dataset: {run name: mmengine scalars}}``.
        out (str): PNG path.
    """
    plt = _pyplot()
    fig, axes = plt.subplots(len(scalars), 3, figsize=(15, 4 * len(scalars)), squeeze=False)
    for row, (dataset, runs) in enumerate(scalars.items()):
        for name, entries in runs.items():
            train = [e for e in entries if 'loss' in e and 'iter' in e]
            val = [e for e in entries if 'mIoU' in e]
            label = COLUMN_TITLES.get(name, name)
            axes[row, 0].plot([e['iter'] for e in train], [e['loss'] for e in train], label=label)
            axes[row, 1].plot([e['step'] for e in val], [e['mIoU'] for e in val], marker='o', label=label)
            axes[row, 2].plot([e['step'] for e in val], [e['bF'] for e in val], marker='o', label=label)
        for ax, title in zip(axes[row], ('training loss (total)', 'val mIoU (%)', 'val boundary F-score (%)')):
            ax.set_title(f'{dataset}: {title}')
            ax.set_xlabel('iteration')
            ax.grid(alpha=0.3)
            ax.legend()
    fig.tight_layout()
    fig.savefig(out, dpi=100)
    plt.close(fig)


def val_pairs(data_root: str, num_images: int) -> List[Tuple[str, str]]:
    """``(image, label)`` paths of the first validation images of a Cityscapes-format root or
    of mmseg's generic ``img_dir``/``ann_dir`` layout (PNG labels of the same name)."""
    images = sorted(glob(osp.join(data_root, 'leftImg8bit', 'val', '*', '*_leftImg8bit.png')))[:num_images]
    if images:
        return [(img, img.replace('leftImg8bit', 'gtFine', 1).replace('_leftImg8bit.png',
                                                                      '_gtFine_labelTrainIds.png'))
                for img in images]
    images = sorted(glob(osp.join(data_root, 'img_dir', 'val', '*.png')))[:num_images]
    if not images:
        raise FileNotFoundError(f'no validation images under {data_root} (Cityscapes or img_dir/ann_dir layout)')
    return [(img, osp.join(data_root, 'ann_dir', 'val', osp.basename(img))) for img in images]


Panel = Tuple[str, str, List[Tuple[str, str, Optional[str]]]]


def plot_predictions(panels: List[Panel], out: str, num_images: int = 2) -> None:
    """image | ground truth | each run's prediction, for the first validation images of each dataset.

    Args:
        panels (list[tuple]): ``(dataset name, data root, runs)`` per dataset; a run is
            ``(name, config path, checkpoint)`` and runs without a checkpoint are skipped.
            Colours come from the checkpoint's ``dataset_meta`` palette.
        out (str): PNG path.
        num_images (int): Rows per dataset. Defaults to 2.
    """
    import mmcv
    from mmseg.apis import inference_model, init_model

    rows, order, shown = [], ('ce', 'perc_gt', 'perc_teacher', 'teacher'), set()
    for dataset, data_root, runs in panels:
        pairs = val_pairs(data_root, num_images)
        predictions, palette = {}, None
        for name, config, checkpoint in runs:
            if checkpoint is None:
                continue
            model = init_model(config, checkpoint, device='cpu')
            palette = model.dataset_meta['palette']
            predictions[name] = [inference_model(model, img).pred_sem_seg.data[0].numpy() for img, _ in pairs]
        if palette is None:  # no run of this dataset has a checkpoint
            continue
        shown |= set(predictions)
        for i, (img, gt) in enumerate(pairs):
            rows.append((dataset, mmcv.imread(img, channel_order='rgb'),
                         colorize(mmcv.imread(gt, flag='unchanged'), palette),
                         {name: colorize(pred[i], palette) for name, pred in predictions.items()}))
    if not rows:
        raise ValueError('no run has a checkpoint: nothing to plot')
    order = [name for name in order if name in shown]  # a run missing in one dataset stays in the others
    plt = _pyplot()
    cols = 2 + len(order)
    fig, axes = plt.subplots(len(rows), cols, figsize=(3 * cols, 2.2 * len(rows)), squeeze=False)
    for row, (dataset, image, gt, predicted) in enumerate(rows):
        blank = np.full_like(gt, 255)  # a run without a checkpoint for this dataset
        panels_row = [image, gt] + [predicted.get(name, blank) for name in order]
        titles = [f'{dataset}: image', 'ground truth'] + [COLUMN_TITLES.get(n, n) for n in order]
        for col, (panel, title) in enumerate(zip(panels_row, titles)):
            axes[row, col].imshow(panel)
            axes[row, col].set_axis_off()
            axes[row, col].set_title(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(out, dpi=100)
    plt.close(fig)
