"""Mixed precision, accumulation and clipping in the loop: driven through `fit` with the loop tests' harness."""

from __future__ import annotations

import dataclasses

import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

from blowtorch import NonFiniteLossError, OptionError
from blowtorch.hooks import HookRegistry
from blowtorch.loop import fit
from blowtorch.optim import parse_optimizers
from blowtorch.options import RunOptions
from blowtorch.precision import Precision
from blowtorch.state import TrainState
from tests.unit.test_loop import harness, mse_step


def configured(run, precision: str = "32", **options):
    """Give a loop harness the update options that `run(...)` would give it."""
    rule_options = RunOptions(precision=precision, **options)
    run.trainee.precision = Precision.parse(precision)
    run.trainee.optimizers.rule = rule_options.update_rule(run.trainee.precision.scaler(torch.device("cpu")))
    run.trainee.options = RunOptions(**{**run.trainee.options.__dict__, **options, "precision": precision})
    return run


def regression(samples: int, batch_size: int) -> DataLoader:
    x = torch.randn(samples, 3, generator=torch.Generator().manual_seed(0))
    return DataLoader(TensorDataset(x, x.sum(1, keepdim=True)), batch_size=batch_size)  # the same order every time


@pytest.mark.parametrize("precision", ["bf16", "16"])
def test_steps_run_under_autocast_and_the_model_learns(precision):
    dtypes = []

    def step(batch, model):
        output = model(batch[0])
        dtypes.append(output.dtype)
        return ((output.float() - batch[1]) ** 2).mean()

    hooks = HookRegistry()
    hooks.register("train_step", step)
    run = configured(harness(hooks=hooks, data=(regression(64, 8), None), max_epochs=4), precision)
    fit(run.trainee, TrainState())
    assert set(dtypes) == {torch.bfloat16 if precision == "bf16" else torch.float16}
    losses = [m["loss"] for m in run.logger.metrics("train")]
    assert losses[-1] < losses[0] / 2
    assert next(iter(run.trainee.model.parameters())).dtype == torch.float32  # the weights stay float32


def test_float16_skips_an_overflowing_step_counts_it_and_goes_on():
    lrs = []

    def step(batch, model, step):
        loss = ((model(batch[0]).float() - batch[1]) ** 2).mean()
        return loss * 1e6 if step == 3 else loss  # finite, but its scaled float16 gradients overflow

    hooks = HookRegistry()
    hooks.register("train_step", step)
    per_step = lambda opt: {"scheduler": torch.optim.lr_scheduler.StepLR(opt, 1, gamma=0.5), "interval": "step"}  # noqa: E731
    run = configured(harness(hooks=hooks, data=(regression(40, 8), None), schedulers=per_step, max_epochs=2), "16")
    # A start low enough for this loss: the default 65536 overflows on ordinary steps until the scaler has backed off.
    run.trainee.optimizers.rule = dataclasses.replace(run.trainee.optimizers.rule, scaler=torch.amp.GradScaler("cpu", init_scale=256.0))
    run.trainee.hooks.register("after_epoch", lambda: lrs.append(run.trainee.optimizers.learning_rates()["main"]))
    fit(run.trainee, TrainState())
    amp = run.logger.metrics("amp")
    assert amp == [{"skipped_steps": 1.0, "scale": 128.0}, {"skipped_steps": 0.0, "scale": 128.0}]
    assert lrs == [0.05 * 0.5**4, 0.05 * 0.5**9]  # the skipped step did not step the per-step scheduler
    assert all(torch.isfinite(p).all() for p in run.trainee.model.parameters())


def test_accumulating_four_batches_of_eight_is_one_batch_of_thirty_two():
    torch.manual_seed(0)
    big, small = torch.nn.Linear(3, 1), torch.nn.Linear(3, 1)
    small.load_state_dict(big.state_dict())
    one = harness(big, data=(regression(64, 32), None), max_epochs=2)
    fit(one.trainee, TrainState())
    four = configured(harness(small, data=(regression(64, 8), None), max_epochs=2), accumulate_grad_batches=4)
    fit(four.trainee, TrainState())
    for a, b in zip(big.parameters(), small.parameters(), strict=True):
        torch.testing.assert_close(a, b, atol=1e-6, rtol=0)


