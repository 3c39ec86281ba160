import math

import pytest
import torch

from blowtorch import UsageError
from blowtorch.metrics import PassAccumulator, normalize_step_output


def test_bare_tensor_is_the_loss_and_multi_element_tensors_are_averaged():
    values = normalize_step_output(torch.tensor([1.0, 2.0, 3.0]), "train_step")
    assert list(values) == ["loss"]
    assert values["loss"].item() == pytest.approx(2.0)
    assert values["loss"].dim() == 0


def test_dict_values_may_be_tensors_or_numbers_and_keep_their_graph():
    weight = torch.tensor(2.0, requires_grad=True)
    values = normalize_step_output({"loss": weight * 3, "accuracy": 0.5, "count": torch.tensor([1, 3])}, "train_step")
    assert values["loss"].requires_grad
    assert values["accuracy"] == 0.5
    assert values["count"].item() == pytest.approx(2.0)  # integer tensors become float means


@pytest.mark.parametrize(
    "output, expected",
    [
        (None, "returned None (did you forget 'return'?)"),
        ("loss", "returned a str"),
        ({"loss": "high"}, "returned a str ('high') for 'loss'"),
        ({"loss": [1.0]}, "returned a list ([1.0]) for 'loss'"),
        ({}, "returned an empty dict"),
    ],
)
def test_unusable_step_outputs_are_explained(output, expected):
    with pytest.raises(UsageError) as caught:
        normalize_step_output(output, "train_step")
    assert expected in str(caught.value)
    assert "train_step" in str(caught.value)


def test_means_are_weighted_by_batch_size():
    accumulator = PassAccumulator("train_step")
    accumulator.add({"loss": torch.tensor(1.0), "acc": 1.0}, weight=3)
    accumulator.add({"loss": torch.tensor(5.0), "acc": 0.0}, weight=1)
    result = accumulator.result()
    assert result.means == {"loss": pytest.approx(2.0), "acc": pytest.approx(0.75)}
    assert result.samples == 4 and result.steps == 2
    assert result.first_non_finite == {}


def test_many_steps_across_chunks_give_the_exact_mean():
    accumulator = PassAccumulator("train_step")
    for value in range(1500):  # more than one chunk of stacked values
        accumulator.add({"loss": torch.tensor(float(value))}, weight=2)
    assert accumulator.result().means["loss"] == pytest.approx(749.5)


def test_first_non_finite_step_is_reported_per_metric():
    accumulator = PassAccumulator("train_step")
    for value in (1.0, 2.0, math.nan, math.inf, 3.0):
        accumulator.add({"loss": torch.tensor(value), "other": 1.0}, weight=1)
    result = accumulator.result()
    assert result.first_non_finite == {"loss": 2}
    assert math.isnan(result.means["loss"])


def test_changing_metric_names_between_steps_is_an_error():
    accumulator = PassAccumulator("validate_step")
    accumulator.add({"loss": torch.tensor(1.0)}, weight=1)
    with pytest.raises(UsageError, match=r"returned the metrics \['loss', 'acc'\] at step 1 of this pass but \['loss'\] before"):
        accumulator.add({"loss": torch.tensor(1.0), "acc": 1.0}, weight=1)


def test_values_are_detached_so_graphs_are_not_kept_alive():
    accumulator = PassAccumulator("train_step")
    weight = torch.tensor(1.0, requires_grad=True)
    accumulator.add({"loss": weight * 2}, weight=1)
    assert not accumulator._pending[torch.device("cpu")][0].requires_grad


@pytest.mark.parametrize(
    "name, message",
    [
        (1, "metric names must be non-empty strings"),
        ("", "metric names must be non-empty strings"),
        ("acc.top1", "returned the metric 'acc.top1'; metric names may not contain '.' or start with '$'"),
        ("$loss", "Use 'loss'"),
    ],
)
def test_metric_names_that_a_sink_would_mangle_are_rejected_once(name, message):
    accumulator = PassAccumulator("train_step")
    with pytest.raises(UsageError) as caught:
        accumulator.add({name: 1.0}, weight=1)
    assert message in str(caught.value)
