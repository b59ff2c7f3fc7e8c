"""`TrainingRunner`: owns at most one training process, reads its output, stops its whole tree.

The run belongs to the GUI process, not to a browser tab: the page polls `snapshot()` on a timer,
so closing the tab leaves the run alone and reopening it shows where it is. Torch-free.
"""

from __future__ import annotations

import atexit
import io
import os
import subprocess
import sys
import threading
import time
from collections import deque
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from backend.messages import msg
from gui.backend_process import REPO
from gui.runs.forked_launch import forked_popen
from gui.runs.process_tree import new_group_options, stop_tree
from gui.runs.run_state import LOG_LINES, RunState

if TYPE_CHECKING:
    from gui.runs.run_history import RunHistory, RunRecord

# After the process exits, how long its output may still be drained before the run is final (a descendant that
# outlives it can hold the pipe open). Normally the pipe is empty at once; a reader that a loaded machine stalls
# (its History writes wait on a busy disk) must still get the last lines, a validation video's among them, in
# before the run is called finished and the page stops polling.
DRAIN_SECONDS = 30.0


class RunnerBusyError(RuntimeError):
    """A run was started while another one is still running."""


class TrainingRunner:
    def __init__(
        self, cwd: str | os.PathLike[str] = REPO, stop_timeout: float = 10.0, log_lines: int = LOG_LINES,
        history: RunHistory | None = None,
    ) -> None:  # fmt: skip
        """`history`: where each run is recorded (gui/runs/run_history.py); None records nothing (the tool runner)."""
        self.cwd = Path(cwd)
        self.history = history
        self._record: RunRecord | None = None
        self.stop_timeout = stop_timeout
        self._log_lines = log_lines
        self._lock = threading.Lock()
        self._state = RunState()
        self._process: subprocess.Popen[bytes] | None = None
        self._stop_requested = False
        self._waiter: threading.Thread | None = None
        # A GUI that exits (Ctrl+C in its console) takes its run along instead of orphaning it.
        atexit.register(self.stop)

    @property
    def running(self) -> bool:
        with self._lock:
            return self._state.status == "running"

    def start(
        self, argv: Sequence[str], env: Mapping[str, str] | None = None, meta: Mapping[str, Any] | None = None
    ) -> int:
        """Start `argv` (a list, no shell) in the repo root; returns its pid. `env` adds variables;
        `meta` is kept with the run (`meta()`; its "kind" also in `snapshot()`)."""
        with self._lock:
            if self._state.status == "running":
                raise RunnerBusyError(msg(
                    "gui.runner.busy", "a training run is already running (pid {pid}); stop it or wait until it ends",
                    pid=self._state.pid,
                ))  # fmt: skip
            # Unbuffered so progress lines arrive as they are written; UTF-8 so Japanese paths in
            # the log survive a cp932 or cp1252 console on Windows.
            full_env = {**os.environ, **(env or {}), "PYTHONUNBUFFERED": "1", "PYTHONIOENCODING": "utf-8"}
            # Under the browser tests only (KOHYA_TEST_FORK_SOCKET): the same command, forked (forked_launch.py).
            process = forked_popen(argv, full_env, self.cwd) or subprocess.Popen(
                list(argv),
                cwd=self.cwd,
                env=full_env,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                **new_group_options(),
            )
            self._process = process
            self._stop_requested = False
            self._state = RunState(
                argv=list(argv),
                meta=dict(meta or {}),
                status="running",
                pid=process.pid,
                started_at=time.time(),
                log=deque(maxlen=self._log_lines),
            )
            self._record = self._begin_record(process.pid, env)
            reader = threading.Thread(target=self._read, args=(process,), name="training-log", daemon=True)
            self._waiter = threading.Thread(
                target=self._wait, args=(process, reader), name="training-wait", daemon=True
            )
            reader.start()
            self._waiter.start()
            return process.pid

    def stop(self, timeout: float | None = None) -> bool:
        """Stop the run and everything it started; True if a run was stopped. Blocks until it is final."""
        with self._lock:
            process = self._process
            # An exited process (its output still draining) has nothing left to stop, and its pid
            # may already belong to someone else.
            if process is None or self._state.status != "running" or process.poll() is not None:
                return False
            self._stop_requested = True
        stop_tree(process, self.stop_timeout if timeout is None else timeout)
        self.wait()
        return True

    def wait(self, timeout: float | None = None) -> str:
        """Wait until the current run is final (or `timeout` passes); returns the status."""
        waiter = self._waiter
        if waiter is not None:
            waiter.join(timeout)
        with self._lock:
            return self._state.status

    def snapshot(self, tail: int = 200) -> dict[str, Any]:
        """Everything the GUI shows, as a plain dict (see RunState.to_dict); safe from any thread."""
        with self._lock:
            return self._state.to_dict(tail)

    def meta(self) -> dict[str, Any]:
        """What `start` was told about the current (or last) run."""
        with self._lock:
            return dict(self._state.meta)

    def log_text(self) -> str:
        """The whole kept log (the last `log_lines` lines)."""
        with self._lock:
            return "\n".join(self._state.log)

    def _read(self, process: subprocess.Popen[bytes]) -> None:
        assert process.stdout is not None
        # Decoded here rather than by Popen(text=True): that would turn a bare \r (a redrawn
        # progress bar) into a line break; a bad byte must not end the reader either.
        stream = io.TextIOWrapper(process.stdout, encoding="utf-8", errors="replace", newline="")
        for raw in stream:
            with self._lock:
                if self._process is not process:
                    continue
                self._state.add_output(raw)
                record = self._record
            if record is not None:
                record.add_output(raw)

    def _wait(self, process: subprocess.Popen[bytes], reader: threading.Thread) -> None:
        exit_code = process.wait()
        reader.join(DRAIN_SECONDS)
        with self._lock:
            state = self._state
            state.exit_code = exit_code
            state.ended_at = time.time()
            if self._stop_requested:
                state.status = "stopped"
            else:
                state.status = "finished" if exit_code == 0 else "failed"
            record, final = self._record, state.to_dict(tail=0)
        if record is not None:
            try:
                record.finish(final)
            except OSError as error:
                print(f"run history: cannot write {record.folder}: {error}", file=sys.stderr)

    def _begin_record(self, pid: int, env: Mapping[str, str] | None) -> RunRecord | None:
        """The run's record (under the lock, before its reader starts); None when there is no history or it
        cannot be written: the run goes on either way."""
        if self.history is None:
            return None
        try:
            meta = {**self._state.meta, "env": dict(env or {})}
            return self.history.begin(self._state.argv, meta, self._state.started_at, pid)
        except OSError as error:
            print(f"run history: cannot record the run in {self.history.folder}: {error}", file=sys.stderr)
            return None
