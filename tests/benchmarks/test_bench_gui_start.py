"""gui_start.py still starts the GUI, sees HTTP 200 and reads its memory."""

from __future__ import annotations

import json
import subprocess
import sys

from tests.benchmarks.conftest import REPO


def test_gui_start_one_run() -> None:
    result = subprocess.run([sys.executable, "benchmarks/gui_start.py", "--runs", "1", "--timeout", "90"],
                            cwd=REPO, capture_output=True, text=True, timeout=150)
    assert result.returncode == 0, result.stderr[-3000:]
    lines = [json.loads(line) for line in result.stdout.splitlines() if line.strip()]
    assert len(lines) == 1
    line = lines[0]
    assert line["benchmark"] == "gui_start" and 0 < line["seconds_to_200"] < 90
    assert 20 < line["rss_mib"] < 4096 and line["target_seconds"] == 3.0 and line["target_rss_mb"] == 300.0
    assert isinstance(line["meets_targets"], bool)
