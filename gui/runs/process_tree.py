"""Start a process in its own group and stop it with everything it started (Linux, macOS, Windows).

`accelerate launch` starts the trainer as a child (one per GPU), and the trainer may start
data-loader workers: stopping only the launcher would leave them training. Stop terminates the
whole tree, children first, and kills whatever is still alive after a grace period.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from typing import Any

import psutil


def new_group_options() -> dict[str, Any]:
    """Popen arguments that put the process in a group of its own: Ctrl+C in the GUI's console does
    not reach the trainer, and on POSIX the group lets Stop find orphaned descendants too."""
    if os.name == "nt":
        return {"creationflags": subprocess.CREATE_NEW_PROCESS_GROUP}
    return {"start_new_session": True}


def _signal_all(processes: list[psutil.Process], action: str) -> None:
    for process in processes:
        with contextlib.suppress(psutil.NoSuchProcess, psutil.AccessDenied):
            getattr(process, action)()


def stop_tree(process: subprocess.Popen[Any], timeout: float) -> None:
    """Terminate `process` and its descendants (SIGTERM; TerminateProcess on Windows), then kill
    those still alive after `timeout` seconds. Returns once the process itself has exited."""
    try:
        descendants = psutil.Process(process.pid).children(recursive=True)
    except psutil.NoSuchProcess:
        descendants = []
    # Deepest first, listed before anyone dies: an orphan is no longer anyone's child.
    _signal_all(descendants[::-1], "terminate")
    with contextlib.suppress(ProcessLookupError):
        process.terminate()
    deadline = time.monotonic() + timeout
    _, alive = psutil.wait_procs(descendants, timeout=timeout)
    _signal_all(alive, "kill")
    try:
        # Popen.wait, not psutil: it must collect the exit code itself.
        process.wait(timeout=max(0.0, deadline - time.monotonic()))
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
    if os.name == "posix":
        # Anything started while stopping is still in the group (it outlives its leader's exit).
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(process.pid, signal.SIGKILL)
