"""A configured experiment: a YAML config file, a config scope, a named config and a local module.

    python examples/configured/train.py
    python examples/configured/train.py with model.num_layers=4 model.use_dropout=True
    python examples/configured/train.py with quick -F my_runs -c "a quick try"
    python examples/configured/train.py print_config with quick
"""

from pathlib import Path

import torch
import torch.nn.functional as F
from torch.optim import AdamW
from torch.optim.lr_scheduler import CosineAnnealingLR
from torch.utils.data import DataLoader, TensorDataset

from blowtorch import Run

from model import MLP

run = Run(config_files=[Path(__file__).parent / "config" / "default.yaml"], random_seed=123)


@run.config
def scope(data):
    """A config scope: its local variables become config entries, computed from the YAML values."""
    steps_per_epoch = data["samples"] // data["batch_size"]  # batches per training epoch


@run.named_config
def quick():
    """Selected with `with quick`: a shorter run on less data."""
    data = {"samples": 1024}
    train = {"max_epochs": 3}


@run.train_step
@run.validate_step
def step(batch, model):
    x, y = batch
    logits = model(x)
    return {"loss": F.cross_entropy(logits, y), "accuracy": (logits.argmax(1) == y).float().mean()}


@run.configure_optimizers
def configure_optimizers(model):
    optimizer = AdamW(model.parameters(), lr=run["optim.lr"], weight_decay=run["optim.weight_decay"])
    # Epoch 0 is the baseline (no updates): max_epochs - 1 epochs optimize and step the scheduler.
    return optimizer, CosineAnnealingLR(optimizer, T_max=run["train.max_epochs"] - 1)


def two_spirals(samples: int, noise: float) -> TensorDataset:
    """Two interleaved spirals: a small task an MLP needs a few epochs for."""
    label = torch.randint(0, 2, (samples,))
    angle = torch.rand(samples) * 3 * torch.pi
    radius = angle / (3 * torch.pi)
    sign = 1 - 2 * label.float()
    points = torch.stack([sign * radius * torch.cos(angle), sign * radius * torch.sin(angle)], dim=1)
    return TensorDataset(points + noise * torch.randn_like(points), label)


data = run["data"]
model = MLP(in_features=2, **run["model"])
train_loader = DataLoader(two_spirals(data["samples"], data["noise"]), batch_size=data["batch_size"], shuffle=True)
val_loader = DataLoader(two_spirals(data["samples"] // 4, data["noise"]), batch_size=256)

run(
    model,
    train_loader,
    val_loader,
    max_epochs=run["train.max_epochs"],
    checkpoint_metric=run["train.checkpoint_metric"],
    smaller_is_better=False,
    use_gpu=False,
)
