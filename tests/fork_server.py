"""The fork server behind tests/forked_commands.py: imports the heavy libraries once, then runs each requested
`python -m <module> ARGS` in a fork of itself.

Protocol (one request at a time): a JSON line on stdin {"module", "args", "env", "cwd", "stdout", "stderr"}
(the last two: files for the command's output); the answer is two JSON lines on stdout, {"pid": N} when the
command starts and {"returncode": N} when it ends (negative: killed by that signal, as subprocess reports it).
The command runs in a session of its own (a timeout kills its whole process group). EOF on stdin ends the
server.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import os
import runpy
import sys
import threading
import traceback


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


def run_child(request: dict, reply_fd: int) -> None:
    """In the forked child: become `python -m module args` and exit as it would."""
    os.close(reply_fd)
    os.setsid()
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    os.close(devnull)
    for fd, path in ((1, request["stdout"]), (2, request["stderr"])):
        target = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        os.dup2(target, fd)
        os.close(target)
    os.environ.clear()
    os.environ.update(request["env"])
    os.chdir(request["cwd"])
    sys.argv = [request["module"], *request["args"]]
    try:
        runpy.run_module(request["module"], run_name="__main__", alter_sys=True)
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


def serve() -> None:
    reply_fd = os.dup(1)
    os.dup2(2, 1)  # stray prints of the server go to its stderr, not into the answers
    preload()

    def reply(message: dict) -> None:
        os.write(reply_fd, (json.dumps(message) + "\n").encode())

    reply({"ready": True})
    for line in sys.stdin:
        request = json.loads(line)
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


if __name__ == "__main__":
    serve()
