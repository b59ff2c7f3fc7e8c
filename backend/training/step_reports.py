"""Step reports that do not stall the GPU.

Reading a step's loss on the host waits for the GPU to finish that step, so the CPU cannot queue
the next step's kernels meanwhile and the GPU idles while the next batch is prepared. On a GPU the
report of step N is therefore published after step N+1 has been queued; on the CPU there is nothing
to overlap and each step is published at once. Anything that reads the reports or is ordered after
them (saves, samples, validation, the end of training) calls `flush()` first, so the progress stream
keeps its order: the step line of step N always comes before step N's checkpoint or sample lines.

On CUDA the loss is copied to pinned host memory as soon as its step is queued, and an event is
recorded behind that copy; the read waits for that event only. `.item()` would wait for everything
queued so far, step N+1 included, and the lag would save nothing.
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


class _HostLoss:
    """A step's loss on its way to the host: on CUDA an asynchronous copy into pinned memory and the
    event recorded behind it; elsewhere the tensor itself."""

    def __init__(self, loss: torch.Tensor) -> None:
        loss = loss.detach()
        self._ready: torch.cuda.Event | None = None
        if loss.device.type == "cuda":
            host = torch.empty(loss.shape, dtype=loss.dtype, pin_memory=True)
            host.copy_(loss, non_blocking=True)
            self._ready = torch.cuda.Event()
            self._ready.record()  # on the current stream, right behind the copy
            loss = host
        self._value = loss

    def read(self) -> float:
        if self._ready is not None:
            self._ready.synchronize()  # this step's copy only, not the kernels queued after it
        return float(self._value.item())


class StepReports:
    def __init__(self, publish: Callable[[StepRecord, float], None], lag: int) -> None:
        self._publish = publish
        self.lag = lag
        self._pending: deque[tuple[StepRecord, _HostLoss | None]] = deque()

    def add(self, record: StepRecord) -> None:
        self._pending.append((record, _HostLoss(record.loss) if self.lag else None))
        while len(self._pending) > self.lag:
            self._publish_oldest()

    def flush(self) -> None:
        while self._pending:
            self._publish_oldest()

    def _publish_oldest(self) -> None:
        record, host = self._pending.popleft()
        self._publish(record, host.read() if host is not None else float(record.loss.item()))


def report_lag(device: torch.device) -> int:
    """How many steps a report waits: one where the device runs asynchronously to the host."""
    return 0 if device.type == "cpu" else 1
