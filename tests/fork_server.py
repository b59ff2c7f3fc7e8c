"""The fork server behind tests/forked_commands.py: imports the heavy libraries once, then runs each requested
`python -m <module> ARGS` in a fork of itself.

Protocol (one request at a time): a JSON line on stdin {"module", "args", "env", "cwd", "stdout", "stderr"}
(the last two: files for the command's output); the answer is two JSON lines on stdout, {"pid": N} when the
command starts and {"returncode": N} when it ends (negative: killed by that signal, as subprocess reports it).
The command runs in a session of its own (a timeout kills its whole process group). EOF on stdin ends the
server.

With `--socket PATH` the server also takes requests on a Unix socket: the GUI's runs in the browser tests
(gui/runs/forked_launch.py, only when a test sets KOHYA_TEST_FORK_SOCKET). Such a request is one JSON line
{"module", "args", "env", "cwd"} sent with one file descriptor, the write end of the pipe the GUI reads the
run's output from (stdout and stderr both, as the GUI's Popen had them), or two (stdout, stderr); the answers are the same two lines on
the connection, or {"fresh": REASON} when the command must start as a fresh interpreter instead (an
environment that differs from the server's in what the libraries read when imported). When the GUI closes the
connection while the command runs, its process group is killed (the run ends with the GUI that started it).
In such a run, `accelerate.commands.launch`'s own start of the trainer (`python -m backend.X ...`, its
environment the launcher's plus ACCELERATE_* settings) is a fork of the launcher too, in the launcher's
process group, as the real child would be: the GUI's whole command line runs, its two interpreter starts
without the imports above.
"""

from __future__ import annotations

import atexit
import contextlib
import io
import json
import os
import runpy
import selectors
import signal
import socket
import subprocess
import sys
import threading
import traceback
from collections.abc import Mapping, Sequence

# Environment variables the preloaded libraries never read when imported (a command forked with other values
# behaves as a fresh interpreter with them): the backend's (KOHYA_*), accelerate's (ACCELERATE_*, read when it
# runs; `accelerate launch` sets them for its child), Gradio's (GRADIO_*: the GUI's; Gradio is not preloaded),
# pytest's name of the current test (PYTEST_CURRENT_TEST, set around every test: only test utilities read it),
# and torch's inductor cache folder (TORCHINDUCTOR_CACHE_DIR: read when compiling; torch writes its default into
# the environment of a process that looked it up, e.g. a test worker).
RUNTIME_ONLY_PREFIXES = ("KOHYA_", "ACCELERATE_", "GRADIO_")
RUNTIME_ONLY_VARIABLES = ("PYTEST_CURRENT_TEST", "TORCHINDUCTOR_CACHE_DIR")
# Read by the interpreter at start-up; a fork sets them up as the interpreter would have (_interpreter_streams).
STREAM_VARIABLES = ("PYTHONUNBUFFERED", "PYTHONIOENCODING")
_LISTENER: socket.socket | None = None  # the server's socket (--socket), closed in every child


def preload() -> None:
    """What every trainer imports first and spends most of its start on (~7-9 s on the test machine): torch,
    diffusers' model packages, transformers, peft, accelerate. Not the backend's own modules: they are imported
    fresh by each command, with its own environment."""
    import accelerate  # noqa: F401
    import peft  # noqa: F401
    import safetensors.torch  # noqa: F401
    import torch  # noqa: F401
    import transformers  # noqa: F401
    from diffusers import AutoencoderKL, FluxTransformer2DModel, UNet2DConditionModel  # noqa: F401


def _exit_code(error: SystemExit) -> int:
    code = error.code
    if code is None:
        return 0
    if isinstance(code, int):
        return code
    print(code, file=sys.stderr)
    return 1


def import_environment_difference(env: Mapping[str, str], server_env: Mapping[str, str]) -> list[str]:
    """The variables in which `env` differs from the server's and that a library may read when imported."""
    keys = {key for key in {*env, *server_env} if not runtime_only(key)}
    return sorted(key for key in keys - set(STREAM_VARIABLES) if env.get(key) != server_env.get(key))


def runtime_only(key: str) -> bool:
    return key.startswith(RUNTIME_ONLY_PREFIXES) or key in RUNTIME_ONLY_VARIABLES


