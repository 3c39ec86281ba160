"""PyTorch Lightning as its documentation shows it: a LightningModule and ``Trainer.fit``.

``options["trainer"]`` are the Trainer's arguments: none for Lightning's defaults (progress bar,
logger, model summary, sanity check, a checkpoint after every epoch); the bare variant turns all
but the checkpoint off.
"""

import lightning as L  # noqa: N812

from benchmarks.probe import Probe

PRECISION = {"32": "32-true", "bf16": "bf16-mixed"}

probe = Probe.from_environment()
workload = probe.workload


class Module(L.LightningModule):
    def __init__(self, model):
        super().__init__()
        self.model = model

    def training_step(self, batch, batch_idx):
        loss = probe.train_loss(self.model, batch)
        self.log("loss", loss)
        return loss

    def validation_step(self, batch, batch_idx):
        self.log("val_loss", probe.val_loss(self.model, batch))

    def configure_optimizers(self):
        return workload.optimizer(self.model)


model = workload.model(probe.seed)
train_loader, val_loader = workload.loaders(probe.seed)
probe.mark("fit_start")  # timed from here: the Trainer and fit(...)
trainer = L.Trainer(max_epochs=probe.epochs, precision=PRECISION[probe.precision], **probe.options["trainer"])
trainer.fit(Module(model), train_loader, val_loader)
probe.mark("fit_end")
probe.finish(model)