def test_a_shorter_last_accumulation_group_still_steps():
    per_step = lambda opt: {"scheduler": torch.optim.lr_scheduler.StepLR(opt, 1, gamma=0.5), "interval": "step"}  # noqa: E731
    run = configured(harness(data=(regression(40, 4), None), schedulers=per_step, max_epochs=1), accumulate_grad_batches=4)
    fit(run.trainee, TrainState())  # 10 batches: groups of 4, 4 and 2
    assert run.trainee.optimizers.learning_rates()["main"] == 0.05 * 0.5**3
    assert run.saved[-1].state.global_step == 10  # `step` counts batches


def test_an_in_epoch_checkpoint_waits_for_the_end_of_its_accumulation_group():
    run = configured(harness(data=(regression(40, 4), None), max_epochs=1), accumulate_grad_batches=3, checkpoint_every_n_steps=4)
    fit(run.trainee, TrainState())
    assert [s.position.batches_done for s in run.saved if s.position is not None] == [6, 9]  # due at 4 and 8


def test_clipping_by_norm_bounds_the_gradients_and_logs_their_norm_before_clipping():
    norms = []

    def configure(model):
        optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
        optimizer.register_step_pre_hook(
            lambda opt, args, kwargs: norms.append(float(torch.stack([p.grad.norm() for p in model.parameters()]).norm()))
        )
        return optimizer

    model = torch.nn.Linear(3, 1)
    run = harness(model, data=(regression(40, 8), None), max_epochs=1)
    run.trainee.optimizers = parse_optimizers(configure(model))
    configured(run, gradient_clip_val=0.1)
    fit(run.trainee, TrainState())
    assert len(norms) == 5 and max(norms) <= 0.1 + 1e-6
    logged = run.logger.metrics("train")[0]["grad_norm"]
    assert logged > 0.1  # the norm before clipping, averaged over the epoch's five steps


def test_clipping_by_value_bounds_every_gradient_element():
    largest = []
    run = configured(harness(data=(regression(40, 8), None), max_epochs=1), gradient_clip_val=0.05, gradient_clip_algorithm="value")
    optimizer = run.trainee.optimizers.optimizers["main"]
    optimizer.register_step_pre_hook(
        lambda opt, args, kwargs: largest.append(max(float(p.grad.abs().max()) for p in opt.param_groups[0]["params"]))
    )
    fit(run.trainee, TrainState())
    assert largest and max(largest) == pytest.approx(0.05)  # clipped: every step's largest element is at the bound
    assert "grad_norm" not in run.logger.metrics("train")[0]  # only clipping by norm measures it


def test_a_non_finite_gradient_norm_stops_a_float32_run_although_the_loss_is_finite():
    def step(batch, model):
        bias = next(p for name, p in model.named_parameters() if name == "bias")
        return mse_step(batch, model)["loss"] + 0 * torch.sqrt(bias * 0).sum()  # d sqrt(0) = inf, times 0: NaN

    hooks = HookRegistry()
    hooks.register("train_step", step)
    run = configured(harness(hooks=hooks, data=(regression(40, 8), None), max_epochs=1), gradient_clip_val=1.0)
    with pytest.raises(NonFiniteLossError, match="the gradient norm became NaN or infinite in epoch 0.*gradient_clip_val"):
        fit(run.trainee, TrainState())


@pytest.mark.parametrize(
    "option, value, message",
    [
        ("precision", "fp16", "precision must be one of '32', 32, '32-true', 'bf16', 'bf16-mixed', '16', 16, '16-mixed'"),
        ("precision", 8, "precision must be one of"),
        ("accumulate_grad_batches", 0, "accumulate_grad_batches must be an int >= 1"),
        ("accumulate_grad_batches", 2.0, "accumulate_grad_batches must be an int >= 1"),
        ("gradient_clip_val", -1.0, "gradient_clip_val must be a positive number (or None for no clipping), got -1.0"),
        ("gradient_clip_val", "1", "gradient_clip_val must be a positive number"),
        ("gradient_clip_algorithm", "l2", "gradient_clip_algorithm must be one of ['norm', 'value'], got 'l2'"),
        ("compile", "yes", "compile must be True, False or a dict of torch.compile arguments"),
        ("compile", {"mode": "max-autotune", "fast": True}, "['fast'] is not torch.compile arguments; it takes ["),
    ],
)
def test_bad_update_options_name_the_option_and_the_accepted_values(option, value, message):
    with pytest.raises(OptionError) as caught:
        RunOptions(**{option: value}).check(resuming=True)
    assert message in str(caught.value)
