"""Per-step CPU time and, on CUDA, GPU time of a training run, taken inside the trainer's process.

`StepClock.attach(run)` marks the moment the run is built and then every `lr_scheduler.step()`
(called once per optimizer step by the loop, fused backward included). At each mark it reads the
process's CPU time (`getrusage`, self + waited-for children) and, on CUDA, records an event on the
current stream. After training, consecutive marks give per-step CPU seconds (the host work of a
step: contention on a shared machine stretches wall time much more than CPU time) and GPU seconds
(the device timeline between two steps' ends, from `Event.elapsed_time`; unaffected by how late
the host reads its clock).
"""

from __future__ import annotations

import time
from typing import Any

import torch

from benchmarks.lib.load import own_cpu_seconds


class StepClock:
    def __init__(self, cuda: bool) -> None:
        self.cuda = cuda
        self.walls: list[float] = []
        self.cpus: list[float] = []
        self.events: list[torch.cuda.Event] = []

    def mark(self) -> None:
        self.walls.append(time.perf_counter())
        self.cpus.append(own_cpu_seconds())
        if self.cuda:
            event = torch.cuda.Event(enable_timing=True)
            event.record()
            self.events.append(event)

    def attach(self, run: Any) -> None:
        """Mark now, and after every scheduler step of `run` (wrapping that one instance's `step`)."""
        scheduler = run.lr_scheduler
        original = scheduler.step

        def step_and_mark(*args: Any, **kwargs: Any) -> Any:
            result = original(*args, **kwargs)
            self.mark()
            return result

        scheduler.step = step_and_mark
        self.mark()

    def report(self) -> dict[str, list[float]]:
        """Per-step seconds: `step_wall_s`, `step_cpu_s` and (CUDA) `step_gpu_s`."""
        def deltas(values: list[float]) -> list[float]:
            return [round(b - a, 6) for a, b in zip(values, values[1:], strict=False)]

        result = {"step_wall_s": deltas(self.walls), "step_cpu_s": deltas(self.cpus)}
        if self.cuda and len(self.events) > 1:
            torch.cuda.synchronize()
            result["step_gpu_s"] = [round(a.elapsed_time(b) / 1000, 6)
                                    for a, b in zip(self.events, self.events[1:], strict=False)]
        return result
