"""Loggers receive every run's events and metrics; subclass :class:`BaseLogger` for your own."""

from blowtorch.loggers.base import COMPLETED, FAILED, INTERRUPTED, BaseLogger, RunInfo

__all__ = ["BaseLogger", "COMPLETED", "FAILED", "INTERRUPTED", "RunInfo"]
