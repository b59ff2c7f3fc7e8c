"""train_step.py still trains (tiny SD 1.5 LoRA, a few steps) and prints a sane result line."""

from __future__ import annotations

import os
from pathlib import Path


def test_train_step_tiny_lora(bench, bench_work_dir: Path) -> None:
    lines, _ = bench("train_step.py", "--steps", "4", "--warmup", "1", "--images", "2", "--device", "cpu",
                     "--work-dir", str(bench_work_dir), timeout=150)
    assert len(lines) == 1
    line = lines[0]
    assert line["benchmark"] == "train_step" and line["method"] == "lora" and line["command"] == "train_network"
    assert line["steps_timed"] == 3 and 0 < line["median_s"] <= line["p90_s"] < 60
    assert line["samples_per_s"] > 0 and 0.05 < line["peak_rss_gib"] < 16
    assert 0 < line["peak_rss_train_gib"] <= line["peak_rss_gib"] + 0.01
    assert line["flops_per_step"] > 1e6 and line["achieved_tflops"] > 0
    assert line["mfu"] is None  # no peak for a CPU unless --peak-tflops is given
    assert line["device"] == "cpu" and line["cpu_count"] >= 1
    # CPU time per step from inside the trainer, next to wall time; the machine's load over the run
    assert 0 < line["cpu_median_s"] <= line["cpu_p90_s"] and 0 < line["cpu_cores_used"] <= line["cpu_count"] + 0.5
    assert "gpu_median_s" not in line and line["omp_wait_policy"] == os.environ.get("OMP_WAIT_POLICY", "default")
    assert line["load"]["own_cores"] > 0 and line["load"]["foreign_cores"] >= 0 and "quiet" in line["load"]


def test_finetune_runs_or_says_unavailable(bench, bench_work_dir: Path) -> None:
    lines, result = bench("train_step.py", "--method", "finetune", "--steps", "3", "--warmup", "1", "--images", "2",
                          "--device", "cpu", "--work-dir", str(bench_work_dir), "--no-flops", timeout=150)
    assert len(lines) == 1
    if lines[0].get("skipped"):
        assert "backend.fine_tune" in lines[0]["reason"] and "skipped" in result.stderr
    else:
        assert lines[0]["method"] == "finetune" and lines[0]["median_s"] > 0
