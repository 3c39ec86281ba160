"""blowtorch as a user runs it: a script with ``Run(...)``, started from the command line.

Every default is blowtorch's (sacred file storage in ``train_logs/sacred``, git info, progress,
checkpoints), except what the workload needs: ``optimize_first=True`` (10 epochs that all train,
like the other contestants, instead of a baseline epoch 0). The model and data are built before
``Run(...)``, outside the timed part, as every contestant builds them. ``options["run"]`` adds the options
of a variant (``progress=False``), its command line the flags (``-u``).
"""

from benchmarks.probe import Probe
from blowtorch import Run

probe = Probe.from_environment()
workload = probe.workload
model = workload.model(probe.seed)  # seeds itself: the same initial weights as every other contestant
train_loader, val_loader = workload.loaders(probe.seed)

probe.mark("fit_start")  # timed from here: Run(...) (sacred's Experiment, the command line) and run(...)
run = Run(random_seed=probe.seed)


@run.train_step
def train_step(batch, model):
    return probe.train_loss(model, batch)


@run.validate_step
def validate_step(batch, model):
    return probe.val_loss(model, batch)


@run.configure_optimizers
def configure_optimizers(model):
    return workload.optimizer(model)


run(model, train_loader, val_loader, max_epochs=probe.epochs, optimize_first=True, precision=probe.precision, **probe.options["run"])
probe.mark("fit_end")
probe.finish(model)
