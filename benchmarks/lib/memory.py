"""Peak memory of a process: the kernel's high-water mark, and a sampler for a part of a run.

`ru_maxrss` is exact but covers the whole life of a process (model loading included); the
`RssSampler` thread records the highest RSS seen after `mark()`, e.g. during the training steps only.
"""

from __future__ import annotations

import os
import resource
import sys
import threading

import psutil

GIB = 1024**3


def ru_maxrss_bytes(usage: resource.struct_rusage) -> int:
    """`ru_maxrss` in bytes (kilobytes on Linux, bytes on macOS)."""
    return int(usage.ru_maxrss) * (1 if sys.platform == "darwin" else 1024)


def own_peak_rss() -> int:
    """This process's peak RSS in bytes so far."""
    return ru_maxrss_bytes(resource.getrusage(resource.RUSAGE_SELF))


def gib(value: float | None, digits: int = 3) -> float | None:
    return None if value is None else round(value / GIB, digits)


class RssSampler:
    """Samples the RSS of a process (this one by default) every `interval` seconds in a daemon thread."""

    def __init__(self, pid: int | None = None, interval: float = 0.05) -> None:
        self._process = psutil.Process(pid or os.getpid())
        self._interval = interval
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self.peak = 0
        self._thread = threading.Thread(target=self._run, name="rss-sampler", daemon=True)

    def _rss(self) -> int:
        try:
            return int(self._process.memory_info().rss)
        except psutil.Error:
            return 0

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            rss = self._rss()
            with self._lock:
                self.peak = max(self.peak, rss)

    def start(self) -> RssSampler:
        self.peak = self._rss()
        self._thread.start()
        return self

    def mark(self) -> None:
        """Forget the peak so far: from now on only later samples count."""
        with self._lock:
            self.peak = self._rss()

    def stop(self) -> int:
        self._stop.set()
        self._thread.join(timeout=1)
        with self._lock:
            self.peak = max(self.peak, self._rss())
            return self.peak