def _interpreter_streams(env: Mapping[str, str]) -> None:
    """New sys.stdout/stderr on fds 1 and 2, as a fresh interpreter with `env` sets them up (PYTHONIOENCODING,
    PYTHONUNBUFFERED; otherwise the server's encoding and error handlers)."""
    encoding, _, errors = env.get("PYTHONIOENCODING", "").partition(":")
    unbuffered = bool(env.get("PYTHONUNBUFFERED"))
    for name, fd in (("stdout", 1), ("stderr", 2)):
        old = getattr(sys, name)
        with contextlib.suppress(OSError, ValueError):
            old.flush()
        raw = io.FileIO(fd, "w", closefd=False)
        buffer = raw if unbuffered else io.BufferedWriter(raw)
        default_errors = "backslashreplace" if name == "stderr" else ("strict" if encoding else old.errors)
        stream = io.TextIOWrapper(buffer, encoding=encoding or old.encoding, errors=errors or default_errors,
                                  line_buffering=name == "stderr" or raw.isatty(), write_through=unbuffered)  # fmt: skip
        setattr(sys, name, stream)
        setattr(sys, f"__{name}__", stream)


class ForkedChild:
    """What `subprocess.Popen` returns, for a `python -m` command forked by the launcher (`fork_popen`)."""

    def __init__(self, pid: int, args: Sequence[str]) -> None:
        self.pid, self.args, self.returncode = pid, list(args), None

    def poll(self) -> int | None:
        if self.returncode is None:
            pid, status = os.waitpid(self.pid, os.WNOHANG)
            if pid:
                self.returncode = os.waitstatus_to_exitcode(status)
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        if timeout is not None:
            raise NotImplementedError("ForkedChild.wait(timeout)")
        if self.returncode is None:
            self.returncode = os.waitstatus_to_exitcode(os.waitpid(self.pid, 0)[1])
        return self.returncode

    def send_signal(self, sig: int) -> None:
        if self.returncode is None:
            os.kill(self.pid, sig)

    def terminate(self) -> None:
        self.send_signal(signal.SIGTERM)

    def kill(self) -> None:
        self.send_signal(signal.SIGKILL)


def fork_popen(server_env: Mapping[str, str]):
    """A `subprocess.Popen` that forks `[sys.executable, "-m", module, ...]` commands started plainly (no
    pipes, no new session: as accelerate's launcher starts its trainer) when their environment allows it."""
    real_popen = subprocess.Popen

    def popen(args, *rest, **options):
        env = options.get("env")
        plain = not rest and set(options) <= {"env"} and isinstance(args, list | tuple) and len(args) >= 3
        if (plain and args[0] == sys.executable and args[1] == "-m"
                and not import_environment_difference(env if env is not None else os.environ, server_env)):  # fmt: skip
            sys.stdout.flush()
            sys.stderr.flush()
            pid = os.fork()
            if pid == 0:
                try:
                    become(args[2], args[3:], dict(env if env is not None else os.environ), os.getcwd())
                finally:
                    os._exit(1)
            return ForkedChild(pid, args)
        return real_popen(args, *rest, **options)

    return popen


def become(module: str, args: Sequence[str], env: Mapping[str, str], cwd: str) -> None:
    """In a forked child whose streams are in place: be `python -m module args` and exit as it would."""
    os.environ.clear()
    os.environ.update(env)
    os.chdir(cwd)
    _interpreter_streams(env)
    sys.argv = [module, *args]
    try:
        runpy.run_module(module, run_name="__main__", alter_sys=True)
        code = 0
    except SystemExit as error:
        code = _exit_code(error)
    except BaseException:  # noqa: BLE001 - as the interpreter would: the traceback on stderr, exit code 1
        traceback.print_exc()
        code = 1
    # What a normal interpreter exit does: wait for non-daemon threads, run atexit handlers, flush.
    for thread in threading.enumerate():
        if thread is not threading.main_thread() and not thread.daemon:
            thread.join()
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError, ValueError):
            stream.flush()
    os._exit(code)


def run_child(request: dict, reply_fd: int) -> None:
    """In the forked child: become `python -m module args` and exit as it would."""
    os.close(reply_fd)
    if _LISTENER is not None:
        _LISTENER.close()
    os.setsid()
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    os.close(devnull)
    for fd, path in ((1, request["stdout"]), (2, request["stderr"])):
        target = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        os.dup2(target, fd)
        os.close(target)
    become(request["module"], request["args"], request["env"], request["cwd"])


