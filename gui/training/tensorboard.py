"""One TensorBoard per GUI process, started on a run's logging folder from the training tabs.

TensorBoard runs as `<venv python> -m tensorboard.main` (a subprocess: the GUI never imports it),
bound to the GUI's own address so a GUI served on the LAN serves TensorBoard there too. Asking for
another folder restarts it; asking for the same one again reuses the running process. It stops
with the GUI. Torch-free.
"""

from __future__ import annotations

import atexit
import socket
import subprocess
import tempfile
import threading
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from backend.messages import msg
from gui.backend_process import REPO, venv_python
from gui.runs.process_tree import new_group_options, stop_tree

DEFAULT_PORT = 6006
START_TIMEOUT_S = 60.0


@dataclass(frozen=True)
class TensorBoardInfo:
    url: str
    logdir: Path
    reused: bool  # it was already running on this folder


class TensorBoardError(RuntimeError):
    pass


def _free_port(host: str, preferred: int) -> int:
    for port in (preferred, 0):
        with socket.socket() as probe:
            try:
                probe.bind((host, port))
            except OSError:
                continue
            return probe.getsockname()[1]
    raise TensorBoardError(msg("gui.tensorboard.no_port", "no free port on {host} for TensorBoard", host=host))


class TensorBoardServer:
    def __init__(self, host: str = "127.0.0.1", preferred_port: int = DEFAULT_PORT) -> None:
        self.host = host
        self.preferred_port = preferred_port
        self._lock = threading.Lock()
        self._process: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None
        self._logdir: Path | None = None
        self._url = ""
        atexit.register(self.stop)

    def open(self, logdir: str | Path, timeout: float = START_TIMEOUT_S) -> TensorBoardInfo:
        """Serve `logdir` (created if missing: a run writes into it later) and wait until it answers."""
        logdir = Path(logdir).expanduser().resolve()
        with self._lock:
            if self._process is not None and self._process.poll() is None and self._logdir == logdir:
                return TensorBoardInfo(self._url, logdir, reused=True)
            self._stop_locked()
            logdir.mkdir(parents=True, exist_ok=True)
            port = _free_port(self.host, self.preferred_port)
            argv = [venv_python(), "-m", "tensorboard.main", "--logdir", str(logdir),
                    "--host", self.host, "--port", str(port)]  # fmt: skip
            # Its chatter goes to a file, not a pipe nobody reads (a full pipe would block it).
            self._log = tempfile.TemporaryFile()  # noqa: SIM115 (lives as long as the process; closed in stop)
            self._process = subprocess.Popen(
                argv, cwd=REPO, stdout=self._log, stderr=subprocess.STDOUT, **new_group_options()
            )
            self._logdir = logdir
            # 0.0.0.0 is where it listens, not an address a browser can open.
            shown_host = "127.0.0.1" if self.host in ("0.0.0.0", "") else self.host
            self._url = f"http://{shown_host}:{port}/"
            process, url, log = self._process, self._url, self._log
        self._wait_until_serving(process, url, log, timeout)
        return TensorBoardInfo(url, logdir, reused=False)

    @staticmethod
    def _wait_until_serving(process: subprocess.Popen[bytes], url: str, log: IO[bytes], timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if process.poll() is not None:
                log.seek(0)
                tail = "\n".join(log.read().decode("utf-8", "replace").strip().splitlines()[-5:])
                raise TensorBoardError(msg(
                    "gui.tensorboard.exited", "TensorBoard exited with code {code}: {tail}", code=process.returncode, tail=tail
                ))  # fmt: skip
            try:
                with urllib.request.urlopen(url, timeout=2):
                    return
            except OSError:
                time.sleep(0.3)
        raise TensorBoardError(msg(
            "gui.tensorboard.no_answer", "TensorBoard did not answer at {url} within {seconds} s", url=url,
            seconds=f"{timeout:.0f}",
        ))  # fmt: skip

    def stop(self) -> None:
        with self._lock:
            self._stop_locked()

    def _stop_locked(self) -> None:
        if self._process is not None and self._process.poll() is None:
            stop_tree(self._process, timeout=5.0)
        if self._log is not None:
            self._log.close()
        self._process = None
        self._log = None
        self._logdir = None


SERVER = TensorBoardServer()
