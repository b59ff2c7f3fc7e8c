"""`python -m <module> ARGS` for the tests, started as a fork of a process that has already imported torch,
diffusers, transformers, peft and accelerate (tests/fork_server.py), one such process per pytest worker.

Why: a tiny training run takes 10-20 s, and 7-9 s of it is those imports (cProfile of a `--preflight` run:
8.7 of 11.1 s); the suite starts well over a hundred of them. What the command sees is what a fresh
`python -m` sees (its arguments, environment, working folder, exit code, output, imports of the backend made
fresh), except that those libraries are already imported. They read some environment variables when imported
(HF_*, TORCH*, OMP_* ...), so a run whose environment differs from the server's in anything but the variables
they never read when imported (KOHYA_*, PYTEST_CURRENT_TEST ...: tests/fork_server.py) starts a fresh
interpreter instead, as does every run with KOHYA_TEST_FORK=0. (Until 2026-12-05 PYTEST_CURRENT_TEST, which
pytest sets around every test, sent every run under pytest to a fresh interpreter.)

The same server takes the training runs of the GUIs the browser tests start, on a Unix socket (`fork_socket`;
tests/fork_server.py, gui/runs/forked_launch.py).
"""

from __future__ import annotations

import atexit
import json
import os
import queue
import signal
import subprocess
import sys
import tempfile
import threading
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from tests.fork_server import runtime_only

REPO = Path(__file__).resolve().parents[1]


def _same_import_environment(a: Mapping[str, str], b: Mapping[str, str]) -> bool:
    """Whether the preloaded libraries would be imported alike in `a` and `b` (tests/fork_server.py's
    RUNTIME_ONLY_*: the variables that may differ)."""
    keys = {key for key in {*a, *b} if not runtime_only(key)}
    return all(a.get(key) == b.get(key) for key in keys)


class ForkServer:
    def __init__(self, env: Mapping[str, str]) -> None:
        self.env = dict(env)
        self.folder = tempfile.TemporaryDirectory(prefix="fork-server-")
        self.socket_path = str(Path(self.folder.name) / "socket")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "tests.fork_server", "--socket", self.socket_path], cwd=REPO, env=self.env,
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, bufsize=1,
        )  # fmt: skip
        self.answers: queue.Queue[dict | None] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()
        self.lock = threading.Lock()
        self.ready = False  # waited for by the first command (a GUI's runs queue on the socket meanwhile)

    def _wait_until_ready(self) -> None:
        if not self.ready:
            ready = self.answers.get(timeout=300)
            if not ready or not ready.get("ready"):
                raise RuntimeError("the fork server did not start (tests/fork_server.py)")
            self.ready = True

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.answers.put(json.loads(line))
        self.answers.put(None)

    def _answer(self, timeout: float | None = None) -> dict:
        answer = self.answers.get(timeout=timeout)
        if answer is None:
            raise RuntimeError("the fork server ended")
        return answer

    def _start(self, module: str, args: Sequence[str], env: Mapping[str, str], cwd: Path, folder: Path) -> int:
        self._wait_until_ready()
        request = {"module": module, "args": list(args), "env": dict(env), "cwd": str(cwd),
                   "stdout": str(folder / "stdout"), "stderr": str(folder / "stderr")}  # fmt: skip
        assert self.process.stdin is not None
        self.process.stdin.write(json.dumps(request) + "\n")
        self.process.stdin.flush()
        return self._answer(timeout=60)["pid"]

    def run(self, module: str, args: Sequence[str], env: Mapping[str, str], cwd: Path,
            timeout: float | None) -> subprocess.CompletedProcess[str]:  # fmt: skip
        argv = [sys.executable, "-m", module, *args]
        with self.lock, tempfile.TemporaryDirectory(prefix="forked-") as name:
            folder = Path(name)
            pid = self._start(module, args, env, cwd, folder)
            output = lambda stream: (folder / stream).read_text(errors="replace")  # noqa: E731
            try:
                returncode = self._answer(timeout=timeout)["returncode"]
            except queue.Empty:
                os.killpg(pid, signal.SIGKILL)
                self._answer(timeout=60)
                raise subprocess.TimeoutExpired(argv, timeout or 0, output("stdout"), output("stderr")) from None
            return subprocess.CompletedProcess(argv, returncode, output("stdout"), output("stderr"))

    def run_until(self, module: str, args: Sequence[str], env: Mapping[str, str], cwd: Path,
                  stop: Callable[[str], bool]) -> int:  # fmt: skip
        with self.lock, tempfile.TemporaryDirectory(prefix="forked-") as name:
            (Path(name) / "stdout").touch()  # read from before the command opens it
            pid = self._start(module, args, env, cwd, Path(name))
            with open(Path(name) / "stdout", encoding="utf-8", errors="replace") as stdout:
                pending = ""
                while True:
                    try:
                        return self.answers.get(timeout=0.01)["returncode"]
                    except queue.Empty:
                        pass
                    pending += stdout.read()
                    *lines, pending = pending.split("\n")
                    if any(stop(line) for line in lines):
                        os.killpg(pid, signal.SIGKILL)
                        return self._answer(timeout=60)["returncode"]

    def close(self) -> None:
        if self.process.poll() is None and self.process.stdin is not None:
            self.process.stdin.close()
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
        self.folder.cleanup()


