"""MMPERC_KERNELS: the switch that turns the C++ kernels off (PyTorch's ops alone, as on CUDA)."""
import json

import pytest
from conftest import run_tool

from mmperc.models.losses import kernels, max_pool_relu, winograd_f4

CHILD = '''
import json, torch
from mmperc.models import RandomPerceptualLoss
from mmperc.models.losses import max_pool_relu, winograd_f4
torch.manual_seed(0)
pred = torch.randn(2, 64, 40, 36, requires_grad=True)
target = torch.randn(2, 64, 40, 36)
loss = RandomPerceptualLoss(num_convs=(2, 1, 1), channels=(64, 64, 64))
value = loss(pred, target)
value.backward()
print(json.dumps([max_pool_relu.available(), winograd_f4.available(), value.item(), pred.grad.abs().sum().item()]))
'''


def test_values_of_the_switch(monkeypatch):
    for value, on in (('1', True), ('0', False)):
        monkeypatch.setenv(kernels.ENV, value)
        assert kernels.enabled() is on
    monkeypatch.delenv(kernels.ENV)
    assert kernels.enabled()
    monkeypatch.setenv(kernels.ENV, 'off')
    with pytest.raises(ValueError, match='MMPERC_KERNELS must be 0'):
        kernels.enabled()


def test_load_gives_none_when_off_or_not_built(monkeypatch):
    monkeypatch.setenv(kernels.ENV, '0')
    assert kernels.load('_winograd_f4') is None
    monkeypatch.setenv(kernels.ENV, '1')
    assert kernels.load('_no_such_extension') is None


@pytest.mark.skipif(not (winograd_f4.available() and max_pool_relu.available()),
                    reason='the C++ kernels are not built, or MMPERC_KERNELS=0')
def test_switched_off_the_loss_runs_pytorch_ops_to_the_same_value():
    """In a fresh process with ``MMPERC_KERNELS=0`` neither extension is used, and the loss and
    its gradient are those of the kernels' run within float32 rounding."""
    runs = [json.loads(run_tool('-c', CHILD, env={kernels.ENV: on}).strip().splitlines()[-1]) for on in '10']
    assert runs[0][:2] == [True, True] and runs[1][:2] == [False, False]
    assert runs[1][2] == pytest.approx(runs[0][2], rel=1e-5)
    assert runs[1][3] == pytest.approx(runs[0][3], rel=1e-4)
