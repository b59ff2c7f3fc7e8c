"""The training runner: progress into state, one run at a time, stopping whole process trees, failures.

Fake trainers are small Python scripts that print protocol lines; one real run goes through
`accelerate launch` with the tiny SD 1.5 model, then through the exported .sh.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest

from gui.backend_process import REPO
from gui.runs.run_state import LossHistory, RunState
from gui.runs.runner import RunnerBusyError, TrainingRunner
from gui.training.command_builder import prepare_run
from gui.training.command_export import export_scripts

PRELUDE = """\
import json, os, signal, subprocess, sys, time
def progress(event, **fields):
    print("@@progress " + json.dumps({"v": 1, "event": event, "t": time.time(), **fields}), flush=True)
"""


def script(tmp_path: Path, body: str) -> list[str]:
    path = tmp_path / f"fake_{abs(hash(body))}.py"
    path.write_text(PRELUDE + body, encoding="utf-8")
    return [sys.executable, str(path)]


def wait_for(runner: TrainingRunner, predicate: Callable[[dict[str, Any]], bool], timeout: float = 30) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        snapshot = runner.snapshot()
        if predicate(snapshot):
            return snapshot
        time.sleep(0.05)
    raise AssertionError(f"condition not met in {timeout}s; last snapshot: {runner.snapshot()}")


def gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE  # dead, waiting for a reaper
    except psutil.NoSuchProcess:
        return True


@pytest.fixture
def runner() -> Iterator[TrainingRunner]:
    runner = TrainingRunner(stop_timeout=5)
    yield runner
    runner.stop(timeout=1)


# ---- state from output lines (no process) -------------------------------------------------------


def test_state_follows_the_protocol() -> None:
    state = RunState()
    for event in [
        {"v": 1, "event": "cache", "what": "latents", "done": 2, "total": 3},
        {"v": 1, "event": "start", "total": 4, "epochs": 2, "initial_step": 0},
        {"v": 1, "event": "step", "step": 1, "total": 4, "epoch": 1, "loss": 0.5, "avr_loss": 0.5,
         "lr": [1e-4, 5e-5], "s_per_step": None, "eta_s": None},
        {"v": 1, "event": "step", "step": 2, "total": 4, "epoch": 1, "loss": None, "avr_loss": 0.5,
         "lr": [1e-4, 5e-5], "s_per_step": 0.5, "eta_s": 1.0, "grad_norm": 3.0, "unknown_field": 1},
        {"v": 1, "event": "validation", "step": 2, "epoch": 1, "loss": 0.4},
        {"v": 1, "event": "made_up_event"},
    ]:
        state.add_output("@@progress " + json.dumps(event) + "\n")
    snap = state.to_dict()
    assert snap["cache"] is None, "the cache phase is over once training starts"
    assert (snap["step"], snap["total"], snap["epoch"], snap["epochs"]) == (2, 4, 1, 2)
    assert snap["loss"] is None and snap["avr_loss"] == 0.5 and snap["lr"] == [1e-4, 5e-5]
    assert (snap["s_per_step"], snap["eta_s"]) == (0.5, 1.0)
    assert snap["history"] == {"step": [1, 2], "loss": [0.5, None], "avr_loss": [0.5, 0.5]}
    assert snap["validation"] == {"step": [2], "loss": [0.4]}
    assert snap["log_tail"] == [] and snap["progress_supported"]


def test_log_keeps_text_not_protocol_and_collapses_redrawn_bars() -> None:
    state = RunState()
    for raw in ["loading model\n", " 10%|#   \r", " 50%|#####   \r", "100%|##########\n",
                'noise @@progress {"v":1,"event":"start","total":9,"epochs":1,"initial_step":0}\n', "done\r\n"]:
        state.add_output(raw)
    snap = state.to_dict()
    assert snap["log_tail"] == ["loading model", "100%|##########", "noise", "done"]
    assert snap["total"] == 9


def test_a_newer_protocol_falls_back_to_the_log() -> None:
    state = RunState()
    state.add_output('@@progress {"v":2,"event":"step","step":5}\n')
    state.add_output('@@progress {"v":1,"event":"step","step":6}\n')
    snap = state.to_dict()
    assert not snap["progress_supported"] and snap["step"] is None


def test_loss_history_stays_bounded_and_spans_the_run() -> None:
    history = LossHistory(max_points=100)
    for step in range(1, 1001):
        history.add(step, 1.0 / step, None)
    steps = history.columns()["step"]
    assert len(steps) <= 100 and steps[0] <= 16 and steps[-1] >= 990
    assert steps == sorted(steps)


# ---- processes ----------------------------------------------------------------------------------


def test_progress_is_parsed_into_state(tmp_path: Path, runner: TrainingRunner) -> None:
    argv = script(tmp_path, """
progress("cache", what="latents", done=1, total=2)
print("Japanese path: 学習", flush=True)
progress("start", total=3, epochs=1, initial_step=0)
for step in range(1, 4):
    progress("step", step=step, total=3, epoch=1, loss=1.0 / step, avr_loss=0.5, lr=[1e-4],
             s_per_step=0.1, eta_s=0.1 * (3 - step))
    time.sleep(0.05)
