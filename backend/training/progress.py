"""Machine-readable progress lines on stdout (protocol v1, documented in docs/progress-protocol.md).

Each line is `@@progress ` followed by one compact JSON object with `"v": 1`, `"event"` and `"t"`
(Unix time). The prefix lets the GUI runner and benchmarks pick these lines out of a log that also
holds library output; the JSON is ASCII-only (Japanese paths are \\u-escaped), so it survives any
console encoding. Non-finite numbers (a NaN loss) are written as null, keeping every line valid
JSON for any reader.
"""

from __future__ import annotations

import json
import math
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from typing import Any, Literal, TextIO

PROTOCOL_VERSION = 1
PREFIX = "@@progress "
EVENTS = ("start", "cache", "step", "sample", "checkpoint", "validation", "end", "error")
EndReason = Literal["completed", "interrupted", "error"]
CheckpointKind = Literal["model", "state"]


def _clean(value: Any) -> Any:
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_clean(v) for v in value]
    return value


def format_progress_line(event: str, fields: dict[str, Any], timestamp: float) -> str:
    """One protocol line (without the newline)."""
    if event not in EVENTS:
        raise ValueError(f"unknown progress event {event!r}")
    obj = {"v": PROTOCOL_VERSION, "event": event, "t": round(timestamp, 3), **_clean(fields)}
    return PREFIX + json.dumps(obj, separators=(",", ":"), allow_nan=False)


def parse_progress_line(line: str) -> dict[str, Any] | None:
    """The progress object in `line`, or None if it holds none.

    The prefix may sit anywhere in the line (stderr progress bars that end in `\\r` can share a
    line with it when both streams go to one pipe); text after the JSON object is ignored.
    """
    start = line.find(PREFIX)
    if start < 0:
        return None
    try:
        obj, _ = json.JSONDecoder().raw_decode(line, start + len(PREFIX))
    except json.JSONDecodeError:
        return None
    if (
        not isinstance(obj, dict)
        or not isinstance(obj.get("event"), str)
        or not isinstance(obj.get("v"), int)
    ):
        return None
    return obj


class ProgressReporter:
    """Writes protocol lines; construct with `enabled=accelerator.is_main_process` so only one process reports."""

    def __init__(
        self,
        stream: TextIO | None = None,
        enabled: bool = True,
        clock: Callable[[], float] = time.time,
        speed_window: int = 20,
    ) -> None:
        self._stream = stream
        self.enabled = enabled
        self._clock = clock
        self._lock = threading.Lock()
        # (step, time) of the latest steps: seconds per step over a window follows speed changes
        # (caching, sampling pauses) without the noise of a single step.
        self._recent: deque[tuple[int, float]] = deque(maxlen=max(2, speed_window))
        self._total_steps: int | None = None

    def emit(self, event: str, **fields: Any) -> None:
        if not self.enabled:
            return
        line = format_progress_line(event, fields, self._clock())
        stream = self._stream if self._stream is not None else sys.stdout
        with self._lock:
            stream.write(line + "\n")
            stream.flush()

    def start(self, *, total_steps: int, total_epochs: int, initial_step: int = 0, **extra: Any) -> None:
        """Training begins (after models and data are ready); `initial_step` > 0 when resuming."""
        self._total_steps = total_steps
        self._recent.clear()
        self._recent.append((initial_step, self._clock()))
        self.emit("start", total=total_steps, epochs=total_epochs, initial_step=initial_step, **extra)

    def step(
        self,
        *,
        step: int,
        epoch: int,
        loss: float,
        avr_loss: float,
        lr: Sequence[float],
        total: int | None = None,
        **extra: Any,
    ) -> None:
        """One optimizer step done; `step` counts from 1, `epoch` too; `lr` has one value per param group."""
        total = total if total is not None else self._total_steps
        self._recent.append((step, self._clock()))
        (first_step, first_t), (last_step, last_t) = self._recent[0], self._recent[-1]
        s_per_step = (last_t - first_t) / (last_step - first_step) if last_step > first_step else None
        eta = s_per_step * max(0, total - step) if s_per_step is not None and total is not None else None
        self.emit(
            "step",
            step=step,
            total=total,
            epoch=epoch,
            loss=float(loss),
            avr_loss=float(avr_loss),
            lr=[float(x) for x in lr],
            s_per_step=None if s_per_step is None else round(s_per_step, 4),
            eta_s=None if eta is None else round(eta, 1),
            **extra,
        )

    def sample(self, *, path: str, step: int, epoch: int | None, prompt_index: int) -> None:
        self.emit("sample", path=str(path), step=step, epoch=epoch, prompt_index=prompt_index)

    def checkpoint(self, *, path: str, kind: CheckpointKind, step: int, epoch: int | None) -> None:
        self.emit("checkpoint", path=str(path), kind=kind, step=step, epoch=epoch)

    def validation(self, *, step: int, epoch: int | None, loss: float, **extra: Any) -> None:
        self.emit("validation", step=step, epoch=epoch, loss=float(loss), **extra)

    def end(self, *, reason: EndReason, output: str | None, step: int | None = None) -> None:
        self.emit("end", reason=reason, output=None if output is None else str(output), step=step)

    def error(self, *, message: str, hint: str | None = None) -> None:
        self.emit("error", message=message, hint=hint)


class LossRecorder:
    """Moving average of the loss over the last epoch's worth of steps (sd-scripts' avr_loss).

    During the first epoch every step is kept; afterwards the value at the same step of the
    previous epoch is replaced. Unlike sd-scripts, a resumed run does not average in zeros for
    steps it has not seen, and a NaN leaves the average as soon as it leaves the window.
    """

    def __init__(self) -> None:
        self._losses: list[float | None] = []
        self._total = 0.0  # sum of the finite values in the window
        self._count = 0
        self._nonfinite = 0

    def _forget(self, value: float | None) -> None:
        if value is None:
            return
        self._count -= 1
        if math.isfinite(value):
            self._total -= value
        else:
            self._nonfinite -= 1

    def add(self, *, epoch: int, step: int, loss: float) -> None:
        """`epoch` from 0, `step` the index of the step within that epoch (from 0)."""
        loss = float(loss)
        if epoch == 0:
            self._losses.append(loss)
        else:
            if len(self._losses) <= step:
                self._losses.extend([None] * (step + 1 - len(self._losses)))
            self._forget(self._losses[step])
            self._losses[step] = loss
        self._count += 1
        if math.isfinite(loss):
            self._total += loss
        else:
            self._nonfinite += 1

    @property
    def moving_average(self) -> float:
        if self._nonfinite:
            return math.nan
        return self._total / self._count if self._count else 0.0
