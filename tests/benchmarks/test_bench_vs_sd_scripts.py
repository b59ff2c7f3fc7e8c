"""vs_sd_scripts.py without an sd-scripts checkout: one clear skip line, exit 0; helpers that read step times."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from benchmarks.lib.process_watch import Watched  # noqa: E402
from benchmarks.vs_sd_scripts import spread, their_step_marks  # noqa: E402


def test_skips_clearly_without_sd_scripts(bench) -> None:
    lines, result = bench("vs_sd_scripts.py")
    assert lines == [{"benchmark": "vs_sd_scripts", "skipped": True, "reason": lines[0]["reason"]}]
    assert "--sd-scripts DIR" in lines[0]["reason"] and "skipped" in result.stderr


def test_tqdm_updates_become_step_times() -> None:
    bar = "steps:  {p}%|###       | {n}/6 [00:01<00:05,  1.00s/it, avr_loss=0.1]"
    stderr = [(10.0, bar.format(p=0, n=0)), (11.0, bar.format(p=16, n=1)), (13.0, bar.format(p=50, n=3)),
              (13.5, "epoch 1/1"), (14.0, bar.format(p=66, n=4)), (14.1, bar.format(p=66, n=4))]
    run = Watched(0, 5.0, 1, None, [], stderr)
    assert their_step_marks(run) == [(0, 10.0), (1, 11.0), (3, 13.0), (4, 14.0)]
    assert spread(their_step_marks(run)) == [1.0, 1.0, 1.0, 1.0]
