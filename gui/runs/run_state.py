"""The state of one training run, built from its output: progress lines (docs/progress-protocol.md) and the log.

Pure data, no threads or processes: `TrainingRunner` feeds it lines under its lock and hands
`to_dict()` to the GUI, which polls it.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from backend.training.progress import PREFIX, PROTOCOL_VERSION, parse_progress_line

Status = Literal["idle", "running", "finished", "failed", "stopped"]
LOG_LINES = 5000
HISTORY_POINTS = 4000


class LossHistory:
    """Loss per step for the plot. Past `max_points` every other point is dropped, so a long run
    keeps its whole shape in bounded memory (and polls stay small)."""

    def __init__(self, max_points: int = HISTORY_POINTS) -> None:
        self.max_points = max_points
        self.every = 1  # keep steps that are a multiple of this
        self.rows: list[tuple[int, float | None, float | None]] = []

    def add(self, step: int, loss: float | None, avr_loss: float | None) -> None:
        if step % self.every:
            return
        self.rows.append((step, loss, avr_loss))
        if len(self.rows) > self.max_points:
            self.every *= 2
            self.rows = [row for row in self.rows if row[0] % self.every == 0]

    def columns(self) -> dict[str, list[Any]]:
        return {
            "step": [row[0] for row in self.rows],
            "loss": [row[1] for row in self.rows],
            "avr_loss": [row[2] for row in self.rows],
        }


@dataclass
class RunState:
    argv: list[str] = field(default_factory=list)
    # What the starter said about the run: its training kind ("lora", "finetune") and the form that
    # started it, so a reloaded page shows that run's settings and each tab only its own kind's run.
    meta: dict[str, Any] = field(default_factory=dict)
    status: Status = "idle"
    pid: int | None = None
    started_at: float | None = None
    ended_at: float | None = None
    exit_code: int | None = None
    step: int | None = None
    total: int | None = None
    epoch: int | None = None
    epochs: int | None = None
    initial_step: int | None = None
    loss: float | None = None
    avr_loss: float | None = None
    lr: list[float] = field(default_factory=list)
    s_per_step: float | None = None
    eta_s: float | None = None
    cache: dict[str, Any] | None = None
    history: LossHistory = field(default_factory=LossHistory)
    validation: list[tuple[int, float | None]] = field(default_factory=list)
    samples: list[dict[str, Any]] = field(default_factory=list)
    checkpoints: list[dict[str, Any]] = field(default_factory=list)
    output: str | None = None
    end_reason: str | None = None
    errors: list[dict[str, Any]] = field(default_factory=list)
    # False once a line of a newer protocol version was seen: show the log only (protocol rule).
    progress_supported: bool = True
    log: deque[str] = field(default_factory=lambda: deque(maxlen=LOG_LINES))
    log_count: int = 0
    _replace_last: bool = False

    def add_output(self, raw: str) -> None:
        """One line as read from the pipe (with its line ending)."""
        # A line ending in a bare \r is a console progress bar redrawing itself: the next line
        # replaces it, as on a terminal, instead of filling the log with every redraw.
        transient = raw.endswith("\r")
        line = raw.rstrip("\r\n")
        event = parse_progress_line(line)
        if event is not None:
            self.apply(event)
            line = line[: line.find(PREFIX)].rstrip()  # the protocol JSON is for the GUI, not the log
            if not line:
                return
        if self._replace_last and self.log:
            self.log[-1] = line
        else:
            self.log.append(line)
            self.log_count += 1
        self._replace_last = transient

    def apply(self, event: dict[str, Any]) -> None:
        if event["v"] > PROTOCOL_VERSION:
            self.progress_supported = False
        if not self.progress_supported:
            return
        kind = event["event"]
        if kind == "start":
            self.total = event.get("total")
            self.epochs = event.get("epochs")
            self.initial_step = event.get("initial_step")
            self.step = self.initial_step
            self.cache = None
        elif kind == "cache":
            self.cache = {key: event.get(key) for key in ("what", "done", "total")}
        elif kind == "step":
            for key in ("step", "total", "epoch", "loss", "avr_loss", "s_per_step", "eta_s"):
                setattr(self, key, event.get(key))
            self.lr = list(event.get("lr") or [])
            if isinstance(self.step, int):
                self.history.add(self.step, self.loss, self.avr_loss)
        elif kind == "sample":
            self.samples.append({key: event.get(key) for key in ("path", "step", "epoch", "prompt_index")})
        elif kind == "checkpoint":
            self.checkpoints.append({key: event.get(key) for key in ("path", "kind", "step", "epoch")})
        elif kind == "validation":
            self.validation.append((event.get("step"), event.get("loss")))
        elif kind == "error":
            self.errors.append(
                {
                    "message": event.get("message"),
                    "hint": event.get("hint"),
                    "errors": list(event.get("errors") or []),
                }
            )
        elif kind == "end":
            self.end_reason = event.get("reason")
            self.output = event.get("output")
            if event.get("step") is not None:
                self.step = event["step"]

    def to_dict(self, tail: int = 200) -> dict[str, Any]:
        """A plain, JSON-ready copy for the GUI; `tail` log lines at most."""
        end = self.ended_at if self.ended_at is not None else time.time()
        return {
            "status": self.status,
            "argv": list(self.argv),
            "kind": self.meta.get("kind"),
            "pid": self.pid,
            "started_at": self.started_at,
            "ended_at": self.ended_at,
            "elapsed_s": None if self.started_at is None else round(end - self.started_at, 1),
            "exit_code": self.exit_code,
            "step": self.step,
            "total": self.total,
            "epoch": self.epoch,
            "epochs": self.epochs,
            "initial_step": self.initial_step,
            "loss": self.loss,
            "avr_loss": self.avr_loss,
            "lr": list(self.lr),
            "s_per_step": self.s_per_step,
            "eta_s": self.eta_s,
            "cache": dict(self.cache) if self.cache else None,
            "history": self.history.columns(),
            "validation": {"step": [v[0] for v in self.validation], "loss": [v[1] for v in self.validation]},
            "samples": [dict(s) for s in self.samples],
            "checkpoints": [dict(c) for c in self.checkpoints],
            "output": self.output,
            "end_reason": self.end_reason,
            "errors": [{**e, "errors": list(e["errors"])} for e in self.errors],
            "progress_supported": self.progress_supported,
            "log_tail": _tail(self.log, tail),
            "log_lines": self.log_count,
        }


def _tail(lines: Sequence[str], count: int) -> list[str]:
    return list(lines)[-count:] if count > 0 else []
