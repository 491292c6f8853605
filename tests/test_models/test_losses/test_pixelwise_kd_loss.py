"""PixelwiseKDLoss: KL values, masking and errors."""
import pytest
import torch
import torch.nn.functional as F

from mmperc.models import PixelwiseKDLoss


def test_matches_kl_div_and_zero_for_equal():
    s, t = torch.randn(2, 4, 8, 8), torch.randn(2, 4, 8, 8)
    loss = PixelwiseKDLoss(temperature=2.0)
    ref = F.kl_div(F.log_softmax(s / 2, 1), F.softmax(t / 2, 1), reduction='none').sum(1).mean() * 4
    assert loss(s, t).item() == pytest.approx(ref.item(), rel=1e-5)
    assert loss(s, s.clone()).item() == pytest.approx(0, abs=1e-6)


def test_valid_mask_and_errors():
    s, t = torch.randn(1, 3, 4, 4), torch.randn(1, 3, 4, 4)
    mask = torch.zeros(1, 4, 4, dtype=torch.bool)
    mask[:, :2] = True
    t2 = t.clone()
    t2[:, :, 2:] = 100
    loss = PixelwiseKDLoss()
    assert loss(s, t, valid_mask=mask).item() == pytest.approx(loss(s, t2, valid_mask=mask).item(), rel=1e-6)
    with pytest.raises(ValueError, match='resize'):
        loss(s, torch.randn(1, 3, 2, 2))
    with pytest.raises(ValueError):
        PixelwiseKDLoss(temperature=0)
    with pytest.raises(ValueError, match="start with 'loss_'"):  # else logged but never back-propagated
        PixelwiseKDLoss(loss_name='kd')
    with pytest.raises(ValueError, match='constant for one channel.*out_channels=2'):  # else 0, no gradient
        loss(torch.randn(1, 1, 4, 4), torch.randn(1, 1, 4, 4))
