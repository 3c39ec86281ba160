"""The progress display: a tqdm bar on a terminal, a plain line every few seconds elsewhere.

Whether the output is a terminal is decided before sacred starts capturing it (sacred's capture
turns stderr into a pipe), so a terminal keeps its bar while sacred's captured output, CI logs
and ``cout.txt`` get a few plain lines instead of thousands of bar redraws.
"""

from __future__ import annotations

import shutil
import sys
import time
from collections.abc import Mapping
from typing import Any

from blowtorch.loggers.base import BaseLogger, is_step_phase
from blowtorch.loggers.textfile import format_metrics


class Progress(BaseLogger):
    """Shows each pass's progress and prints each phase's metrics when it ends."""

    def __init__(self, enabled: bool = True, interactive: bool | None = None, line_interval: float = 10.0) -> None:
        self.enabled = enabled
        self.interactive = sys.stderr.isatty() if interactive is None else interactive
        # Some terminals (fresh ptys, containers) report a size of 0x0; tqdm then hides its bar.
        self.columns, self.rows = shutil.get_terminal_size()
        self.line_interval = line_interval
        self._bar: Any = None
        self._label = ""
        self._total: int | None = None
        self._done = 0
        self._skipped = 0
        self._started = 0.0
        self._last_line = 0.0
        self._loss_text = ""

    def start_pass(self, phase: str, epoch: int, total: int | None, done: int = 0) -> None:
        """A pass begins; ``done`` steps of it were already made before a resume."""
        if not self.enabled:
            return
        self._label = f"epoch {epoch} {phase}"
        self._total, self._done, self._loss_text = total, done, ""
        self._skipped = done
        self._started = self._last_line = time.monotonic()
        if self.interactive:
            from tqdm.auto import tqdm

            self._bar = tqdm(
                total=total, initial=done, desc=self._label, unit="step", ncols=self.columns, nrows=self.rows,
                leave=False, file=sys.stderr,
            )  # fmt: skip

    def advance(self) -> None:
        """One step done."""
        self.update(self._done + 1)

    def update(self, done: int) -> None:
        """``done`` steps of the pass are done. The loop calls this a few times a second, not every step."""
        if not self.enabled:
            return
        if self._bar is not None:
            self._bar.update(done - self._done)
            self._done = done
            return
        self._done = done
        now = time.monotonic()
        if now - self._last_line >= self.line_interval:
            self._last_line = now
            self._print(self._status_line(now))

    def show_loss(self, loss: float) -> None:
        """The running loss, as the loop reads it from the device about once a second."""
        if not self.enabled:
            return
        self._loss_text = f"loss {loss:.4g}"
        if self._bar is not None:
            self._bar.set_postfix_str(self._loss_text, refresh=False)

    def end_pass(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None

    def log_metrics(self, metrics: Mapping[str, float], phase: str, epoch: int, step: int) -> None:
        if self.enabled and not is_step_phase(phase):  # single steps would flood the terminal
            elapsed = time.monotonic() - self._started
            self._print(f"epoch {epoch} {phase:<5} {format_metrics(metrics)}  ({_duration(elapsed)})")

    def _status_line(self, now: float) -> str:
        elapsed = now - self._started
        rate = (self._done - self._skipped) / elapsed if elapsed > 0 else 0.0
        if self._total:
            eta = (self._total - self._done) / rate if rate > 0 else 0.0
            position = f"{self._done}/{self._total} ({100 * self._done / self._total:.0f}%)"
            timing = f"{rate:.1f} steps/s, ETA {_duration(eta)}"
        else:
            position, timing = f"{self._done} steps", f"{rate:.1f} steps/s"
        return "  ".join(part for part in (self._label, position, self._loss_text, timing) if part)

    def _print(self, line: str) -> None:
        if self.interactive:
            from tqdm.auto import tqdm

            tqdm.write(line, file=sys.stderr)
        else:
            print(line, file=sys.stderr, flush=True)


def _duration(seconds: float) -> str:
    seconds = int(seconds)
    return f"{seconds // 3600}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"
