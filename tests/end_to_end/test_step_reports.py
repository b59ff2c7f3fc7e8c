"""Step reports published one step late on a GPU (no host sync per step) keep the progress stream intact."""

from __future__ import annotations

import torch

import backend.training.loop as loop
from backend.training.command import run_command
from backend.training.progress import parse_progress_line
from backend.training.step_reports import StepRecord, StepReports, report_lag

from .helpers import base_flags


def record(step: int) -> StepRecord:
    return StepRecord(step=step, epoch=1, step_in_epoch=step - 1, loss=torch.tensor(step / 4), lrs=[1e-3])


def test_lagged_reports_publish_in_order_and_flush_everything() -> None:
    published: list[tuple[int, float]] = []
    reports = StepReports(lambda rec, loss: published.append((rec.step, loss)), lag=1)
    reports.add(record(1))
    assert published == []  # step 1's loss is read only once step 2 is queued
    reports.add(record(2))
    assert published == [(1, 0.25)]
    reports.flush()
    reports.flush()
    assert [step for step, _ in published] == [1, 2]
    assert published[1][1] == 0.5


def test_the_cpu_reports_at_once_and_a_gpu_one_step_late() -> None:
    assert report_lag(torch.device("cpu")) == 0
    assert report_lag(torch.device("cuda", 0)) == 1


def events_of_a_run(tiny, train_dir, out, capsys, monkeypatch, lag: int) -> list[dict]:
    monkeypatch.setattr(loop, "report_lag", lambda device: lag)
    prompts = out.parent / f"prompts-{lag}.txt"
    prompts.write_text("sks dog --w 64 --h 64 --s 1 --d 3\n")
    code = run_command("train_network", base_flags(
        tiny.get("sd15").path, train_dir, out, "--max_train_steps", "4", "--network_dim", "4",
        "--save_every_n_steps", "2", "--sample_prompts", str(prompts), "--sample_every_n_steps", "3",
    ))
    captured = capsys.readouterr()
    assert code == 0, captured.err[-3000:]
    return [e for e in map(parse_progress_line, captured.out.splitlines()) if e is not None]


def test_a_lagged_run_reports_what_an_immediate_one_does(tiny, train_dir, tmp_path, capsys, monkeypatch) -> None:
    """The GPU path, forced on the CPU: same step lines, and each checkpoint or sample after its step's line."""
    at_once = events_of_a_run(tiny, train_dir, tmp_path / "a", capsys, monkeypatch, lag=0)
    lagged = events_of_a_run(tiny, train_dir, tmp_path / "b", capsys, monkeypatch, lag=1)

    def outline(events: list[dict]) -> list[tuple]:
        return [(e["event"], e.get("step")) for e in events if e["event"] != "cache"]

    assert outline(lagged) == outline(at_once)
    assert [e["event"] for e in lagged if e["event"] in ("step", "checkpoint", "sample")] == [
        "step", "step", "checkpoint", "step", "sample", "step", "checkpoint",
    ]
    steps = [(e["step"], e["loss"], e["avr_loss"], e["lr"]) for e in at_once if e["event"] == "step"]
    assert [(e["step"], e["loss"], e["avr_loss"], e["lr"]) for e in lagged if e["event"] == "step"] == steps
