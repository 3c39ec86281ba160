import pytest
import torch
from torch.optim import SGD, Adam
from torch.optim.lr_scheduler import ReduceLROnPlateau, StepLR

from blowtorch import UsageError
from blowtorch.optim import parse_optimizers


@pytest.fixture
def model():
    return torch.nn.Linear(2, 1)


def test_single_optimizer(model):
    optimizer = SGD(model.parameters(), lr=0.1)
    parsed = parse_optimizers(optimizer)
    assert parsed.optimizers == {"main": optimizer}
    assert parsed.schedules == {}


def test_list_and_dict_of_optimizers(model):
    a, b = SGD([model.weight], lr=0.1), Adam([model.bias])
    assert parse_optimizers([a, b]).optimizers == {"0": a, "1": b}
    assert parse_optimizers((a, b)).optimizers == {"0": a, "1": b}
    assert parse_optimizers({"weights": a, "bias": b}).optimizers == {"weights": a, "bias": b}


def test_optimizer_with_scheduler_in_every_shape(model):
    optimizer = SGD(model.parameters(), lr=0.1)
    scheduler = StepLR(optimizer, step_size=1)
    assert parse_optimizers((optimizer, scheduler)).schedules["main"].scheduler is scheduler
    assert parse_optimizers(([optimizer], [scheduler])).schedules["0"].interval == "epoch"
    parsed = parse_optimizers(({"opt": optimizer}, {"decay": {"scheduler": scheduler, "interval": "step"}}))
    assert parsed.schedules["decay"].interval == "step"


def test_per_step_scheduler_steps_after_each_optimizer_step(model):
    optimizer = SGD(model.parameters(), lr=1.0)
    parsed = parse_optimizers((optimizer, {"scheduler": StepLR(optimizer, step_size=1, gamma=0.5), "interval": "step"}))
    for _ in range(3):
        parsed.backward(model(torch.ones(1, 2)).sum())
        parsed.step()
    assert optimizer.param_groups[0]["lr"] == pytest.approx(0.125)


def test_one_backward_for_several_optimizers(model):
    a, b = SGD([model.weight], lr=0.1), SGD([model.bias], lr=0.1)
    before = (model.weight.detach().clone(), model.bias.detach().clone())
    optimizers = parse_optimizers([a, b])
    optimizers.backward(model(torch.ones(1, 2)).sum())  # a second backward would fail with "graph freed"
    optimizers.step()
    assert not torch.equal(model.weight, before[0]) and not torch.equal(model.bias, before[1])
    assert model.weight.grad is None and model.bias.grad is None  # cleared after the step, ready for the next backward


def test_plateau_scheduler_steps_with_its_monitor(model):
    optimizer = SGD(model.parameters(), lr=1.0)
    plateau = ReduceLROnPlateau(optimizer, patience=0, factor=0.5)
    parsed = parse_optimizers((optimizer, {"scheduler": plateau, "monitor": "loss"}))
    for _ in range(3):
        parsed.step_epoch_schedulers({"val.loss": 1.0, "train.loss": 5.0}, "train.loss", lambda name: f"val.{name}")
    assert optimizer.param_groups[0]["lr"] == pytest.approx(0.25)  # constant val.loss: halved twice after the first


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda m: None, "returned NoneType"),
        (lambda m: [], "returned no optimizer"),
        (lambda m: "adam", "returned str"),
        (lambda m: [SGD(m.parameters(), lr=1), 3], "returned int as optimizer '1'"),
        (
            lambda m: (SGD(m.parameters(), lr=1), {"scheduler": StepLR(SGD(m.parameters(), lr=1), 1)}),
            "wraps an optimizer that configure_optimizers did not return",
        ),
        (
            lambda m: (lambda o: (o, {"scheduler": StepLR(o, 1), "interval": "batch"}))(SGD(m.parameters(), lr=1)),
            "interval must be one of ['epoch', 'step']",
        ),
        (
            lambda m: (lambda o: (o, {"scheduler": ReduceLROnPlateau(o), "interval": "step"}))(SGD(m.parameters(), lr=1)),
            "use interval='epoch'",
        ),
    ],
)
def test_unusable_returns_are_explained(model, make, message):
    with pytest.raises(UsageError) as caught:
        parse_optimizers(make(model))
    assert message in str(caught.value)
