"""Sends every event to every logger, with sacred's failure policy.

A logger that fails at start stops the run before training (a broken setup should be loud); one
that fails later is disabled with one warning and training goes on, because a logging outage
must never cost a training run; every logger's ``on_finish`` is called, even after failures.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from blowtorch.errors import LoggerStartError, OptionError
from blowtorch.loggers.base import BaseLogger, RunInfo
from blowtorch.user_warnings import warn


class LoggerFanout:
    """Fans events out to a list of loggers and isolates their failures from each other."""

    def __init__(self, loggers: Sequence[BaseLogger]) -> None:
        self.loggers = check_loggers(loggers, "loggers")
        self._disabled: set[int] = set()
        self._started: list[BaseLogger] = []

    @property
    def started(self) -> bool:
        """Whether any logger has started (and so must be finished)."""
        return bool(self._started)

    def on_start(self, run: RunInfo) -> None:
        """Start every logger; one that fails raises :class:`LoggerStartError`. The caller calls
        :meth:`on_finish` in any case, after recording why the run ends."""
        for logger in self.loggers:
            try:
                logger.on_start(run)
            except Exception as error:
                raise LoggerStartError(
                    f"logger {_name(logger)} failed to start: {type(error).__name__}: {error}. "
                    f"Fix its set-up or remove it from loggers=[...]"
                ) from error
            self._started.append(logger)

    def log_metrics(self, metrics: Mapping[str, float], phase: str, epoch: int, step: int) -> None:
        self._send("log_metrics", metrics, phase, epoch, step)

    def on_epoch_end(self, epoch: int, step: int) -> None:
        self._send("on_epoch_end", epoch, step)

    def on_finish(self, status: str) -> None:
        started, self._started = self._started, []
        for logger in started:
            try:
                logger.on_finish(status)
            except Exception as error:  # finishing the others matters more than this one's error
                warn(f"logger {_name(logger)} failed to finish: {type(error).__name__}: {error}", RuntimeWarning)

    def _active(self) -> list[BaseLogger]:
        return [logger for logger in self._started if id(logger) not in self._disabled]

    def _send(self, event: str, *args: Any) -> None:
        for logger in self._active():
            try:
                getattr(logger, event)(*args)
            except Exception as error:
                self._disabled.add(id(logger))
                warn(
                    f"logger {_name(logger)} raised in {event} and is disabled for the rest of this run "
                    f"({type(error).__name__}: {error}); training goes on and every other logger still receives everything",
                    RuntimeWarning,
                )


def check_loggers(loggers: Sequence[BaseLogger] | None, where: str) -> list[BaseLogger]:
    """``loggers`` as a list, or an :class:`OptionError` for what is not a logger."""
    if loggers is None:
        return []
    if isinstance(loggers, BaseLogger) or not isinstance(loggers, (list, tuple)):
        raise OptionError(f"{where} takes a list of loggers, got {type(loggers).__name__}; e.g. loggers=[TensorBoardLogger()]")
    for logger in loggers:
        if not isinstance(logger, BaseLogger):
            raise OptionError(
                f"{where}: loggers must be blowtorch.loggers.BaseLogger instances, got {type(logger).__name__} "
                f"({logger!r:.80}); subclass BaseLogger and override the events you need"
            )
    return list(loggers)


def _name(logger: BaseLogger) -> str:
    return type(logger).__name__
