"""The set-up scripts: stamps make a second run install nothing; a wrong Python is named."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def run_install(requirements: Path, stamp_dir: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(REPO / "setup" / "install.py"), str(requirements), "--stamp-dir", str(stamp_dir)],
        capture_output=True,
        text=True,
        check=True,
    )


def test_install_runs_pip_once_then_only_when_the_file_changes(tmp_path: Path) -> None:
    requirements = tmp_path / "requirements.txt"
    requirements.write_text("toml==0.10.2\n")  # already in the venv: pip needs no network
    stamps = tmp_path / "stamps"

    first = run_install(requirements, stamps)
    assert "Installing requirements.txt" in first.stdout
    assert (stamps / "requirements.txt.sha256").exists()

    second = run_install(requirements, stamps)
    assert second.stdout == "" and second.stderr == ""

    requirements.write_text("toml==0.10.2\n# changed\n")
    third = run_install(requirements, stamps)
    assert "Installing requirements.txt" in third.stdout


def test_setup_sh_second_run_is_quiet() -> None:
    # The suite runs after setup/test.sh, so the venv and its stamps exist: nothing to install.
    result = subprocess.run([str(REPO / "setup" / "setup.sh")], capture_output=True, text=True, check=True)
    assert result.stdout == ""


def test_setup_sh_names_the_pythons_it_found_when_none_fits(tmp_path: Path) -> None:
    fake_repo = tmp_path / "repo"
    (fake_repo / "setup").mkdir(parents=True)
    shutil.copy(REPO / "setup" / "setup.sh", fake_repo / "setup" / "setup.sh")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "dirname").symlink_to(shutil.which("dirname"))
    fake_python = bin_dir / "python3"
    # A Python 3.9 stand-in: reports its version, fails the 3.10/3.11 check.
    fake_python.write_text(
        '#!/bin/sh\ncase "$2" in *platform*) echo 3.9.18;; *) exit 1;; esac\n'
    )
    fake_python.chmod(0o755)

    result = subprocess.run(
        ["/bin/bash", str(fake_repo / "setup" / "setup.sh")],
        capture_output=True,
        text=True,
        env={"PATH": str(bin_dir), "HOME": str(tmp_path)},
    )
    assert result.returncode == 1
    assert "Python 3.10 or 3.11 is required" in result.stderr
    assert "python3 (3.9.18)" in result.stderr
    assert "PYTHON=" in result.stderr
    assert not (fake_repo / "venv").exists()


def test_test_sh_passes_pytest_exit_code_through(tmp_path: Path) -> None:
    # pytest's "no tests collected" (exit 5) must fail the test command, not pass silently.
    empty = tmp_path / "empty_tests"
    empty.mkdir()
    env = {**os.environ, "PYTEST_ADDOPTS": ""}
    result = subprocess.run(
        [str(REPO / "setup" / "test.sh"), str(empty), "-p", "no:cacheprovider"],
        capture_output=True,
        text=True,
        env=env,
    )
    assert result.returncode == 5
