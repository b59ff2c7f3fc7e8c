"""How busy the machine was while a run took place, and which of several runs was the quietest.

A wall-clock step time on a shared machine mixes the trainer's own work with waiting for cores that
other jobs hold. Around each run we read the system-wide CPU counters (/proc/stat through psutil)
and the CPU time of this process and its waited-for children (`getrusage`): busy core-seconds not
spent by us (steal time included: another VM ran) are `foreign_cores` once divided by the wall
time. Runs whose foreign load differs by more than LOAD_DIFF_CORES are marked; ratios are taken
from the quietest pair or run.
"""

from __future__ import annotations

import os
import resource
import time
from dataclasses import dataclass
from typing import Any

import psutil

LOAD_DIFF_CORES = 0.25  # foreign load difference (in cores) that marks two runs as not comparable
QUIET_CORES = 0.25  # a run with at most this much foreign load counts as quiet


def own_cpu_seconds() -> float:
    """User + system seconds of this process and of its children that have been waited for."""
    total = 0.0
    for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN):
        usage = resource.getrusage(who)
        total += usage.ru_utime + usage.ru_stime
    return total


def _busy_and_steal() -> tuple[float, float]:
    """System-wide busy and steal core-seconds since boot (guest time is already inside user)."""
    t = psutil.cpu_times()
    fields = ("user", "nice", "system", "irq", "softirq", "steal")
    return sum(getattr(t, f, 0.0) for f in fields), getattr(t, "steal", 0.0)


@dataclass(frozen=True)
class LoadMark:
    wall: float
    busy: float
    steal: float
    own: float
    load_1m: float | None


def mark() -> LoadMark:
    busy, steal = _busy_and_steal()
    load = round(os.getloadavg()[0], 2) if hasattr(os, "getloadavg") else None
    return LoadMark(time.perf_counter(), busy, steal, own_cpu_seconds(), load)


def between(start: LoadMark, end: LoadMark) -> dict[str, Any]:
    """The machine's load from `start` to `end`, in cores (core-seconds per wall second)."""
    wall = max(end.wall - start.wall, 1e-9)
    busy, own = end.busy - start.busy, end.own - start.own
    return {
        "load_1m_start": start.load_1m, "load_1m_end": end.load_1m,
        "busy_cores": round(busy / wall, 3), "own_cores": round(own / wall, 3),
        "foreign_cores": round(max(busy - own, 0.0) / wall, 3), "steal_cores": round((end.steal - start.steal) / wall, 3),
        "quiet": max(busy - own, 0.0) / wall <= QUIET_CORES,
    }


def load_differs(a: dict[str, Any], b: dict[str, Any]) -> bool:
    return abs(a["foreign_cores"] - b["foreign_cores"]) > LOAD_DIFF_CORES


def quietest(loads: list[dict[str, Any]]) -> int:
    """Index of the entry with the least foreign load (a pair: pass the sum of its two runs')."""
    return min(range(len(loads)), key=lambda i: loads[i]["foreign_cores"])
