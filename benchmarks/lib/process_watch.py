"""Run a command and watch it: timestamped output lines, exact peak RSS, GPU memory where visible.

Both trainers of a side-by-side comparison run through `watch()`, so they are measured the same
way: every stdout/stderr line (and every `\\r`-separated tqdm update) is stamped with the time it
arrived; peak RSS is the kernel's high-water mark of the child (`os.wait4` rusage, children it
waited for included); GPU memory, when `nvidia-smi` exists, is the child's largest `used_memory`
seen by polling it every 0.5 s (includes the CUDA context, alike for both). CPU time: the child's
process tree (live descendants plus those already waited for) is sampled every 50 ms, so the CPU
seconds spent between any two output lines can be read off by interpolation (`cpu_at`); the
machine's load over the run comes from benchmarks/lib/load.py.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import psutil

from benchmarks.lib import load
from benchmarks.lib.memory import ru_maxrss_bytes


@dataclass
class Watched:
    returncode: int
    wall_s: float
    peak_rss: int
    gpu_peak_mib: float | None
    stdout: list[tuple[float, str]] = field(default_factory=list)  # (arrival time.time(), line)
    stderr: list[tuple[float, str]] = field(default_factory=list)
    cpu_samples: list[tuple[float, float]] = field(default_factory=list)  # (time.time(), tree CPU seconds)
    load: dict[str, Any] = field(default_factory=dict)

    def cpu_at(self, when: float) -> float | None:
        """The child tree's CPU seconds at `when` (time.time()), interpolated between samples."""
        return interpolate(self.cpu_samples, when)

    def tail(self, chars: int = 3000) -> str:
        lines = sorted(self.stdout + self.stderr)
        return "\n".join(text for _, text in lines)[-chars:]


def _reader(stream: IO[bytes], sink: list[tuple[float, str]], log: IO[str]) -> None:
    buffer = b""
    while True:
        chunk = stream.read1(65536) if hasattr(stream, "read1") else stream.read(65536)
        if not chunk:
            break
        buffer += chunk
        now = time.time()
        *complete, buffer = buffer.replace(b"\r\n", b"\n").replace(b"\r", b"\n").split(b"\n")
        for raw in complete:
            text = raw.decode("utf-8", errors="replace")
            sink.append((now, text))
            log.write(text + "\n")
    if buffer:
        text = buffer.decode("utf-8", errors="replace")
        sink.append((time.time(), text))
        log.write(text + "\n")


def interpolate(samples: list[tuple[float, float]], when: float) -> float | None:
    """Linear interpolation in (time, value) samples sorted by time; clamped at the ends."""
    if not samples:
        return None
    if when <= samples[0][0]:
        return samples[0][1]
    for (t0, v0), (t1, v1) in zip(samples, samples[1:], strict=False):
        if when <= t1:
            return v0 if t1 == t0 else v0 + (v1 - v0) * (when - t0) / (t1 - t0)
    return samples[-1][1]


def tree_cpu_seconds(process: psutil.Process) -> float:
    """User + system seconds of a process and all its descendants: a live process's own time plus
    that of the children it has waited for (each exited process is counted once, by its parent)."""
    total = 0.0
    for member in [process, *process.children(recursive=True)]:
        try:
            t = member.cpu_times()
        except psutil.Error:
            continue
        total += t.user + t.system + t.children_user + t.children_system
    return total


def _cpu_sampler(pid: int, stop: threading.Event, samples: list[tuple[float, float]]) -> None:
    try:
        process = psutil.Process(pid)
        while True:
            samples.append((time.time(), tree_cpu_seconds(process)))
            if stop.wait(0.05):
                return
    except psutil.Error:  # the child is gone: the last sample stands
        return


def _gpu_poller(pid: int, stop: threading.Event, peak: list[float]) -> None:
    query = ["nvidia-smi", "--query-compute-apps=pid,used_memory", "--format=csv,noheader,nounits"]
    while not stop.wait(0.5):
        try:
            out = subprocess.run(query, capture_output=True, text=True, timeout=10).stdout
        except (OSError, subprocess.SubprocessError):
            return
        for row in out.splitlines():
            parts = [p.strip() for p in row.split(",")]
            if len(parts) == 2 and parts[0] == str(pid) and parts[1].isdigit():
                peak[0] = max(peak[0], float(parts[1]))


def watch(argv: list[str], *, cwd: Path, env: dict[str, str], log_path: Path, timeout: float) -> Watched:
    """Run `argv` to completion (killed after `timeout` s) and return what was seen."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    stdout: list[tuple[float, str]] = []
    stderr: list[tuple[float, str]] = []
    start, before = time.perf_counter(), load.mark()
    cpu_samples: list[tuple[float, float]] = []
    with open(log_path, "w", encoding="utf-8") as log:
        process = subprocess.Popen(argv, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        readers = [threading.Thread(target=_reader, args=(s, sink, log), daemon=True)
                   for s, sink in ((process.stdout, stdout), (process.stderr, stderr))]
        stop, gpu_peak = threading.Event(), [0.0]
        gpu = shutil.which("nvidia-smi") is not None
        sampler = threading.Thread(target=_cpu_sampler, args=(process.pid, stop, cpu_samples), daemon=True)
        threads = readers + [sampler] + ([threading.Thread(target=_gpu_poller, args=(process.pid, stop, gpu_peak),
                                                           daemon=True)] if gpu else [])
        for thread in threads:
            thread.start()
        status, usage = None, None
        while status is None:
            pid, raw_status, raw_usage = os.wait4(process.pid, os.WNOHANG)
            if pid:
                status, usage = raw_status, raw_usage
            elif time.perf_counter() - start > timeout:
                process.kill()
            else:
                time.sleep(0.05)
        process.returncode = os.waitstatus_to_exitcode(status)
        stop.set()
        for thread in threads:
            thread.join(timeout=5)
        # The exact total from the kernel once the child is reaped (the sampler may have missed the end).
        cpu_samples.append((time.time(), usage.ru_utime + usage.ru_stime))
    return Watched(process.returncode, time.perf_counter() - start, ru_maxrss_bytes(usage),
                   gpu_peak[0] if gpu else None, stdout, stderr, cpu_samples, load.between(before, load.mark()))
