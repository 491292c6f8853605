"""Boundary F-score: perfect, shifted and ignored boundaries."""
import pytest
import torch

from mmperc.evaluation import BoundaryFScore, boundary_fscore, label_boundaries


def _square(offset=0):
    label = torch.zeros(32, 32, dtype=torch.long)
    label[8 + offset:24 + offset, 8:24] = 1
    return label


def test_boundaries_of_a_square():
    edges = label_boundaries(_square())
    # 4-neighbourhood: the square's inner ring (16 * 4 - 4 corners shared) + the outer ring (16 * 4)
    assert edges.sum().item() == (16 * 4 - 4) + 16 * 4


def test_perfect_shifted_and_tolerance():
    gt = _square()
    assert boundary_fscore(gt, gt) == 1.0
    shifted = _square(offset=3)
    assert boundary_fscore(shifted, gt, tolerance=1) < boundary_fscore(shifted, gt, tolerance=4)
    assert boundary_fscore(shifted, gt, tolerance=4) == pytest.approx(1.0)
    assert boundary_fscore(torch.zeros_like(gt), gt) == 0.0


def test_ignored_pixels_make_no_boundary():
    gt = _square()
    gt[:, :4] = 255
    pred = _square()
    pred[:, :4] = 3  # whatever is predicted under ignored pixels does not count
    assert boundary_fscore(pred, gt) == 1.0


def test_metric_averages_images():
    metric = BoundaryFScore(tolerance=1)
    gt = _square()
    samples = [dict(pred_sem_seg=dict(data=gt[None]), gt_sem_seg=dict(data=gt[None])),
               dict(pred_sem_seg=dict(data=torch.zeros(1, 32, 32, dtype=torch.long)), gt_sem_seg=dict(data=gt[None]))]
    metric.process({}, samples)
    assert metric.compute_metrics(metric.results) == {'bF': 50.0}


@pytest.mark.parametrize('width', [1, 2, 5])  # Pascal VOC's outlines are about 5 pixels wide
def test_ignored_outlines_are_boundaries(width):
    """Objects outlined by ignored pixels (Pascal VOC): the band is the ground truth's boundary,
    so an empty prediction scores 0 (it scored 1 while the band hid every boundary)."""
    import numpy as np

    from mmperc.testing import add_ignore_boundaries
    square = _square()
    gt = torch.from_numpy(add_ignore_boundaries(square.numpy().astype(np.uint8), width)).long()
    assert (gt == 255).any() and not label_boundaries(gt).any()  # no boundary between valid pixels
    assert boundary_fscore(torch.zeros_like(gt), gt) == 0.0
    assert boundary_fscore(square, gt) == 1.0
    assert boundary_fscore(_square(offset=1), gt) > boundary_fscore(_square(offset=6), gt)


def test_inside_of_a_large_ignored_region_counts_for_neither_map():
    gt = _square()
    gt[:, 16:] = 255  # the right half is void; the square's left half stays
    pred = _square()
    pred[:, 24:] = torch.arange(8).repeat(32, 1)  # stripes deep inside the void: not boundaries
    assert boundary_fscore(pred, gt) == 1.0
    assert boundary_fscore(pred, torch.full_like(gt, 255)) == 1.0  # nothing valid: nothing to compare
