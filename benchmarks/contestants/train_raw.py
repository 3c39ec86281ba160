"""The reference: a hand-written PyTorch loop, as a careful user writes it.

The epoch's training loss is summed on the device and read once per epoch (no ``.item()`` per
step); ``options["save"]`` writes model and optimizer with ``torch.save`` after every epoch. The
timed part starts where a framework's would: with building the optimizer.
"""

import torch

from benchmarks.probe import Probe
from benchmarks.workloads import autocast

probe = Probe.from_environment()
workload = probe.workload
model = workload.model(probe.seed)
train_loader, val_loader = workload.loaders(probe.seed)

probe.mark("fit_start")  # the optimizer is built in the timed part, as frameworks build it inside fit(...)
optimizer = workload.optimizer(model)
for epoch in range(probe.epochs):
    model.train()
    train_sum = torch.zeros(())
    for batch in train_loader:
        with autocast(probe.precision):
            loss = probe.train_loss(model, batch)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        train_sum += loss.detach()
    model.eval()
    val_sum = torch.zeros(())
    with torch.no_grad():
        for batch in val_loader:
            with autocast(probe.precision):
                val_sum += probe.val_loss(model, batch)
    print(f"epoch {epoch}: train loss {train_sum.item() / len(train_loader):.4f}, val loss {val_sum.item() / len(val_loader):.4f}")
    if probe.options["save"]:
        torch.save({"model": model.state_dict(), "optimizer": optimizer.state_dict(), "epoch": epoch}, "checkpoint.pt")
probe.mark("fit_end")
probe.finish(model)
