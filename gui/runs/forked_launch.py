"""Tests only: a run's command started as a fork of the test worker's fork server (tests/fork_server.py), which
has already imported torch, diffusers, transformers, peft and accelerate, instead of a fresh interpreter.

Used only when KOHYA_TEST_FORK_SOCKET names the server's socket (the browser tests set it for the GUIs they
start, tests/gui/test_browser.py); a GUI started by a user never has it. The command line is the one the GUI
built, unchanged: `python -m accelerate.commands.launch ... -m backend.<command> ...` runs the real launcher,
whose own start of the trainer is forked too (tests/fork_server.py). What is not forked (another interpreter,
an environment the preloaded libraries would read differently, a server that is gone) starts as usual.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path

FORK_SOCKET_ENV = "KOHYA_TEST_FORK_SOCKET"


class ForkedProcess:
    """The parts of `subprocess.Popen` the runner and stop_tree use, for a command the fork server started:
    `pid` (a process group of its own, as `start_new_session` makes), `stdout` (its output and errors, binary),
    `poll`, `wait`, `terminate`, `kill`, `returncode`."""

    def __init__(self, args: Sequence[str], connection: socket.socket, answers: io.BufferedReader, pid: int,
                 stdout: io.BufferedReader | None) -> None:  # fmt: skip
        self.args, self.pid, self.stdout, self.returncode = list(args), pid, stdout, None
        self._connection, self._answers = connection, answers
        self._ended = threading.Event()
        threading.Thread(target=self._read_end, name="forked-run-end", daemon=True).start()

    def _read_end(self) -> None:
        line = self._answers.readline()
        try:
            self.returncode = int(json.loads(line)["returncode"]) if line else -int(signal.SIGKILL)
        finally:
            self._connection.close()
            self._ended.set()

    def poll(self) -> int | None:
        return self.returncode if self._ended.is_set() else None

    def wait(self, timeout: float | None = None) -> int:
        if not self._ended.wait(timeout):
            raise subprocess.TimeoutExpired(self.args, timeout or 0)
        assert self.returncode is not None
        return self.returncode

    def send_signal(self, sig: int) -> None:
        if not self._ended.is_set():
            os.kill(self.pid, sig)

    def terminate(self) -> None:
        self.send_signal(signal.SIGTERM)

    def kill(self) -> None:
        self.send_signal(signal.SIGKILL)


def _start(argv: Sequence[str], env: Mapping[str, str], cwd: str | os.PathLike[str], fds: Sequence[int],
           ) -> tuple[socket.socket, io.BufferedReader, int] | None:  # fmt: skip
    """Ask the server at $KOHYA_TEST_FORK_SOCKET to fork `argv` with its output on `fds` (closed here): the
    connection, its answers and the command's pid, or None when it must start as usual (no server, another
    interpreter, an environment the server cannot fork for)."""
    socket_path = env.get(FORK_SOCKET_ENV)
    try:
        if not socket_path or len(argv) < 3 or argv[1] != "-m" or argv[0] != sys.executable:
            return None
        connection = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            connection.connect(socket_path)
            request = {"module": argv[2], "args": list(argv[3:]), "env": dict(env), "cwd": str(Path(cwd))}
            socket.send_fds(connection, [(json.dumps(request) + "\n").encode()], list(fds))
        except OSError:
            connection.close()
            return None
    finally:
        for fd in fds:
            os.close(fd)
    answers = connection.makefile("rb")
    answer = json.loads(answers.readline() or b'{"fresh": "the fork server ended"}')
    if "pid" not in answer:
        answers.close()
        connection.close()
        return None
    return connection, answers, int(answer["pid"])


def forked_popen(argv: Sequence[str], env: Mapping[str, str], cwd: str | os.PathLike[str]) -> ForkedProcess | None:
    """`argv` (`<this interpreter> -m module args`) forked by the server at $KOHYA_TEST_FORK_SOCKET, its output
    and errors on one pipe (`stdout`); None when it must start as usual."""
    if not env.get(FORK_SOCKET_ENV):
        return None
    read_fd, write_fd = os.pipe()
    started = _start(argv, env, cwd, [write_fd])
    if started is None:
        os.close(read_fd)
        return None
    return ForkedProcess(argv, *started, open(read_fd, "rb"))  # noqa: SIM115


def forked_run(argv: Sequence[str], env: Mapping[str, str], cwd: str | os.PathLike[str], timeout: float,
               ) -> subprocess.CompletedProcess[str] | None:  # fmt: skip
    """As `subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, encoding="utf-8",
    errors="replace", timeout=timeout)`, forked by the server at $KOHYA_TEST_FORK_SOCKET; None when it must
    start as usual."""
    if not env.get(FORK_SOCKET_ENV):
        return None
    with tempfile.TemporaryFile() as stdout, tempfile.TemporaryFile() as stderr:
        started = _start(argv, env, cwd, [os.dup(stdout.fileno()), os.dup(stderr.fileno())])
        if started is None:
            return None
        process = ForkedProcess(argv, *started, None)
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait()
            raise
        text = lambda stream: (stream.seek(0), stream.read())[1].decode("utf-8", errors="replace")  # noqa: E731
        return subprocess.CompletedProcess(list(argv), process.returncode, text(stdout), text(stderr))
