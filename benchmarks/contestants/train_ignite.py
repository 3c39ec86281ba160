"""PyTorch-Ignite as its quickstart shows it: an ``Engine`` per phase, a checkpoint handler.

Validation runs at every epoch's end, then ``Checkpoint`` saves model, optimizer and trainer state
with a ``DiskSaver`` (a temp file, then a rename), keeping the last one.
"""

import torch
from ignite.engine import Engine, Events
from ignite.handlers import Checkpoint, DiskSaver
from ignite.metrics import Average

from benchmarks.probe import Probe
from benchmarks.workloads import autocast

probe = Probe.from_environment()
workload = probe.workload
model = workload.model(probe.seed)
train_loader, val_loader = workload.loaders(probe.seed)
probe.mark("fit_start")  # from here on as timed as fit(...): the optimizer, the engines, the handlers
optimizer = workload.optimizer(model)


def train_step(engine, batch):
    model.train()
    optimizer.zero_grad()
    with autocast(probe.precision):
        loss = probe.train_loss(model, batch)
    loss.backward()
    optimizer.step()
    return loss.item()


def validation_step(engine, batch):
    model.eval()
    with torch.no_grad(), autocast(probe.precision):
        return probe.val_loss(model, batch)


trainer = Engine(train_step)
evaluator = Engine(validation_step)
Average().attach(evaluator, "loss")


@trainer.on(Events.EPOCH_COMPLETED)
def validate(engine):
    evaluator.run(val_loader)
    print(f"epoch {engine.state.epoch}: train loss {engine.state.output:.4f}, val loss {evaluator.state.metrics['loss']:.4f}")


to_save = {"model": model, "optimizer": optimizer, "trainer": trainer}
checkpoint = Checkpoint(to_save, DiskSaver("checkpoints", require_empty=False), n_saved=1)
trainer.add_event_handler(Events.EPOCH_COMPLETED, checkpoint)

trainer.run(train_loader, max_epochs=probe.epochs)
probe.mark("fit_end")
probe.finish(model)
