"""Boundary F-score: how well predicted region boundaries match the ground truth's."""
from collections import OrderedDict
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch
import torch.nn.functional as F
from mmengine.evaluator import BaseMetric
from mmengine.registry import METRICS
from torch import Tensor


def label_boundaries(label: Tensor, ignore_index: int = 255) -> Tensor:
    """Pixels whose 4-neighbourhood holds another (non-ignored) label.

    Args:
        label (Tensor): ``(H, W)`` integer label map.
        ignore_index (int): Label that makes no boundary. Defaults to 255.

    Returns:
        Tensor: ``(H, W)`` bool boundary map.
    """
    lab = label.long()
    edge = torch.zeros_like(lab, dtype=torch.bool)
    for dy, dx in ((0, 1), (1, 0)):
        a = lab[:lab.shape[0] - dy, :lab.shape[1] - dx]
        b = lab[dy:, dx:]
        diff = (a != b) & (a != ignore_index) & (b != ignore_index)
        edge[:lab.shape[0] - dy, :lab.shape[1] - dx] |= diff
        edge[dy:, dx:] |= diff
    return edge


def _dilate(mask: Tensor, radius: int) -> Tensor:
    """``mask`` grown by ``radius`` pixels in a (2 radius + 1)-pixel square (Chebyshev distance)."""
    if radius == 0:
        return mask
    k = 2 * radius + 1
    return F.max_pool2d(mask[None, None].float(), k, stride=1, padding=radius)[0, 0] > 0


def _filled_near_valid(pred: Tensor, gt: Tensor, ignore_index: int,
                       tolerance: int) -> Tuple[Tensor, Tensor, Optional[Tensor]]:
    """Both maps with each ground-truth-ignored pixel set to the label its nearest valid pixel
    has in that map, and the pixels within ``tolerance`` of a valid one (None: all are valid).

    Pascal VOC outlines every object with a band of ignored pixels: left ignored, no boundary of
    the ground truth would remain, and an empty prediction would score 1. Filled, a band becomes
    the boundary of the labels on its two sides (in both maps alike), while at the rim of a large
    ignored region both maps just continue their neighbours' labels: no boundary there."""
    ignored = gt == ignore_index
    if not bool(ignored.any()):
        return pred.long(), gt.long(), None
    if bool(ignored.all()):  # nothing to compare
        return pred.long(), gt.long(), torch.zeros_like(ignored)
    from scipy.ndimage import distance_transform_edt
    dist, (rows, cols) = distance_transform_edt(ignored.cpu().numpy(), return_indices=True)
    rows, cols = torch.from_numpy(rows).to(gt.device), torch.from_numpy(cols).to(gt.device)
    near = torch.from_numpy(dist <= tolerance).to(gt.device)
    return pred.long()[rows, cols], gt.long()[rows, cols], near


def boundary_fscore(pred: Tensor, gt: Tensor, tolerance: int = 2, ignore_index: int = 255) -> float:
    """F1 of boundary pixels matched within ``tolerance`` pixels (Csurka et al., BMVC 2013),
    distances measured in a square (Chebyshev: a diagonal offset of 2 pixels matches at 2).

    Args:
        pred (Tensor): ``(H, W)`` predicted labels.
        gt (Tensor): ``(H, W)`` ground-truth labels.
        tolerance (int): Matching distance in pixels. Defaults to 2.
        ignore_index (int): Ignored label of ``gt``. Both maps take, at its pixels, the label of
            the nearest valid pixel, and only boundaries within ``tolerance`` of a valid pixel
            count: a thin ignored band between two classes (Pascal VOC's outlines) is a boundary
            of the ground truth, the inside of a large ignored region counts for neither map.
            Defaults to 255.

    Returns:
        float: The F-score in [0, 1]; 1.0 when neither map has a boundary.
    """
    pred, gt, near = _filled_near_valid(pred, gt, ignore_index, tolerance)
    pred_b, gt_b = label_boundaries(pred, ignore_index), label_boundaries(gt, ignore_index)
    if near is not None:
        pred_b, gt_b = pred_b & near, gt_b & near
    if not pred_b.any() and not gt_b.any():
        return 1.0
    precision = (pred_b & _dilate(gt_b, tolerance)).sum().item() / max(pred_b.sum().item(), 1)
    recall = (gt_b & _dilate(pred_b, tolerance)).sum().item() / max(gt_b.sum().item(), 1)
    return 0.0 if precision + recall == 0 else 2 * precision * recall / (precision + recall)


@METRICS.register_module()
class BoundaryFScore(BaseMetric):
    """Mean per-image boundary F-score of semantic segmentation predictions.

    Structure is what the perceptual loss of Liu et al. (CVPR 2021) targets;
    mIoU is dominated by region interiors, this metric by their boundaries.

    Args:
        tolerance (int): Matching distance in pixels. Defaults to 2.
        ignore_index (int): Ignored label. Defaults to 255.
        collect_device (str): Device for collecting results across ranks.
            Defaults to ``'cpu'``.
        prefix (str, optional): Metric name prefix. Defaults to None.
    """

    def __init__(self, tolerance: int = 2, ignore_index: int = 255, collect_device: str = 'cpu',
                 prefix: Optional[str] = None) -> None:
        super().__init__(collect_device=collect_device, prefix=prefix)
        self.tolerance = tolerance
        self.ignore_index = ignore_index

    def process(self, data_batch: dict, data_samples: Sequence[dict]) -> None:
        for sample in data_samples:
            pred = sample['pred_sem_seg']['data'].squeeze(0).cpu()
            gt = sample['gt_sem_seg']['data'].squeeze(0).cpu().to(pred)
            self.results.append(boundary_fscore(pred, gt, self.tolerance, self.ignore_index))

    def compute_metrics(self, results: List[float]) -> Dict[str, float]:
        return OrderedDict(bF=round(float(np.mean(results)) * 100, 2))
