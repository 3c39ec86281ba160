"""Mixed precision, accumulation and torch.compile in real runs: checkpoints, and exact resume."""

from __future__ import annotations

import pytest

from blowtorch import OptionError, TrainingError
from tests.integration.test_resume import assert_same_tensors, epoch_metrics, final_state, train


@pytest.mark.parametrize("precision", ["bf16", "16"])
def test_mixed_precision_runs_resume_bit_identically_at_an_epoch_end_and_inside_an_epoch(tmp_path, precision):
    options = dict(precision=precision, checkpoint_every_n_steps=4)
    straight = train(tmp_path / "straight", max_epochs=4, **options)
    first = train(tmp_path / "split", max_epochs=2, **options)  # stops after an epoch
    with pytest.raises(RuntimeError, match="simulated crash"):  # then crashes inside epoch 2, after the checkpoint at step 24
        train(tmp_path / "split", max_epochs=4, resume=first.run_dir, crash_at_step=26, **options)
    resumed = train(tmp_path / "split", max_epochs=4, resume=first.run_dir, **options)

    a, b = final_state(straight.run_dir), final_state(resumed.run_dir)
    for key in ("model", "optimizers", "schedulers", "metrics", "scaler", "rng"):
        assert_same_tensors(a[key], b[key], key)
    assert epoch_metrics(tmp_path / "straight") == epoch_metrics(tmp_path / "split")
    losses = epoch_metrics(tmp_path / "straight")["train.loss"]
    assert losses[3] < losses[1]  # it learns
    if precision == "16":
        assert a["scaler"]["scale"] > 0 and set(a["scaler"]) >= {"scale", "growth_factor", "_growth_tracker"}
        assert sorted(epoch_metrics(tmp_path / "straight")["amp.scale"]) == [1, 2, 3]  # logged every optimizing epoch
    else:
        assert a["scaler"] is None


def test_a_run_with_accumulation_resumes_bit_identically_from_inside_an_epoch(tmp_path):
    # 10 batches per epoch: groups of 3, 3, 3, 1; the clipping adds train.grad_norm, whose epoch mean must survive the resume
    options = dict(accumulate_grad_batches=3, checkpoint_every_n_steps=4, gradient_clip_val=0.5)
    straight = train(tmp_path / "straight", max_epochs=3, **options)
    with pytest.raises(RuntimeError, match="simulated crash"):
        train(tmp_path / "split", max_epochs=3, crash_at_step=18, **options)
    crashed = next(p for p in (tmp_path / "split").iterdir() if p.name != "sacred")
    assert final_state(crashed)["position"]["batches_done"] == 6  # due at step 16, written at its group's end
    resumed = train(tmp_path / "split", max_epochs=3, resume=crashed, **options)
    a, b = final_state(straight.run_dir), final_state(resumed.run_dir)
    for key in ("model", "optimizers", "schedulers", "metrics"):
        assert_same_tensors(a[key], b[key], key)
    assert epoch_metrics(tmp_path / "straight") == epoch_metrics(tmp_path / "split")


def test_a_compiled_run_saves_the_users_module_and_resumes_with_and_without_compile(tmp_path):
    compiled = train(tmp_path, max_epochs=2, compile=True)
    plain = train(tmp_path / "plain", max_epochs=2)
    assert list(final_state(compiled.run_dir)["model"]) == list(final_state(plain.run_dir)["model"])  # no _orig_mod.
    train(tmp_path, max_epochs=3, resume=compiled.run_dir)  # an uncompiled run from a compiled one's checkpoint
    again = train(tmp_path, max_epochs=4, resume=compiled.run_dir, compile=True)  # and back
    assert final_state(again.run_dir)["epoch"] == 3
    assert sorted(epoch_metrics(tmp_path)["train.loss"]) == [0, 1, 2, 3]


@pytest.mark.parametrize(
    "option, value, accepted",
    [
        ("precision", "fp16", "'bf16', 'bf16-mixed', '16', 16, '16-mixed'"),
        ("accumulate_grad_batches", 0, "an int >= 1"),
        ("gradient_clip_val", 0, "a positive number"),
        ("gradient_clip_algorithm", "L2", "['norm', 'value']"),
        ("compile", {"modes": "reduce-overhead"}, "not torch.compile arguments"),
    ],
)
def test_bad_values_fail_before_training_naming_the_option_and_what_it_accepts(tmp_path, option, value, accepted):
    with pytest.raises(OptionError) as caught:
        train(tmp_path, max_epochs=2, **{option: value})
    assert str(caught.value).startswith(option) and accepted in str(caught.value)
    assert not tmp_path.exists() or list(tmp_path.iterdir()) == []  # nothing recorded, no run directory


def broken_backend(graph, example_inputs):
    raise RuntimeError("this backend cannot compile anything")


@pytest.mark.parametrize("backend", ["no-such-backend", broken_backend])  # fails in torch.compile / at the first call
def test_a_compile_failure_names_the_option_to_turn_off(tmp_path, backend):
    with pytest.raises(TrainingError, match=r"(?s)torch.compile failed: .*Pass compile=False to train without it"):
        train(tmp_path, max_epochs=2, compile={"backend": backend})