progress("sample", path="out/sample/a.png", step=2, epoch=None, prompt_index=0)
progress("checkpoint", path="out/x-step2.safetensors", kind="model", step=2, epoch=None)
progress("checkpoint", path="out/x.safetensors", kind="model", step=3, epoch=None)
progress("end", reason="completed", output="out/x.safetensors", step=3)
print("PYTHONUNBUFFERED=" + os.environ["PYTHONUNBUFFERED"] + " EXTRA=" + os.environ["EXTRA"])
""")
    runner.start(argv, env={"EXTRA": "yes"})
    assert runner.wait(30) == "finished"
    snap = runner.snapshot()
    assert snap["exit_code"] == 0 and snap["argv"] == argv and snap["pid"]
    assert (snap["step"], snap["total"], snap["epoch"]) == (3, 3, 1)
    assert snap["history"]["loss"] == [1.0, 0.5, 1.0 / 3]
    assert snap["samples"] == [{"path": "out/sample/a.png", "step": 2, "epoch": None, "prompt_index": 0}]
    assert [c["path"] for c in snap["checkpoints"]] == ["out/x-step2.safetensors", "out/x.safetensors"]
    assert snap["output"] == "out/x.safetensors" and snap["end_reason"] == "completed"
    assert snap["log_tail"] == ["Japanese path: 学習", "PYTHONUNBUFFERED=1 EXTRA=yes"]
    assert snap["elapsed_s"] is not None and snap["ended_at"] >= snap["started_at"]
    json.dumps(snap)  # plain data, ready for the browser


def test_progress_arrives_while_the_run_is_going(tmp_path: Path, runner: TrainingRunner) -> None:
    argv = script(tmp_path, """
progress("start", total=100, epochs=1, initial_step=0)
progress("step", step=1, total=100, epoch=1, loss=0.1, avr_loss=0.1, lr=[1e-4], s_per_step=None, eta_s=None)
time.sleep(60)
""")
    runner.start(argv)
    snap = wait_for(runner, lambda s: s["step"] == 1)
    assert snap["status"] == "running" and runner.running


def test_a_second_start_is_refused(tmp_path: Path, runner: TrainingRunner) -> None:
    argv = script(tmp_path, "print('ready', flush=True)\ntime.sleep(60)\n")
    pid = runner.start(argv)
    with pytest.raises(RunnerBusyError, match=f"already running \\(pid {pid}\\)"):
        runner.start(argv)
    assert runner.snapshot()["pid"] == pid
    assert runner.stop()
    assert runner.snapshot()["status"] == "stopped"
    # Once it is over, the next run may start, with a fresh state.
    runner.start(script(tmp_path, "print('second', flush=True)\n"))
    assert runner.wait(30) == "finished"
    assert runner.snapshot()["log_tail"] == ["second"]


def test_stop_kills_the_whole_tree(tmp_path: Path, runner: TrainingRunner) -> None:
    argv = script(tmp_path, """
child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
spawner = subprocess.Popen([sys.executable, "-c",
    "import subprocess, sys, time; p = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(120)']);"
    "print('grandchild', p.pid, flush=True); time.sleep(120)"])
print("children", child.pid, spawner.pid, flush=True)
time.sleep(120)
""")
    pid = runner.start(argv)
    snap = wait_for(runner, lambda s: len(s["log_tail"]) == 2)
    pids = [pid] + [int(word) for line in snap["log_tail"] for word in line.split()[1:]]
    assert len(pids) == 4 and not any(gone(p) for p in pids)
    started = time.monotonic()
    assert runner.stop()
    assert time.monotonic() - started < 5, "everything honours SIGTERM: no need to wait for the kill"
    snap = runner.snapshot()
    assert snap["status"] == "stopped" and snap["exit_code"] != 0
    assert all(gone(p) for p in pids), [p for p in pids if not gone(p)]


def test_failure_shows_exit_code_error_and_log_tail(tmp_path: Path, runner: TrainingRunner) -> None:
    argv = script(tmp_path, """
print("loading", flush=True)
progress("error", message="the run cannot start", hint="fix the folders", errors=["no images in train", "bad size"])
try:
    raise ValueError("boom")
except ValueError:
    import traceback
    traceback.print_exc()
sys.exit(3)
""")
    runner.start(argv)
    assert runner.wait(30) == "failed"
    snap = runner.snapshot()
    assert snap["exit_code"] == 3
    assert snap["errors"] == [
        {"message": "the run cannot start", "hint": "fix the folders", "errors": ["no images in train", "bad size"]}
    ]
    assert snap["log_tail"][0] == "loading"
    assert snap["log_tail"][1].startswith("Traceback") and snap["log_tail"][-1] == "ValueError: boom"
    assert "ValueError: boom" in runner.log_text()


def test_log_is_bounded(tmp_path: Path) -> None:
    runner = TrainingRunner(log_lines=50)
    runner.start(script(tmp_path, "for i in range(500):\n    print(i)\n"))
    assert runner.wait(30) == "finished"
    snap = runner.snapshot(tail=10)
    assert snap["log_tail"] == [str(i) for i in range(490, 500)] and snap["log_lines"] == 500
    assert runner.log_text().splitlines() == [str(i) for i in range(450, 500)]


@pytest.mark.skipif(os.name != "posix", reason="SIGTERM cannot be ignored on Windows (TerminateProcess)")
def test_a_run_ignoring_sigterm_is_killed_after_the_timeout(tmp_path: Path, runner: TrainingRunner) -> None:
    argv = script(tmp_path, """
