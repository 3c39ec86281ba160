"""blowtorch's minimal example: the seed README's script, with generated data instead of ImageNet.

    python examples/minimal.py                  # train, record the run under train_logs/
    python examples/minimal.py -u               # the same, without sacred observers
    python examples/minimal.py print_config     # show the configuration and exit
"""

import torch
from torch import nn
from torch.optim import Adam
from torch.utils.data import DataLoader, TensorDataset

from blowtorch import Run

run = Run(random_seed=123)


@run.train_step
@run.validate_step
def step(batch, model):
    x, y = batch
    y_hat = model(x)
    loss = (y - y_hat) ** 2  # a tensor with one value per sample: blowtorch takes its mean
    return loss


# called once the model is on its device
@run.configure_optimizers
def configure_optimizers(model):
    return Adam(model.parameters(), lr=1e-2)


def make_dataset(samples: int) -> TensorDataset:
    """A small regression task: y = sin(x . w) plus noise, generated from the run's seeded RNG."""
    x = torch.randn(samples, 16)
    w = torch.linspace(-1, 1, 16)
    y = torch.sin(x @ w).unsqueeze(1) + 0.05 * torch.randn(samples, 1)
    return TensorDataset(x, y)


model = nn.Sequential(nn.Linear(16, 64), nn.ReLU(), nn.Linear(64, 1))
train_loader = DataLoader(make_dataset(2048), batch_size=64, shuffle=True)
val_loader = DataLoader(make_dataset(512), batch_size=128)

run(model, train_loader, val_loader, max_epochs=5)
