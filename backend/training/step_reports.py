"""Step reports that do not stall the GPU.

Reading a step's loss on the host (`.item()`) waits for the GPU to finish that step, so the CPU
cannot queue the next step's kernels meanwhile and the GPU idles while the next batch is prepared.
On a GPU the report of step N is therefore published after step N+1 has been queued (by then step
N's loss is computed, so the read costs nothing); on the CPU there is nothing to overlap and each
step is published at once. Anything that reads the reports or is ordered after them (saves, samples,
validation, the end of training) calls `flush()` first, so the progress stream keeps its order:
the step line of step N always comes before step N's checkpoint or sample lines.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

import torch


@dataclass
class StepRecord:
    step: int
    epoch: int
    step_in_epoch: int
    loss: torch.Tensor  # the step's loss, averaged over processes, still on the device
    lrs: list[float]
    extras: dict[str, float] = field(default_factory=dict)


class StepReports:
    def __init__(self, publish: Callable[[StepRecord, float], None], lag: int) -> None:
        self._publish = publish
        self.lag = lag
        self._pending: deque[StepRecord] = deque()

    def add(self, record: StepRecord) -> None:
        self._pending.append(record)
        while len(self._pending) > self.lag:
            self._publish_oldest()

    def flush(self) -> None:
        while self._pending:
            self._publish_oldest()

    def _publish_oldest(self) -> None:
        record = self._pending.popleft()
        self._publish(record, float(record.loss.item()))


def report_lag(device: torch.device) -> int:
    """How many steps a report waits: one where the device runs asynchronously to the host."""
    return 0 if device.type == "cpu" else 1
