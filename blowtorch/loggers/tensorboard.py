"""TensorBoard: scalars, learning rates and the resolved config, written with torch's SummaryWriter."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from blowtorch.errors import MissingExtraError
from blowtorch.loggers.base import BaseLogger, RunInfo, is_step_phase


class TensorBoardLogger(BaseLogger):
    """Writes TensorBoard event files, by default to ``<run directory>/tensorboard``.

    Tags are ``<phase>/<metric>``: ``train/loss`` and ``val/loss`` at the epoch, ``lr/<optimizer>``
    at the epoch, and ``train_step/loss`` and ``lr_step/<optimizer>`` at the global step when
    ``log_every_n_steps`` is set. The resolved config is stored as text and as hparams.

    Args:
        log_dir: a directory to write to instead; the run directory's name is appended, so several
            runs can share it (``tensorboard --logdir log_dir``).
        **kwargs: passed on to ``torch.utils.tensorboard.SummaryWriter`` (``flush_secs``, ...).
    """

    def __init__(self, log_dir: str | Path | None = None, **kwargs: Any) -> None:
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError as error:
            raise MissingExtraError(
                f"TensorBoardLogger needs the tensorboard package ({error}); install it with "
                f"pip install 'blowtorch[tensorboard]'"
            ) from error
        self._writer_class = SummaryWriter
        self.log_dir = Path(log_dir) if log_dir is not None else None
        self.kwargs = kwargs
        self.writer: Any = None
        self._config: dict[str, Any] = {}
        self._last: dict[str, float] = {}

    def on_start(self, run: RunInfo) -> None:
        directory = self.log_dir / run.name if self.log_dir is not None else run.run_dir / "tensorboard"
        self.writer = self._writer_class(log_dir=str(directory), **self.kwargs)
        self._config = dict(run.config)
        import yaml  # here, not at the top: `import blowtorch` stays fast

        text = yaml.safe_dump(self._config, sort_keys=False)
        # Markdown: indented lines render as a code block.
        self.writer.add_text("config", "\n".join("    " + line for line in text.splitlines()), run.start_step)

    def log_metrics(self, metrics: Mapping[str, float], phase: str, epoch: int, step: int) -> None:
        x = step if is_step_phase(phase) else epoch
        for name, value in metrics.items():
            self.writer.add_scalar(f"{phase}/{name}", value, x)
            if not is_step_phase(phase):
                self._last[f"{phase}/{name}"] = value

    def on_epoch_end(self, epoch: int, step: int) -> None:
        self.writer.flush()

    def on_finish(self, status: str) -> None:
        if self.writer is None:
            return
        from torch.utils.tensorboard.summary import hparams

        # The hparams plugin links each run's config to its final metrics (the scalar tags above).
        experiment, start, end = hparams(_flat(self._config), dict(self._last))
        file_writer = self.writer._get_file_writer()
        for summary in (experiment, start, end):
            file_writer.add_summary(summary)
        self.writer.add_text("status", status)
        self.writer.close()


def _flat(config: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"model.width": 8, ...}``: the hparams plugin takes scalars, strings and booleans only."""
    flat: dict[str, Any] = {}
    for key, value in config.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            flat.update(_flat(value, f"{name}."))
        elif isinstance(value, (bool, int, float, str)):
            flat[name] = value
        else:
            flat[name] = str(value)
    return flat
