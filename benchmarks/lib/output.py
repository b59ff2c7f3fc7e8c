"""Result lines and summary statistics: every benchmark prints one JSON object per result line.

`machine()` describes where a figure was taken (CPU count, 1-minute load average, torch version,
GPU name), since figures on a shared machine only mean something next to the load they ran under.
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import sys
from typing import Any

# A child process's measurements, one line on its stdout (see trainer_child.py).
BENCH_PREFIX = "@@bench "


def emit(benchmark: str, **fields: Any) -> dict[str, Any]:
    """Print one result line (`{"benchmark": ..., ...}`) on stdout, flushed, and return it."""
    line = {"benchmark": benchmark, **fields}
    print(json.dumps(line, allow_nan=False, default=str), flush=True)
    return line


def skip(benchmark: str, reason: str) -> dict[str, Any]:
    """A result line saying why nothing was measured (and the same on stderr for a human)."""
    print(f"{benchmark}: skipped: {reason}", file=sys.stderr, flush=True)
    return emit(benchmark, skipped=True, reason=reason)


def percentile(values: list[float], fraction: float) -> float:
    """Linear-interpolation percentile (`fraction` in [0, 1]) of a non-empty list."""
    if not values:
        raise ValueError("percentile of no values")
    ordered = sorted(values)
    position = (len(ordered) - 1) * fraction
    low = int(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def median(values: list[float]) -> float:
    return statistics.median(values)


def machine() -> dict[str, Any]:
    """Where the figure was taken: cores, load, python/torch versions (torch only if already imported)."""
    info: dict[str, Any] = {
        "cpu_count": os.cpu_count(),
        "load_1m": round(os.getloadavg()[0], 2) if hasattr(os, "getloadavg") else None,
        "python": platform.python_version(),
    }
    torch = sys.modules.get("torch")
    if torch is not None:
        info["torch"] = torch.__version__
    return info