def run_socket_child(request: dict, output_fds: list[int], server_env: Mapping[str, str]) -> None:
    """In the forked child of a socket request: `python -m module args` with its stdout and stderr on
    `output_fds` (one for both, or one each); a `python -m` command it starts plainly is forked too
    (fork_popen)."""
    if _LISTENER is not None:
        _LISTENER.close()
    os.setsid()
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    os.close(devnull)
    os.dup2(output_fds[0], 1)
    os.dup2(output_fds[-1], 2)
    for fd in set(output_fds):
        os.close(fd)
    subprocess.Popen = fork_popen(server_env)  # type: ignore[misc]
    become(request["module"], request["args"], request["env"], request["cwd"])


def _receive(connection: socket.socket) -> tuple[dict, list[int]]:
    """A socket request and the file descriptors sent with it: the command's output, or its stdout and stderr."""
    data, fds, _, _ = socket.recv_fds(connection, 1 << 20, 2)
    while not data.endswith(b"\n"):
        more = connection.recv(1 << 20)
        if not more:
            raise ConnectionError("the request ended early")
        data += more
    if len(fds) not in (1, 2):
        for fd in fds:
            os.close(fd)
        raise ConnectionError("a request needs the output's file descriptors")
    return json.loads(data), fds


def serve_connection(connection: socket.socket, reply_fd: int, server_env: Mapping[str, str]) -> None:
    """One socket request: fork it (or tell the client to start it fresh), answer, wait for it. `server_env`:
    the server's environment when it started (before the imports)."""
    request, output_fds = _receive(connection)
    send = lambda message: connection.sendall((json.dumps(message) + "\n").encode())  # noqa: E731
    difference = import_environment_difference(request["env"], server_env)
    if difference:
        for fd in output_fds:
            os.close(fd)
        send({"fresh": "environment differs in " + ", ".join(difference)})
        return
    sys.stdout.flush()
    sys.stderr.flush()
    pid = os.fork()
    if pid == 0:
        try:
            os.close(reply_fd)
            connection.close()
            run_socket_child(request, output_fds, server_env)
        except BaseException:  # noqa: BLE001 - on the run's output, where the GUI shows it
            traceback.print_exc()
        finally:
            os._exit(1)
    for fd in output_fds:
        os.close(fd)
    send({"pid": pid})
    with selectors.DefaultSelector() as watch:
        watch.register(connection, selectors.EVENT_READ)
        while True:
            done, status = os.waitpid(pid, os.WNOHANG)
            if done:
                break
            if watch.select(timeout=0.05) and not connection.recv(1):  # the GUI is gone: so is its run
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(pid, signal.SIGKILL)
                _, status = os.waitpid(pid, 0)
                return
    with contextlib.suppress(OSError):
        send({"returncode": os.waitstatus_to_exitcode(status)})


def serve(socket_path: str | None = None) -> None:
    server_env = dict(os.environ)
    reply_fd = os.dup(1)
    os.dup2(2, 1)  # stray prints of the server go to its stderr, not into the answers
    global _LISTENER
    listener = None
    if socket_path:  # bound first: a client that connects during the imports waits in the backlog
        listener = _LISTENER = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        listener.bind(socket_path)
        listener.listen(4)
    preload()

    def reply(message: dict) -> None:
        os.write(reply_fd, (json.dumps(message) + "\n").encode())

    def run(request: dict) -> None:
        sys.stdout.flush()
        sys.stderr.flush()
        pid = os.fork()
        if pid == 0:
            try:
                run_child(request, reply_fd)
            finally:
                os._exit(1)
        reply({"pid": pid})
        _, status = os.waitpid(pid, 0)
        reply({"returncode": os.waitstatus_to_exitcode(status)})

    reply({"ready": True})
    with selectors.DefaultSelector() as ready:
        ready.register(0, selectors.EVENT_READ)
        if listener is not None:
            ready.register(listener, selectors.EVENT_READ)
        pending = b""
        while True:
            for key, _ in ready.select():
                if key.fileobj == 0:
                    chunk = os.read(0, 1 << 16)
                    if not chunk:  # EOF: the worker is done
                        return
                    pending += chunk
                    while b"\n" in pending:
                        line, pending = pending.split(b"\n", 1)
                        run(json.loads(line))
                else:
                    assert listener is not None
                    connection, _ = listener.accept()
                    with connection:
                        try:
                            serve_connection(connection, reply_fd, server_env)
                        except (OSError, ValueError, KeyError):
                            traceback.print_exc()


if __name__ == "__main__":
    serve(sys.argv[sys.argv.index("--socket") + 1] if "--socket" in sys.argv else None)
