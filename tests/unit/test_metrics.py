import gc
import math
import weakref

import numpy as np
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


def test_means_are_exact_for_any_mix_of_tensors_dtypes_and_numbers_across_chunks_and_a_resume():
    generator = torch.Generator().manual_seed(0)
    steps = 1300  # more than two chunks
    table = torch.randn(steps, 3, generator=generator, dtype=torch.float64).numpy()
    weights = [1 + step % 7 for step in range(steps)]

    def row(step: int) -> dict:
        loss, accuracy, scale = table[step]
        return {
            "loss": torch.tensor(loss, dtype=torch.float32),
            "accuracy": float(accuracy) if step % 3 else torch.tensor(accuracy, dtype=torch.float64),  # numbers now and then
            "scale": torch.tensor(scale, dtype=torch.float16 if step < 700 else torch.bfloat16),
        }

    first = PassAccumulator("train_step")
    for step in range(600):
        first.add(row(step), weight=weights[step])
    resumed = PassAccumulator("train_step")  # a checkpoint inside the pass, and the rest after a resume
    resumed.restore(first.snapshot())
    for step in range(600, steps):
        resumed.add(row(step), weight=weights[step])

    # what every value is once it reached the accumulator, and the weighted means as float64
    expected = np.array([[float(value) for value in row(step).values()] for step in range(steps)])
    w = np.asarray(weights, dtype=np.float64)
    means = (expected * w[:, None]).sum(axis=0) / w.sum()
    assert resumed.result().means == dict(zip(["loss", "accuracy", "scale"], means.tolist(), strict=True))


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
    class Marker:
        """Held by the loss's autograd graph: alive exactly as long as that graph is."""

    class Double(torch.autograd.Function):
        @staticmethod
        def forward(ctx, x):
            ctx.marker = Marker()
            markers.append(weakref.ref(ctx.marker))
            return x * 2

        @staticmethod
        def backward(ctx, grad):
            return grad * 2

    markers: list[weakref.ref] = []
    accumulator = PassAccumulator("train_step")
    weight = torch.tensor(1.0, requires_grad=True)
    for _ in range(3):
        accumulator.add({"loss": Double.apply(weight)}, weight=1)  # the loss itself goes out of scope at once
    gc.collect()
    assert [marker() for marker in markers] == [None, None, None]
    assert accumulator.result().means == {"loss": 2.0}


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
