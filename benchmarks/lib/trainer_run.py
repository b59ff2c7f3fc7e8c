"""Start the trainer in a child process (`benchmarks.lib.trainer_child`) and read what it reports.

Step times come from the trainer's own progress lines (docs/progress-protocol.md): each `step`
line carries the time `t` it was written, right after its optimizer step, so the difference
between consecutive step lines is what a user waits per step (data, forward, backward, optimizer,
logging). On CUDA the loop reads each loss one step late (backend/training/step_reports.py): a
step's line is written once the next step is queued, so the differences are still the step period
in steady state, and the host is never more than one step ahead of the GPU. Per-step CPU and GPU time come from the child's `@@bench`
line (benchmarks/lib/step_clock.py); the machine's load over the run from benchmarks/lib/load.py.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from backend.training.progress import parse_progress_line
from benchmarks.lib import load
from benchmarks.lib.output import BENCH_PREFIX

REPO = Path(__file__).resolve().parents[2]


@dataclass
class TrainerRun:
    returncode: int
    events: list[dict[str, Any]]
    bench: dict[str, Any]
    wall_s: float
    log_tail: str = ""
    step_times: list[float] = field(default_factory=list)
    load: dict[str, Any] = field(default_factory=dict)  # load.between() over the run

    def failure(self) -> str | None:
        if self.returncode == 0 and self.bench:
            return None
        errors = [e.get("message") for e in self.events if e.get("event") == "error"]
        return f"trainer exited with {self.returncode}: {errors or ''}\n{self.log_tail}"


def step_durations(events: list[dict[str, Any]]) -> list[float]:
    """Seconds of each optimizer step: the time since the previous step line (or the start line)."""
    times = [e["t"] for e in events if e.get("event") in ("start", "step")]
    return [b - a for a, b in zip(times, times[1:], strict=False)]


def trainer_env(device: str) -> dict[str, str]:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONUNBUFFERED": "1", "TOKENIZERS_PARALLELISM": "false"}
    if device == "cpu":
        env["CUDA_VISIBLE_DEVICES"] = ""  # accelerate then trains on the CPU
    return env


def omp_wait_policy() -> str:
    """OpenMP's wait policy the trainer inherits: it decides how much a shared machine slows a CPU run
    (docs/gpu-checks.md), so every result line names it."""
    return os.environ.get("OMP_WAIT_POLICY", "default")


def run_trainer(command: str, flags: list[str], *, device: str, flops: bool, log_path: Path,
                timeout: float) -> TrainerRun:
    """Train in a child process; its stderr goes to `log_path`, progress lines are parsed from stdout."""
    argv = [sys.executable, "-m", "benchmarks.lib.trainer_child", *(["--flops"] if flops else []), command, *flags]
    events: list[dict[str, Any]] = []
    bench: dict[str, Any] = {}
    log_path.parent.mkdir(parents=True, exist_ok=True)
    start, before = time.perf_counter(), load.mark()
    with open(log_path, "w", encoding="utf-8") as log:
        process = subprocess.Popen(argv, cwd=REPO, env=trainer_env(device), stdout=subprocess.PIPE,
                                   stderr=log, text=True)
        assert process.stdout is not None
        watchdog = threading.Timer(timeout, process.kill)  # also when the trainer hangs without output
        watchdog.start()
        try:
            for line in process.stdout:
                if line.startswith(BENCH_PREFIX):
                    bench = json.loads(line[len(BENCH_PREFIX):])
                    continue
                event = parse_progress_line(line)
                if event is not None:
                    events.append(event)
                else:
                    log.write(line)
            returncode = process.wait()
            if time.perf_counter() - start >= timeout:
                raise TimeoutError(f"the trainer ran longer than {timeout:.0f} s (log: {log_path})")
        finally:
            watchdog.cancel()
            if process.poll() is None:
                process.kill()
                process.wait()
    machine_load = load.between(before, load.mark())
    tail = log_path.read_text(encoding="utf-8", errors="replace")[-3000:]
    return TrainerRun(returncode, events, bench, time.perf_counter() - start, tail, step_durations(events), machine_load)
