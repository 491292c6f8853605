"""mmperc.models.losses.embed_function: the hand-written backward under autograd's other uses."""
import pytest
import torch

from mmperc.models.losses import RandomPerceptualLoss


@pytest.mark.parametrize('num_convs', [(2, 1, 2), (1, )])
def test_retained_graph_gives_the_same_gradient_twice(num_convs):
    """retain_graph (per-term gradient norms, GradNorm) backpropagates twice through one forward."""
    loss = RandomPerceptualLoss(num_convs=num_convs, channels=(6, 8, 8)[:len(num_convs)])
    pred = torch.randn(2, 6, 33, 47, dtype=torch.float64, requires_grad=True)
    labels = torch.randint(0, 6, (2, 33, 47))
    labels[0, :3] = 255
    value = loss(pred, labels)
    first, = torch.autograd.grad(value, pred, retain_graph=True)
    second, = torch.autograd.grad(value, pred)
    assert torch.equal(first, second) and first.abs().sum() > 0


@pytest.mark.parametrize('num_convs', [(2, 1, 2), (1, )])
def test_second_derivative_is_refused_not_dropped(num_convs):
    """The backward is a first derivative only: differentiating it raises (with (1,) it came back
    silently without a graph, dropping the loss from any gradient penalty)."""
    loss = RandomPerceptualLoss(num_convs=num_convs, channels=(6, 8, 8)[:len(num_convs)])
    pred = torch.randn(1, 6, 32, 32, dtype=torch.float64, requires_grad=True)
    grad, = torch.autograd.grad(loss(pred, torch.randint(0, 6, (1, 32, 32))), pred, create_graph=True)
    with pytest.raises(RuntimeError, match='once_differentiable'):
        grad.square().sum().backward()
