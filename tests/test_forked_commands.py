"""tests/forked_commands.py: a forked command looks to itself and to the test as a fresh `python -m` would."""

from __future__ import annotations

import json
import os
import subprocess
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
    assert seen == {"argv": ["3"], "cwd": str(tmp_path), "probe": "forked", "main": "__main__", "file": "fork_probe.py"}
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
