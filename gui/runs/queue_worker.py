"""The queue's worker: a thread of the GUI process that starts the next waiting item when nothing runs.

- One at a time overall: a training item goes through the training runner (so History records it; its meta
  carries "queue_item"), a tool item through the tool runner, a generate item through the Generate page's runner
  (so that page shows its progress, grid and images as for its own Run), and none starts while any of the three
  is busy (they would compete for the GPU). A run started by hand (Start, Run, Generate, Run again) is waited for
  the same way.
- Cheap when idle: with nothing to start the thread sleeps until the queue changes (`RunQueue.on_change`); while
  an item waits behind a busy runner or a run started by hand, it looks again every `BUSY_POLL_S`.
- The item's end comes from its runner (`TrainingRunner.wait`): finished, failed (exit code), stopped, or
  cancelled when the Queue page's Cancel stopped it. A GUI that exits leaves it "running" in the file, which
  the next GUI marks "interrupted" (gui/runs/run_queue.py).

Torch- and gradio-free.
"""

from __future__ import annotations

import atexit
import os
import sys
import threading
import time

from backend.messages import msg
from gui.runs.run_queue import QueueItem, RunQueue
from gui.runs.runner import RunnerBusyError, TrainingRunner

BUSY_POLL_S = 2.0


class QueueWorker:
    def __init__(
        self,
        queue: RunQueue,
        training: TrainingRunner,
        tool: TrainingRunner,
        generate: TrainingRunner,
    ) -> None:
        """A runner per item kind (`ITEM_KINDS`): the training, tool and Generate page's runners."""
        self.queue = queue
        self.runners: dict[str, TrainingRunner] = {"training": training, "tool": tool, "generate": generate}
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self._exiting = False
        self._current: QueueItem | None = None
        queue.on_change(self._wake.set)

    def start(self) -> None:
        """Start the thread (once): the queue continues where the file says, unless it is paused."""
        if self._thread is not None:
            return
        # Runs before the runners' own atexit stop (registered earlier, so called later): the run that
        # the exit stops is not marked "stopped" as if the user had stopped it.
        atexit.register(self._exit)
        self._thread = threading.Thread(target=self._loop, name="run-queue", daemon=True)
        self._thread.start()

    def busy(self) -> bool:
        """Something runs: any runner, or a run a killed GUI left going (gui/runs/run_queue.py)."""
        return any(runner.running for runner in self.runners.values()) or self.queue.orphan_running()

    def cancel(self, item_id: str) -> str:
        """Cancel a waiting item, or stop the running one. Returns what happened: "cancelled", "stopped", ""."""
        if self.queue.cancel_waiting(item_id):
            return "cancelled"
        current = self._current
        if current is not None and current.id == item_id:
            self.queue.update(item_id, cancel_requested=True)
            self.runners[current.kind].stop()
            return "stopped"
        return ""

    def run_next(self) -> QueueItem | None:
        """Start the next waiting item if nothing runs and the queue is not paused, and wait until it ends;
        returns the item as it ended (None: nothing was started). The thread's step; tests call it directly."""
        if self.queue.paused or self.busy():
            return None
        item = self.queue.next_waiting()
        if item is None:
            return None
        runner = self.runners[item.kind]
        started = self.queue.update(item.id, status="running", started_at=time.time(), gui_pid=os.getpid())
        if started is None:
            return None
        self._current = started
        try:
            problem = self._missing_config(started)
            if problem:
                return self.queue.update(item.id, status="failed", ended_at=time.time(), error=problem)
            try:
                pid = runner.start(
                    started.argv, env=started.env, meta={**started.meta, "queue_item": started.id}
                )
            except RunnerBusyError:  # a Start by hand came first: the item waits again
                self.queue.update(item.id, status="waiting", started_at=None, gui_pid=None)
                return None
            except OSError as error:
                return self.queue.update(item.id, status="failed", ended_at=time.time(), error=str(error))
            self.queue.update(item.id, pid=pid)
            status = runner.wait()
            if self._exiting:
                return None  # the GUI is exiting: the next one marks it "interrupted"
            exit_code = runner.snapshot(tail=0).get("exit_code")
            ended = self.queue.item(item.id)
            if ended is not None and ended.cancel_requested and status == "stopped":
                status = "cancelled"
            return self.queue.update(item.id, status=status, ended_at=time.time(), exit_code=exit_code)
        finally:
            self._current = None

    def _missing_config(self, item: QueueItem) -> str:
        """A training item's TOML (written when it was queued) must still be there."""
        config = item.meta.get("config")
        if item.kind == "training" and config and not os.path.isfile(str(config)):
            return msg("gui.queue.config_missing", "its config file is gone: {path}; queue the run again from its page",
                       path=config)  # fmt: skip
        return ""

    def _loop(self) -> None:
        while not self._exiting:
            try:
                ran = self.run_next()
            except OSError as error:  # the queue file cannot be written: say so, try again later
                print(f"run queue: {error}", file=sys.stderr)
                ran = None
            if ran is not None:
                continue
            waiting = not self.queue.paused and self.queue.next_waiting() is not None
            self._wake.wait(BUSY_POLL_S if waiting else None)
            self._wake.clear()

    def _exit(self) -> None:
        self._exiting = True
        self._wake.set()
