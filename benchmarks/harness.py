"""Running one measurement: a fresh process, timed from the moment it is started to its exit.

Training scripts run with a pseudo-terminal as their stdout and stderr, as they would in a user's
shell: progress displays take the path they take on a terminal (a tqdm bar, not the plain lines
meant for log files). Everything the process prints goes to a log file.
"""

from __future__ import annotations

import fcntl
import os
import pty
import signal
import struct
import subprocess
import termios
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, TypeVar

from benchmarks.probe import now

T = TypeVar("T")

TERMINAL_SIZE = (40, 120)  # rows, columns: a fresh pty reports 0x0, which no user's terminal does


@dataclass(frozen=True)
class Finished:
    started: float  # CLOCK_MONOTONIC, just before the process was created
    exited: float  # when the harness saw it exit
    returncode: int
    log: Path


class MeasurementError(RuntimeError):
    pass


def rotated(items: Sequence[T], round_index: int) -> list[T]:
    """Round r starts with the r-th item, so each one runs early and late alike."""
    shift = round_index % len(items) if items else 0
    return [*items[shift:], *items[:shift]]


def run_process(argv: Sequence[str], *, cwd: Path, environment: dict[str, str], log: Path, terminal: bool, timeout: float) -> Finished:
    """Run ``argv`` to its end; its output goes to ``log`` (through a pseudo-terminal if ``terminal``)."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "wb") as sink:
        if not terminal:
            started = now()
            process = subprocess.Popen(argv, cwd=cwd, env=environment, stdin=subprocess.DEVNULL, stdout=sink, stderr=sink)
            return _wait(process, started, log, timeout, reader=None)
        controller, child_side = pty.openpty()
        fcntl.ioctl(child_side, termios.TIOCSWINSZ, struct.pack("HHHH", *TERMINAL_SIZE, 0, 0))
        try:
            started = now()
            process = subprocess.Popen(argv, cwd=cwd, env=environment, stdin=subprocess.DEVNULL, stdout=child_side, stderr=child_side)
        finally:
            os.close(child_side)
        reader = threading.Thread(target=_drain, args=(controller, sink), daemon=True)
        reader.start()
        try:
            return _wait(process, started, log, timeout, reader)
        finally:
            os.close(controller)


def _wait(process: subprocess.Popen[bytes], started: float, log: Path, timeout: float, reader: threading.Thread | None) -> Finished:
    try:
        returncode = process.wait(timeout=timeout)
    except BaseException as error:  # the timeout, or Ctrl-C: no measured process outlives the harness
        process.send_signal(signal.SIGKILL)  # only the process this harness started
        process.wait()
        if not isinstance(error, subprocess.TimeoutExpired):
            raise
        raise MeasurementError(f"{' '.join(process.args)} did not finish within {timeout:.0f} s (killed); see {log}") from None  # type: ignore[arg-type]
    exited = now()
    if reader is not None:
        reader.join(timeout=10)  # the rest of its output; a descendant still holding the terminal is not waited for
    return Finished(started, exited, returncode, log)


def _drain(controller: int, sink: BinaryIO) -> None:
    try:
        while data := os.read(controller, 1 << 16):
            sink.write(data)
    except (OSError, ValueError):  # EIO: every process holding the terminal closed it; or the log was closed
        return


def check_finished(finished: Finished, what: str) -> None:
    if finished.returncode != 0:
        tail = finished.log.read_text(errors="replace")[-3000:]
        raise MeasurementError(f"{what} exited with {finished.returncode}; the end of {finished.log}:\n{tail}")
