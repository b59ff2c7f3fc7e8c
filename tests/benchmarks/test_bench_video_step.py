"""benchmarks/video_step.py through the device entry's CPU dry run: a family's transformer trained on the tiny
model with the trainer's parts (LoRA with fp8 storage and checkpointing; a full fine-tune), step time and peak
memory in the summary beside finetrainers' figure (none for a tiny model)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from benchmarks.lib.device_plan import VIDEO_BENCHES, plan
from tests.end_to_end.helpers import REPO


def test_the_video_parts_come_last_at_finetrainers_shape_on_the_gpu(tmp_path: Path) -> None:
    gpu = plan(False, tmp_path)
    names = [p.name for p in gpu]
    video = [f"video_{family}_{method}" for family, method, _ in VIDEO_BENCHES]
    assert names[-len(video):] == video
    ltx = next(p for p in gpu if p.name == "video_ltx_video_lora").argv
    assert "--size" in ltx and ltx[ltx.index("--size") + 1] == "full" and "--gradient-checkpointing" in ltx
    assert "--frames" not in ltx  # the benchmark's defaults: 49x512x768, rank 128


def test_a_lora_with_savers_and_a_full_fine_tune_run_and_reach_the_summary(tmp_path: Path) -> None:
    result = subprocess.run([sys.executable, "benchmarks/device_checks.py", "--cpu", "--only",
                             "video_wan_lora,video_ltx_video_full", "--out", str(tmp_path), "--work-dir",
                             str(tmp_path / "work")], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    results = json.loads((tmp_path / "results.json").read_text())
    rows = {row["name"]: row for row in results["summary"]}
    for name in ("video_wan_lora", "video_ltx_video_full"):
        assert rows[name]["status"] == "ok" and rows[name]["median_s"] > 0 and rows[name]["peak_rss_gib"] > 0
    lora = results["parts"]["video_wan_lora"]["result"]
    assert lora["method"] == "lora" and lora["trained_params_m"] < lora["transformer_params_m"]
    full = results["parts"]["video_ltx_video_full"]["result"]
    assert full["trained_params_m"] == full["transformer_params_m"]  # every weight trained


def test_fp8_storage_with_the_lora_still_trains_it() -> None:
    result = subprocess.run([sys.executable, "benchmarks/video_step.py", "--family", "hunyuan_video", "--size", "tiny",
                             "--frames", "5", "--height", "32", "--width", "32", "--rank", "4", "--steps", "1",
                             "--warmup", "0", "--device", "cpu", "--fp8-base", "--gradient-checkpointing"],
                            cwd=REPO, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    line = json.loads(result.stdout.splitlines()[-1])
    assert line["fp8_base"] and line["trained_params_m"] > 0 and line["latents"] == [1, 16, 2, 4, 4]
