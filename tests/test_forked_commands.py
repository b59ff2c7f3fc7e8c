"""tests/forked_commands.py: a forked command looks to itself and to the test as a fresh `python -m` would."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests import forked_commands
from tests.forked_commands import REPO, run_module


def server_env() -> dict[str, str]:
    """The environment of this worker's fork server (started by an earlier test, or now with this one)."""
    return dict(forked_commands._SERVER.env) if forked_commands._SERVER else dict(os.environ)


def test_a_forked_command_gets_its_arguments_environment_folder_and_exit_code(tmp_path: Path) -> None:
    env = {**server_env(), "KOHYA_PROBE": "forked"}
    result = run_module("tests.fork_probe", ["3"], env, cwd=tmp_path)
    assert forked_commands._SERVER is not None
    assert result.returncode == 3 and result.stderr == "to stderr\n"
    seen = json.loads(result.stdout)
    assert seen.pop("parent") == forked_commands._SERVER.process.pid  # forked, not a fresh interpreter
    assert seen.pop("group") != os.getpgid(0)  # a session of its own
    assert seen == {"argv": ["3"], "cwd": str(tmp_path), "probe": "forked", "main": "__main__", "file": "fork_probe.py",
                    "preloaded": True, "accelerate": None}  # fmt: skip
    assert os.getcwd() != str(tmp_path) and "KOHYA_PROBE" not in os.environ  # the test's own process untouched


def test_a_command_past_its_timeout_is_killed() -> None:
    with pytest.raises(subprocess.TimeoutExpired):
        run_module("tests.fork_probe", ["0", "60"], server_env(), timeout=2)
    assert run_module("tests.fork_probe", ["0"], server_env()).returncode == 0  # the server goes on


def test_another_import_environment_starts_a_fresh_interpreter(monkeypatch: pytest.MonkeyPatch) -> None:
    run_module("tests.fork_probe", ["0"], server_env())  # the server is up
    forked = []
    monkeypatch.setattr(forked_commands.ForkServer, "run", lambda *args: forked.append(args))
    result = run_module("tests.fork_probe", ["0"], {**server_env(), "HF_HUB_OFFLINE": "0", "HF_HOME": str(REPO)})
    assert result.returncode == 0 and forked == []  # HF_* is read when the libraries are imported


def test_variables_the_libraries_never_read_when_imported_do_not_prevent_forking() -> None:
    # pytest sets PYTEST_CURRENT_TEST around every test, torch writes TORCHINDUCTOR_CACHE_DIR into the environment
    # of a process that looked it up: until 2026-12-05 either sent every end-to-end run to a fresh interpreter.
    env = {**server_env(), "PYTEST_CURRENT_TEST": "tests/x.py::test (call)", "TORCHINDUCTOR_CACHE_DIR": "/tmp/x"}
    result = run_module("tests.fork_probe", ["0"], env)
    assert result.returncode == 0
    assert json.loads(result.stdout)["parent"] == forked_commands._SERVER.process.pid


def test_a_gui_run_is_the_real_accelerate_launch_forked_through_the_socket(monkeypatch: pytest.MonkeyPatch) -> None:
    """The browser tests' GUIs (KOHYA_TEST_FORK_SOCKET): the runner's command line runs whole, `accelerate
    launch` and the trainer it starts both forks, output and exit code as from Popen, Stop ends both."""
    from gui.runs.forked_launch import FORK_SOCKET_ENV
    from gui.runs.runner import TrainingRunner

    run_module("tests.fork_probe", ["0"], server_env())  # the server is up
    for key in set(os.environ) - set(server_env()):
        monkeypatch.delenv(key)
    for key, value in {**server_env(), FORK_SOCKET_ENV: forked_commands._SERVER.socket_path}.items():
        monkeypatch.setenv(key, value)
    launch = [sys.executable, "-m", "accelerate.commands.launch", "--quiet", "--num_processes", "1",
              "--mixed_precision", "no", "--dynamo_backend", "no", "--num_machines", "1", "-m", "tests.fork_probe"]  # fmt: skip
    runner = TrainingRunner(cwd=REPO)
    pid = runner.start([*launch, "3"])
    assert runner.wait(60) == "failed" and runner.snapshot()["exit_code"] == 1  # launch --quiet: 1 for a failed run
    seen = json.loads(next(line for line in runner.log_text().splitlines() if line.startswith("{")))
    assert "to stderr" in runner.log_text()  # stderr on the same pipe, as the GUI's Popen has it
    assert seen["parent"] == pid and seen["group"] == pid  # the launcher's fork, in the launcher's group
    assert seen["preloaded"] and seen["accelerate"] == "no" and seen["argv"] == ["3"]  # with the launcher's settings

    runner.start([*launch, "0", "600"])
    deadline = time.monotonic() + 60
    while "{" not in runner.log_text() and time.monotonic() < deadline:
        time.sleep(0.05)
    trainer = json.loads(next(line for line in runner.log_text().splitlines() if line.startswith("{")))
    assert runner.stop(timeout=10) and runner.snapshot()["status"] == "stopped"
    assert trainer["preloaded"]
    with pytest.raises(ProcessLookupError):
        os.kill(int(runner.snapshot()["pid"]), 0)
    assert run_module("tests.fork_probe", ["0"], server_env()).returncode == 0  # the server goes on
