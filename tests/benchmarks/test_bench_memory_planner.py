"""The memory planner's accuracy on the CPU: for tiny SD 1.5 LoRA and fine-tune runs (64 px, 3 steps, real
trainer processes), the predicted peak RSS is within 15 % of the child's measured high-water mark."""

from __future__ import annotations

from pathlib import Path


def test_predicted_peak_rss_within_15_percent_on_tiny_runs(bench, bench_work_dir: Path) -> None:
    lines, _ = bench("memory_planner.py", "--size", "tiny", "--device", "cpu", "--work-dir", str(bench_work_dir),
                     timeout=300)  # fmt: skip
    assert [(line["method"], line["command"]) for line in lines] == [("lora", "train_network"),
                                                                     ("finetune", "fine_tune")]  # fmt: skip
    for line in lines:
        assert line["device"] == "cpu" and line["measured"] > 0
        assert 0.85 <= line["ratio"] <= 1.15, line
        assert line["breakdown"]["weights.denoiser"] > 0 and "load" in line
    # the fine-tune trains the whole U-Net: gradients of its size, where the LoRA's are the network's
    lora, finetune = lines
    assert finetune["breakdown"]["gradients"] == finetune["breakdown"]["weights.denoiser"]
    assert lora["breakdown"]["gradients"] == lora["breakdown"]["network"]
