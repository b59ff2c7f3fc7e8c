"""A History record of a training run that ran outside the GUI (tests only): its output fed through the runner's
own state and record writers, as if the GUI had run it (gui/runs/runner.py does the same per line)."""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import Any

from gui.runs.run_history import RunHistory
from gui.runs.run_state import RunState


def record_run(history: RunHistory, argv: Sequence[str], stdout: str, form: Mapping[str, Any], kind: str = "lora",
               exit_code: int = 0) -> str:  # fmt: skip
    """The run's id in `history`; `stdout` holds its @@progress lines."""
    started = time.time()
    record = history.begin(argv, {"kind": kind, "form": dict(form)}, started, pid=None)
    state = RunState(argv=list(argv), meta={"kind": kind}, status="running", started_at=started)
    for line in stdout.splitlines(keepends=True):
        state.add_output(line)
        record.add_output(line)
    state.status, state.exit_code, state.ended_at = (
        ("finished" if exit_code == 0 else "failed"),
        exit_code,
        time.time(),
    )
    record.finish(state.to_dict(tail=0))
    return record.id
