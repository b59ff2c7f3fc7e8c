"""Helpers for the benchmark smoke tests: run a benchmark script and read its JSON result lines."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def run_benchmark(script: str, *args: str, timeout: int = 120) -> tuple[list[dict], subprocess.CompletedProcess]:
    result = subprocess.run([sys.executable, f"benchmarks/{script}", *args], cwd=REPO, capture_output=True,
                            text=True, timeout=timeout)
    assert result.returncode == 0, result.stderr[-3000:]
    return [json.loads(line) for line in result.stdout.splitlines() if line.strip()], result


@pytest.fixture(scope="session")
def bench_work_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One work dir per session: the tiny model is built once and shared by the scripts."""
    return tmp_path_factory.mktemp("bench")


@pytest.fixture
def bench() -> Callable[..., tuple[list[dict], subprocess.CompletedProcess]]:
    return run_benchmark
