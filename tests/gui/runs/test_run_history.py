"""Run records (gui/runs/run_history.py): written by the runner during a fake run, kept safe across a crash of the
GUI (a "running" record becomes "interrupted"; an unreadable index is rebuilt), searched."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from gui.runs.run_history import RunHistory
from gui.runs.runner import TrainingRunner
from tests.gui.runs.test_runner import script, wait_for

FAKE_TRAINER = """
print("loading the model", flush=True)
progress("start", total=2, epochs=1, initial_step=0)
print("steps  50%|#####     | 1/2\\r", end="", flush=True)
scale = float(os.environ.get("FAKE_LOSS_SCALE", "1"))
progress("step", step=1, total=2, epoch=1, loss=0.5 * scale, avr_loss=0.5 * scale, lr=[1e-4])
progress("step", step=2, total=2, epoch=1, loss=0.25 * scale, avr_loss=0.375 * scale, lr=[1e-4])
print("steps 100%|##########| 2/2", flush=True)
out = sys.argv[sys.argv.index("--config_file") + 1].replace(".toml", ".safetensors")
progress("sample", path=out + ".png", step=2, epoch=1, prompt_index=0)
progress("checkpoint", path=out, kind="final", step=2, epoch=1)
progress("end", reason="completed", output=out, step=2)
sys.exit(int(os.environ.get("FAKE_EXIT", "0")))
"""


def start_run(runner: TrainingRunner, tmp_path: Path, name: str, rate: float, env: dict | None = None) -> None:
    config = tmp_path / f"{name}.toml"
    config.write_text(f'output_name = "{name}"\nlearning_rate = {rate}\n', encoding="utf-8")
    form = {"model_type": "sd15", "network_type": "Standard", "accelerate": {"num_processes": 1},
            "pretrained_model_name_or_path": "/models/tiny-sd15", "output_name": name, "learning_rate": rate}  # fmt: skip
    argv = [*script(tmp_path, FAKE_TRAINER), "--config_file", str(config)]
    runner.start(argv, env=env, meta={"kind": "lora", "form": form, "config": str(config)})
    runner.wait(30)


@pytest.fixture
def history(tmp_path: Path) -> RunHistory:
    return RunHistory(tmp_path / "runs")


def test_a_run_leaves_its_record_and_a_line_in_the_index(tmp_path: Path, history: RunHistory) -> None:
    runner = TrainingRunner(history=history)
    start_run(runner, tmp_path, "first", 1e-4)
    assert runner.snapshot()["status"] == "finished"
    (run,) = history.runs()
    folder = history.folder / run["id"]
    assert run["status"] == "finished" and run["kind"] == "lora" and run["model"] == "tiny-sd15"
    assert run["method"] == "Standard" and run["final_loss"] == 0.375 and run["output"].endswith("first.safetensors")
    assert run["duration_s"] is not None and run["ended_at"] >= run["started_at"]
    record = history.record(run["id"])
    assert record["samples"] == [run["output"] + ".png"] and record["checkpoints"] == [run["output"]]
    assert record["steps"] == 2 and record["exit_code"] == 0 and record["end_reason"] == "completed"
    assert (folder / "config.toml").read_text(encoding="utf-8") == (tmp_path / "first.toml").read_text(encoding="utf-8")
    assert history.form(run["id"])["learning_rate"] == 1e-4
    assert (folder / "command.txt").read_text(encoding="utf-8").strip() == record["command_line"]
    assert "--config_file" in record["command_line"]
    # The log as the page shows it: no protocol lines, a redrawn bar replaced by the next line.
    assert (folder / "log.txt").read_text(encoding="utf-8").splitlines() == ["loading the model", "steps 100%|##########| 2/2"]
    events = [json.loads(line)["event"] for line in (folder / "progress.jsonl").read_text(encoding="utf-8").splitlines()]
    assert events == ["start", "step", "step", "sample", "checkpoint", "end"]
    assert history.loss_curve(run["id"]) == [(1, 0.5), (2, 0.375)]
    index = json.loads((history.folder / "index.json").read_text(encoding="utf-8"))
    assert index["version"] == 1 and index["runs"][run["id"]]["status"] == "finished"


def test_failed_and_stopped_runs_are_recorded_as_such(tmp_path: Path, history: RunHistory) -> None:
    runner = TrainingRunner(history=history, stop_timeout=5)
    start_run(runner, tmp_path, "bad", 1e-4, env={"FAKE_EXIT": "3"})
    runner.start(script(tmp_path, "print('waiting', flush=True)\ntime.sleep(60)\n"), meta={"kind": "lora"})
    wait_for(runner, lambda snapshot: snapshot["log_tail"] == ["waiting"])
    runner.stop()
    stopped, failed = history.runs()  # newest first
    assert (failed["status"], failed["exit_code"]) == ("failed", 3)
    assert stopped["status"] == "stopped" and history.text(stopped["id"], "log.txt") == "waiting\n"


def test_a_run_goes_on_when_its_record_cannot_be_written(tmp_path: Path) -> None:
    (tmp_path / "not_a_folder").write_text("", encoding="utf-8")
    runner = TrainingRunner(history=RunHistory(tmp_path / "not_a_folder"))
    start_run(runner, tmp_path, "first", 1e-4)
    assert runner.snapshot()["status"] == "finished"


def dead_pid() -> int:
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


def test_a_run_left_running_by_a_gui_that_died_is_interrupted_at_the_next_start(tmp_path: Path) -> None:
    root = tmp_path / "runs"
    (root / "20260101-120000-lora").mkdir(parents=True)
    RunHistory(root).save(root / "20260101-120000-lora", {"id": "20260101-120000-lora", "status": "running",
                                                           "kind": "lora", "started_at": 1.0, "gui_pid": dead_pid()})  # fmt: skip
    (run,) = RunHistory(root).runs()  # a new GUI process's first look
    assert run["status"] == "interrupted"
    assert json.loads((root / run["id"] / "run.json").read_text(encoding="utf-8"))["status"] == "interrupted"
    assert json.loads((root / "index.json").read_text(encoding="utf-8"))["runs"][run["id"]]["status"] == "interrupted"


def test_this_guis_own_running_run_is_not_interrupted(tmp_path: Path, history: RunHistory) -> None:
    runner = TrainingRunner(history=history, stop_timeout=5)
    runner.start(script(tmp_path, "time.sleep(60)\n"), meta={"kind": "lora"})
    try:
        assert [run["status"] for run in RunHistory(history.folder).runs()] == ["running"]
    finally:
        runner.stop()


def test_an_unreadable_index_is_rebuilt_from_the_records(tmp_path: Path, history: RunHistory) -> None:
    runner = TrainingRunner(history=history)
    start_run(runner, tmp_path, "first", 1e-4)
    (history.folder / "index.json").write_text('{"version": 1, "runs": {', encoding="utf-8")  # cut short by hand
    (run,) = RunHistory(history.folder).runs()
    assert run["status"] == "finished" and run["final_loss"] == 0.375


def test_search_finds_runs_by_name_model_and_option_value(tmp_path: Path, history: RunHistory) -> None:
    runner = TrainingRunner(history=history)
    start_run(runner, tmp_path, "katana", 1e-4)
    start_run(runner, tmp_path, "wakizashi", 5e-05)
    names = lambda query: [run["output_name"] for run in history.search(query)]  # noqa: E731
    assert names("") == ["wakizashi", "katana"]
    assert names("KATANA") == ["katana"]
    assert names("5e-05") == ["wakizashi"]
    assert names("tiny-sd15 wakizashi") == ["wakizashi"]
    assert names("learning_rate 0.0001") == ["katana"]
    assert names("nothing-like-this") == []


def test_a_record_id_never_leaves_the_history_folder(history: RunHistory) -> None:
    assert history.record("../etc") is None and history.run_folder("..") is None and history.form("") is None