signal.signal(signal.SIGTERM, signal.SIG_IGN)
print("ready", flush=True)
while True:
    time.sleep(0.1)
""")
    pid = runner.start(argv)
    wait_for(runner, lambda s: s["log_tail"] == ["ready"])
    started = time.monotonic()
    assert runner.stop(timeout=1.0)
    assert 0.9 <= time.monotonic() - started < 5
    snap = runner.snapshot()
    assert snap["status"] == "stopped" and snap["exit_code"] == -9
    assert gone(pid)


def test_stop_without_a_run_does_nothing(runner: TrainingRunner) -> None:
    assert not runner.stop()
    assert runner.snapshot()["status"] == "idle"


# ---- a real run ---------------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.skipif(not (REPO / "venv/bin/python").exists(), reason="the exported .sh runs the repo venv")
def test_real_lora_run_through_accelerate_and_the_exported_script(tiny, tmp_path: Path) -> None:
    from safetensors.torch import load_file

    from tests.end_to_end.helpers import make_images

    train = tmp_path / "train"
    make_images(train / "2_sks dog", 3, sizes=[(64, 64), (96, 64), (64, 96)])
    out = tmp_path / "out put"
    values = {
        "pretrained_model_name_or_path": str(tiny.get("sd15").path),
        "train_data_dir": str(train),
        "output_dir": str(out),
        "output_name": "tiny",
        "resolution": "64",
        "caption_extension": ".txt",
        "max_data_loader_n_workers": 0,
        "seed": 7,
        "max_train_steps": 3,
        "learning_rate": 1e-2,
        "network_dim": 4,
    }
    accelerate = {"num_processes": 1, "num_machines": 1, "mixed_precision": "no", "dynamo_backend": "no",
                  "num_cpu_threads_per_process": 1}
    run = prepare_run("train_network", values, accelerate)
    offline = {"HF_HUB_OFFLINE": "1"}  # nothing may be fetched from a hub

    runner = TrainingRunner()
    runner.start(run.argv, env=offline)
    assert runner.wait(600) == "finished", runner.log_text()[-4000:]
    snap = runner.snapshot()
    assert snap["exit_code"] == 0 and snap["errors"] == []
    assert snap["step"] == snap["total"] == 3 and snap["history"]["step"] == [1, 2, 3]
    assert snap["end_reason"] == "completed"
    lora = out / "tiny.safetensors"
    assert snap["output"] == str(lora) and lora.is_file()
    first = load_file(lora)
    lora.unlink()

    sh, _ = export_scripts(run.argv, tmp_path / "scripts", "train tiny")
    result = subprocess.run([str(sh)], cwd=tmp_path, env={**os.environ, **offline}, capture_output=True,
                            text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-4000:]
    second = load_file(lora)
    assert first.keys() == second.keys()
    assert all((first[key] == second[key]).all() for key in first)


def test_a_run_keeps_its_kind_and_form_and_only_its_own_tab_shows_it(runner: TrainingRunner, tmp_path: Path) -> None:
    """Item 20: a reload during a run restores that run's form; the other training tab names the run's tab."""
    from gui.i18n import Translator
    from gui.training import form_state
    from gui.training.progress_panel import bar_status_html, other_kind_text
    from gui.training.training_kinds import FINETUNE, LORA

    form = {"model_type": "sdxl", "network_type": "LoCon", "learning_rate": 0.0002, "output_dir": "/out"}
    runner.start(script(tmp_path, "time.sleep(30)\n"), meta={"kind": "lora", "form": form})
    snapshot = wait_for(runner, lambda s: s["status"] == "running")
    assert snapshot["kind"] == "lora" and runner.meta()["form"] == form
    restored = form_state.run_form(runner.meta(), LORA)
    assert restored is not None and restored.values == {"learning_rate": 0.0002, "output_dir": "/out"}
    assert restored.gui == {"model_type": "sdxl", "network_type": "LoCon"}
    assert form_state.run_form(runner.meta(), FINETUNE) is None  # not the fine-tune tab's run
    ja = Translator("ja")
    assert other_kind_text(snapshot, LORA, ja) is None
    note = other_kind_text(snapshot, FINETUNE, ja)
    assert note is not None and "「LoRA学習」ページ" in note and "実行中" in note
    assert "「LoRA学習」ページ" in bar_status_html(snapshot, FINETUNE, ja)
    runner.stop(timeout=5)
    stopped = runner.snapshot()
    assert "待機中" in (other_kind_text(stopped, FINETUNE, ja) or "")
