"""Plain-text output for the terminal: aligned tables, local times, durations, values."""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Sequence


def table(headers: Sequence[str] | None, rows: Sequence[Sequence[str]], indent: str = "") -> str:
    """Columns padded to their widest cell, two spaces apart, under a header row (if any)."""
    lines_in = [headers, *rows] if headers is not None else list(rows)
    widths = [max(len(str(row[i])) for row in lines_in) for i in range(len(lines_in[0]))] if lines_in else []
    lines = []
    for row in lines_in:
        cells = [str(cell).ljust(width) for cell, width in zip(row, widths, strict=True)]
        lines.append((indent + "  ".join(cells)).rstrip())
    return "\n".join(lines)


def local_time(value: dt.datetime | None) -> str:
    return value.astimezone().strftime("%Y-%m-%d %H:%M:%S") if value is not None else "-"


def duration(value: dt.timedelta | None) -> str:
    if value is None:
        return "-"
    seconds = max(0, int(value.total_seconds()))
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


def number(value: float | None) -> str:
    """A metric value: six significant digits, as ``log.txt`` writes them."""
    if value is None:
        return "-"
    return str(value) if math.isnan(value) or math.isinf(value) else f"{value:.6g}"
