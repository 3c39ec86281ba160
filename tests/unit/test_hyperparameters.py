"""Resuming with other optimizer or scheduler settings: the new settings win, the progress is kept."""

from __future__ import annotations

import copy

import pytest
import torch
from torch.optim.lr_scheduler import CosineAnnealingLR, LinearLR, ReduceLROnPlateau, SequentialLR, StepLR

from blowtorch.hyperparameters import load_optimizers
from blowtorch.optim import parse_optimizers


def trained(configure, epochs: int = 3):
    """An OptimizerSet after `epochs` optimizing epochs of two steps each, and its state as a checkpoint holds it."""
    torch.manual_seed(0)
    model = torch.nn.Linear(3, 1)
    optimizers = parse_optimizers(configure(model))
    for _ in range(epochs):
        for _ in range(2):
            optimizers.backward(model(torch.randn(4, 3)).pow(2).mean())
            optimizers.step()
        optimizers.step_epoch_schedulers({"val.loss": 1.0}, "val.loss", lambda name: name)
    return model, optimizers, copy.deepcopy(optimizers.state_dict())


def rebuilt(configure, model):
    return parse_optimizers(configure(model))


def adam_cosine(t_max: int, weight_decay: float = 0.0, lr: float = 0.1):
    def configure(model):
        optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay)
        return optimizer, CosineAnnealingLR(optimizer, T_max=t_max)

    return configure


def test_unchanged_settings_load_the_checkpoint_exactly():
    model, _, saved = trained(adam_cosine(4))
    fresh = rebuilt(adam_cosine(4), model)
    assert load_optimizers(fresh, saved["optimizers"], saved["schedulers"]) == []
    assert fresh.state_dict()["schedulers"] == saved["schedulers"]
    assert fresh.optimizers["main"].param_groups[0]["lr"] == saved["optimizers"]["main"]["param_groups"][0]["lr"]


def test_a_longer_cosine_continues_on_the_new_schedule_with_the_momentum_kept():
    model, _, saved = trained(adam_cosine(3), epochs=3)
    assert saved["optimizers"]["main"]["param_groups"][0]["lr"] == pytest.approx(0.0)  # the old schedule is over
    fresh = rebuilt(adam_cosine(6, weight_decay=0.01), model)
    changes = load_optimizers(fresh, saved["optimizers"], saved["schedulers"])
    assert changes == ["optimizer 'main' weight_decay: 0.0 -> 0.01", "scheduler 'main' (CosineAnnealingLR) T_max: 3 -> 6"]
    group = fresh.optimizers["main"].param_groups[0]
    assert group["lr"] == pytest.approx(0.05) and group["weight_decay"] == 0.01  # cosine(T_max=6) at epoch 3
    assert fresh.schedules["main"].scheduler.last_epoch == 3
    state = fresh.optimizers["main"].state_dict()["state"][0]
    assert torch.equal(state["exp_avg"], saved["optimizers"]["main"]["state"][0]["exp_avg"])


def test_a_new_learning_rate_is_a_changed_setting_also_under_a_scheduler():
    model, _, saved = trained(adam_cosine(6))
    fresh = rebuilt(adam_cosine(6, lr=0.2), model)
    assert load_optimizers(fresh, saved["optimizers"], saved["schedulers"]) == ["optimizer 'main' lr: 0.1 -> 0.2"]
    assert fresh.optimizers["main"].param_groups[0]["lr"] == pytest.approx(2 * saved["optimizers"]["main"]["param_groups"][0]["lr"])


def test_a_plateau_scheduler_keeps_its_learning_rate_and_history_but_takes_the_new_patience():
    def plateau(patience):
        def configure(model):
            optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
            return optimizer, {"scheduler": ReduceLROnPlateau(optimizer, patience=patience, factor=0.5), "monitor": "val.loss"}

        return configure

    model, _, saved = trained(plateau(0), epochs=3)  # the constant metric reduces the lr twice
    fresh = rebuilt(plateau(5), model)
    changes = load_optimizers(fresh, saved["optimizers"], saved["schedulers"])
    assert changes == ["scheduler 'main' (ReduceLROnPlateau) patience: 0 -> 5"]
    scheduler = fresh.schedules["main"].scheduler
    assert fresh.optimizers["main"].param_groups[0]["lr"] == pytest.approx(0.025)
    assert scheduler.patience == 5 and scheduler.best == saved["schedulers"]["main"]["best"]


def test_chained_schedulers_compare_their_inner_settings_only():
    def warmup_then_step(gamma):
        def configure(model):
            optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
            warmup = LinearLR(optimizer, start_factor=0.5, total_iters=2)
            return optimizer, SequentialLR(optimizer, [warmup, StepLR(optimizer, step_size=1, gamma=gamma)], milestones=[2])

        return configure

    model, _, saved = trained(warmup_then_step(0.5), epochs=3)
    assert load_optimizers(rebuilt(warmup_then_step(0.5), model), saved["optimizers"], saved["schedulers"]) == []
    fresh = rebuilt(warmup_then_step(0.9), model)
    changes = load_optimizers(fresh, saved["optimizers"], saved["schedulers"])
    assert len(changes) == 1 and changes[0].startswith("scheduler 'main' (SequentialLR) _schedulers:")
    assert fresh.schedules["main"].scheduler.last_epoch == 3
