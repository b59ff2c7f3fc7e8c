"""The resize benchmark still runs (tiny shapes) and prints its JSON lines."""

from __future__ import annotations

import json
import subprocess
import sys

from tests.end_to_end.helpers import REPO


def test_resize_benchmark_tiny() -> None:
    result = subprocess.run([sys.executable, "benchmarks/resize_lora.py", "--tiny", "--device", "cpu", "--new_rank", "4"],
                            cwd=REPO, capture_output=True, text=True, timeout=180)
    assert result.returncode == 0, result.stderr
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert [line["method"] for line in lines] == ["rank 4", "sv_fro"]
    assert all(line["benchmark"] == "resize_lora" and line["modules"] > 10 and line["seconds"] >= 0 for line in lines)