_SERVER: ForkServer | None = None


def _server(env: Mapping[str, str], server_env: Mapping[str, str] | None) -> ForkServer | None:
    """The worker's fork server (started on first use) if a command with `env` may be forked from it."""
    global _SERVER
    if os.environ.get("KOHYA_TEST_FORK", "1") == "0" or not hasattr(os, "fork"):
        return None
    if _SERVER is None:
        _SERVER = ForkServer(env if server_env is None else server_env)
        atexit.register(_SERVER.close)
    return _SERVER if _same_import_environment(env, _SERVER.env) else None


def fork_socket(server_env: Mapping[str, str]) -> str | None:
    """The Unix socket of the worker's fork server (started on first use with `server_env`), for a GUI's runs
    (KOHYA_TEST_FORK_SOCKET, gui/runs/forked_launch.py); None under KOHYA_TEST_FORK=0 or without fork."""
    server = _server(server_env, server_env)
    return None if server is None else server.socket_path


def run_module(module: str, args: Sequence[str], env: Mapping[str, str], cwd: Path = REPO,
               timeout: float | None = None, server_env: Mapping[str, str] | None = None,
               ) -> subprocess.CompletedProcess[str]:  # fmt: skip
    """As `subprocess.run([sys.executable, "-m", module, *args], capture_output=True, text=True, ...)`.
    `server_env`: the environment the worker's fork server is started with, on first use (default `env`;
    give one no test has changed, or a first test's own variables would send every later run to a fresh
    interpreter)."""
    server = _server(env, server_env)
    if server is not None:
        return server.run(module, args, env, cwd, timeout)
    return subprocess.run([sys.executable, "-m", module, *args], cwd=cwd, env=dict(env), capture_output=True,
                          text=True, timeout=timeout)  # fmt: skip


def run_module_until(module: str, args: Sequence[str], env: Mapping[str, str], stop: Callable[[str], bool],
                     cwd: Path = REPO, server_env: Mapping[str, str] | None = None) -> int:  # fmt: skip
    """Start `python -m module args`, hand each line it prints to `stop`, SIGKILL it (its whole process group)
    at the first line `stop` is true for; its return code (-9 when killed). Forked as `run_module` is."""
    server = _server(env, server_env)
    if server is not None:
        return server.run_until(module, args, env, cwd, stop)
    process = subprocess.Popen([sys.executable, "-m", module, *args], cwd=cwd, env=dict(env),
                               stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)  # fmt: skip
    assert process.stdout is not None
    for line in process.stdout:
        if stop(line.rstrip("\n")):
            process.send_signal(signal.SIGKILL)
            break
    return process.wait(timeout=60)
