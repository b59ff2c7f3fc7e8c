"""The lagged loss read on a real GPU: step N's loss is read on the host only after step N+1 is queued
(step_reports.py), and that read waits for step N alone, not for the work queued since; yet the
progress stream keeps its order (each checkpoint and sample after its step's line), every loss is
reported, and a diverging loss still stops the run before anything non-finite is written. On the
CPU the same runs report at once (no lag)."""

from __future__ import annotations

import math
import time
from pathlib import Path

import pytest
import torch

from backend.training.step_reports import StepRecord, StepReports, report_lag
from tests.cuda.support import assert_finite, finite_losses, train_here, write_prompts
from tests.end_to_end.helpers import base_flags


def test_lagged_reports_keep_the_progress_stream_in_order(tiny, train_dir, tmp_path, device) -> None:
    assert report_lag(device) == (1 if device.type == "cuda" else 0)
    result = train_here("train_network", base_flags(
        tiny.get("sd15").path, train_dir, tmp_path, "--max_train_steps", "4", "--network_dim", "4",
        "--mixed_precision", "bf16", "--save_every_n_steps", "2", "--scale_weight_norms", "1.0",
        "--sample_prompts", str(write_prompts(tmp_path, "sks dog --w 64 --h 64 --s 1 --d 3")),
        "--sample_every_n_steps", "3",
    ), device).ok().result
    ordered = [(e["event"], e.get("step")) for e in result.events if e["event"] in ("step", "checkpoint", "sample")]
    assert ordered == [("step", 1), ("step", 2), ("checkpoint", 2), ("step", 3), ("sample", 3), ("step", 4),
                       ("checkpoint", 4)]
    finite_losses(result)
    steps = result.of("step")
    # --scale_weight_norms' per-step figures travel with the (lagged) step line.
    assert all(math.isfinite(e["max_key_norm"]) and e["max_key_norm"] <= 1.0 + 1e-3 for e in steps)
    assert result.of("end")[0]["reason"] == "completed"


def test_a_diverging_loss_stops_the_run_before_a_nonfinite_save(tiny, train_dir, tmp_path, device) -> None:
    """--learning_rate 1e6: the loss becomes NaN within a few steps; the save after that step (which
    flushes the lagged reports first) must not happen."""
    result = train_here("train_network", base_flags(
        tiny.get("sd15").path, train_dir, tmp_path, "--learning_rate", "1e6", "--max_train_steps", "4",
        "--save_every_n_steps", "1", "--network_dim", "4", "--mixed_precision", "bf16",
    ), device).result
    assert result.returncode == 1, result.stderr[-3000:]
    [error] = result.of("error")
    assert "training diverged" in error["message"]  # at step N (the loss) or by step N (the weights)
    saved = [Path(e["path"]) for e in result.of("checkpoint")]
    for path in saved:
        assert_finite(path)
    assert not (tmp_path / "tiny.safetensors").exists()


def gpu_seconds(work) -> float:
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    start.record()
    work()
    end.record()
    end.synchronize()
    return start.elapsed_time(end) / 1000


@pytest.mark.cuda_only
def test_a_lagged_read_waits_for_its_own_step_only(device) -> None:
    """Step 2's work keeps the GPU busy (a spin kernel of about a second); publishing step 1 meanwhile
    must not wait for it. `.item()` on step 1's loss would: it waits for everything queued."""
    torch.cuda._sleep(10**8)  # clocks up from idle before the calibration
    torch.cuda.synchronize()
    cycles = int(10**8 * 1.0 / gpu_seconds(lambda: torch.cuda._sleep(10**8)))  # about 1 s of spinning
    held = [torch.empty((), pin_memory=True) for _ in range(4)]  # pinned blocks the host allocator can reuse
    del held
    published: list[tuple[int, float]] = []
    reports = StepReports(lambda record, loss: published.append((record.step, loss)), lag=1)

    def record(step: int, loss: torch.Tensor) -> StepRecord:
        return StepRecord(step=step, epoch=1, step_in_epoch=step - 1, loss=loss, lrs=[1e-3])

    reports.add(record(1, torch.full((), 0.25, device=device) * 1))
    torch.cuda._sleep(cycles)  # "step 2", queued behind step 1's loss
    second = torch.full((), 0.5, device=device) * 1
    started = time.perf_counter()
    reports.add(record(2, second))  # publishes step 1
    waited = time.perf_counter() - started
    assert published == [(1, 0.25)]
    started = time.perf_counter()
    reports.flush()  # step 2's loss comes after the spin: this read does wait
    spun = time.perf_counter() - started
    assert published == [(1, 0.25), (2, 0.5)]
    assert spun > 0.2, f"the spin kernel took {spun:.3f} s, too short to tell"
    assert waited < spun / 4, f"publishing step 1 waited {waited:.3f} s for step 2's work ({spun:.3f} s)"
