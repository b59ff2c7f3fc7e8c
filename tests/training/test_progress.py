from __future__ import annotations

import io
import math

import pytest

from backend.training.progress import (
    PREFIX,
    LossRecorder,
    ProgressReporter,
    format_progress_line,
    parse_progress_line,
)


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _lines(stream: io.StringIO) -> list[dict]:
    parsed = [parse_progress_line(line) for line in stream.getvalue().splitlines()]
    assert all(p is not None for p in parsed)
    return parsed  # type: ignore[return-value]


def test_every_event_round_trips() -> None:
    stream, clock = io.StringIO(), FakeClock()
    reporter = ProgressReporter(stream, clock=clock)
    reporter.start(total_steps=10, total_epochs=2)
    clock.now += 2.0
    reporter.step(step=1, epoch=1, loss=0.5, avr_loss=0.5, lr=[1e-4, 5e-5])
    clock.now += 2.0
    reporter.step(step=2, epoch=1, loss=0.25, avr_loss=0.375, lr=[1e-4, 5e-5])
    reporter.sample(path="out/sample/x_000002_00_20250101000000.png", step=2, epoch=None, prompt_index=0)
    reporter.checkpoint(path="out/x-000001.safetensors", kind="model", step=5, epoch=1)
    reporter.validation(step=5, epoch=1, loss=0.3)
    reporter.error(message="CUDA out of memory", hint="enable gradient_checkpointing")
    reporter.end(reason="completed", output="out/x.safetensors", step=10)
    lines = _lines(stream)
    assert [line["event"] for line in lines] == [
        "start",
        "step",
        "step",
        "sample",
        "checkpoint",
        "validation",
        "error",
        "end",
    ]
    assert all(line["v"] == 1 and isinstance(line["t"], float) for line in lines)
    assert all(raw.startswith(PREFIX) for raw in stream.getvalue().splitlines())
    start, first, second = lines[0], lines[1], lines[2]
    assert start["total"] == 10 and start["epochs"] == 2 and start["initial_step"] == 0
    assert first["s_per_step"] == 2.0 and first["eta_s"] == 18.0
    assert second == {
        "v": 1, "event": "step", "t": 1004.0, "step": 2, "total": 10, "epoch": 1, "loss": 0.25, "avr_loss": 0.375,
        "lr": [1e-4, 5e-5], "s_per_step": 2.0, "eta_s": 16.0,
    }  # fmt: skip
    assert lines[4]["kind"] == "model" and lines[4]["path"] == "out/x-000001.safetensors"
    assert lines[6]["hint"] == "enable gradient_checkpointing"
    assert lines[7]["reason"] == "completed" and lines[7]["output"] == "out/x.safetensors"


def test_nan_loss_becomes_null_and_lines_stay_ascii() -> None:
    line = format_progress_line(
        "step", {"loss": math.nan, "lr": [math.inf], "path": "出力/モデル.safetensors"}, 1.0
    )
    assert line.isascii() and "NaN" not in line and "Infinity" not in line
    parsed = parse_progress_line(line)
    assert parsed is not None and parsed["loss"] is None and parsed["lr"] == [None]
    assert parsed["path"] == "出力/モデル.safetensors"


def test_parser_finds_the_line_among_other_output() -> None:
    line = format_progress_line("end", {"reason": "interrupted", "output": None}, 1.0)
    assert (
        parse_progress_line("steps:  50%|█████     | 5/10 [00:01<00:01]\r" + line + "\r\n")["reason"]
        == "interrupted"
    )  # type: ignore[index]
    assert parse_progress_line("loading model...") is None
    assert parse_progress_line(PREFIX + "{not json") is None
    assert parse_progress_line(PREFIX + '["a list"]') is None
    assert parse_progress_line(PREFIX + '{"event": "step"}') is None  # no version


def test_unknown_event_is_rejected_and_disabled_reporter_is_silent() -> None:
    with pytest.raises(ValueError):
        format_progress_line("progress", {}, 0.0)
    stream = io.StringIO()
    reporter = ProgressReporter(stream, enabled=False)
    reporter.start(total_steps=1, total_epochs=1)
    reporter.step(step=1, epoch=1, loss=0.1, avr_loss=0.1, lr=[1e-4])
    assert stream.getvalue() == ""


def test_resume_start_and_extra_fields() -> None:
    stream, clock = io.StringIO(), FakeClock()
    reporter = ProgressReporter(stream, clock=clock)
    reporter.start(total_steps=100, total_epochs=10, initial_step=50, output_name="x")
    clock.now += 5.0
    reporter.step(step=51, epoch=6, loss=0.1, avr_loss=0.1, lr=[1e-4], grad_norm=0.7)
    start, step = _lines(stream)
    assert start["initial_step"] == 50 and start["output_name"] == "x"
    assert step["s_per_step"] == 5.0 and step["eta_s"] == 245.0 and step["grad_norm"] == 0.7


def test_loss_recorder_per_epoch_window() -> None:
    recorder = LossRecorder()
    assert recorder.moving_average == 0.0
    for step, loss in enumerate([1.0, 2.0, 3.0]):
        recorder.add(epoch=0, step=step, loss=loss)
    assert recorder.moving_average == pytest.approx(2.0)
    recorder.add(epoch=1, step=0, loss=4.0)  # replaces 1.0
    assert recorder.moving_average == pytest.approx(3.0)


def test_loss_recorder_nan_leaves_with_the_window() -> None:
    recorder = LossRecorder()
    recorder.add(epoch=0, step=0, loss=1.0)
    recorder.add(epoch=0, step=1, loss=math.nan)
    assert math.isnan(recorder.moving_average)
    recorder.add(epoch=1, step=1, loss=3.0)
    assert recorder.moving_average == pytest.approx(2.0)


def test_loss_recorder_after_resume_ignores_unseen_steps() -> None:
    recorder = LossRecorder()
    recorder.add(epoch=3, step=5, loss=2.0)  # resumed mid-epoch: steps 0-4 never seen
    assert recorder.moving_average == pytest.approx(2.0)
