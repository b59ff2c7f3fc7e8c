"""Runs that cannot end well end clearly: a diverging loss stops the run before a bad file is written,
a save the output folder refuses goes to a rescue folder, a state of another network is refused, and
leftovers of interrupted saves are cleaned up at the next start. Each exits 1 with an `error` and an
`end` progress line and no traceback."""

from __future__ import annotations

import contextlib
import errno
import io
import json
import logging
import os
import shutil
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

import backend.training.loop as loop
import backend.training.run_setup as run_setup
from backend.training.command import run_command
from backend.training.progress import parse_progress_line

from .helpers import base_flags

OLD = 1_000_000_000.0  # an mtime long ago: leftovers of a run killed earlier


def run(command: str, argv: list[str]) -> tuple[int, list[dict], str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = run_command(command, argv)
        except SystemExit as exit_:
            code = int(exit_.code or 0)
    events = [e for e in map(parse_progress_line, out.getvalue().splitlines()) if e is not None]
    return code, events, err.getvalue()


def of(events: list[dict], kind: str) -> list[dict]:
    return [e for e in events if e["event"] == kind]


def all_finite(path: Path) -> bool:
    return all(torch.isfinite(t).all() for t in load_file(str(path)).values())


def test_a_diverging_run_stops_before_writing_nan_and_keeps_earlier_files(tiny, train_dir, tmp_path, monkeypatch,
                                                                         caplog):
    """--learning_rate 1e6 (the loss is NaN from step 2), on the GPU path where a loss is read one step late."""
    caplog.set_level(logging.INFO)
    monkeypatch.setattr(loop, "report_lag", lambda device: 1)
    out = tmp_path / "out"
    out.mkdir()
    earlier = out / "tiny.safetensors"  # a good final file of the same name from an earlier run
    save_file({"w": torch.ones(2)}, str(earlier))
    before = earlier.read_bytes()
    # Leftovers of a killed run (ours, old), and the user's own files that merely look alike.
    (out / ".tiny.safetensors.0123abcd.tmp").write_bytes(b"half")
    (out / "tiny-step00000004-state.partial").mkdir()
    (out / ".tiny.safetensors.0123abcd.tmp.safetensors").write_bytes(b"half")
    mine = [out / ".notes.tmp", out / "draft.partial", out / "tiny.tmp", out / ".x.0123ABCD.tmp"]
    for path in mine:
        path.write_text("user file")
    for path in out.iterdir():
        os.utime(path, (OLD, OLD))

    code, events, err = run("train_network", base_flags(
        tiny.get("sd15").path, train_dir, out, "--learning_rate", "1e6", "--max_train_steps", "3",
        "--save_every_n_steps", "1", "--network_dim", "4",
    ))

    assert code == 1
    [error] = of(events, "error")
    assert "diverged at step 2" in error["message"] and "loss is NaN" in error["message"]
    assert "tiny-step00000001.safetensors (step 1)" in error["message"]
    # That save is only known to hold finite weights (a diverging run may have written huge ones before): said so.
    assert "The newest save with finite weights is" in error["message"] and "check its samples" in error["message"]
    assert "learning rate is too high for AdamW" in error["hint"]
    assert of(events, "end")[-1]["reason"] == "error" and of(events, "end")[-1]["output"] is None
    assert [e["loss"] is None for e in of(events, "step")] == [False, True]
    assert "Traceback" not in err and "diverged at step 2" in err
    assert earlier.read_bytes() == before  # the earlier final file was not replaced
    saved = sorted(p.name for p in out.glob("tiny-step*.safetensors"))
    assert saved == ["tiny-step00000001.safetensors"] and all_finite(out / saved[0])
    assert [e["path"] for e in of(events, "checkpoint")] == [str(out / saved[0])]
    # Only our leftovers were removed, and the log says so.
    assert sorted(p.name for p in out.iterdir()) == sorted(
        [p.name for p in mine] + ["tiny.safetensors", "tiny-step00000001.safetensors"])
    removed = [r.getMessage() for r in caplog.records if "removed the leftover" in r.getMessage()]
    assert len(removed) == 3 and any("tiny-step00000004-state.partial" in line for line in removed)


@pytest.fixture(scope="module")
def rescued(tiny, train_dir, tmp_path_factory):  # in-process: the log goes to pytest's capture
    """A run whose output folder turns into a file after preflight: the saves go to the rescue folder."""
    root = tmp_path_factory.mktemp("rescue")
    out, home = root / "out", root / "home"
    real_build_run = run_setup.build_run

    def build_run_then_block_the_folder(*args, **kwargs):
        built = real_build_run(*args, **kwargs)
        shutil.rmtree(out, ignore_errors=True)
        out.write_text("a file where the output folder was")  # root can write anywhere: this stops it too
        return built

    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("HOME", str(home))
        patch.setattr(run_setup, "build_run", build_run_then_block_the_folder)
        result = run("train_network", base_flags(
            tiny.get("sd15").path, train_dir, out, "--max_train_steps", "1", "--network_dim", "4",
            "--save_state_on_train_end",
        ))
    return result, out, home


def test_a_save_the_output_folder_refuses_goes_to_a_rescue_folder(rescued):
    (code, events, err), out, home = rescued
    assert code == 1
    [folder] = list((home / "kohya_rescued").iterdir())
    assert folder.name.startswith("tiny-")
    model, state = folder / "tiny.safetensors", folder / "tiny-state"
    assert all_finite(model) and (state / "train_state.json").is_file()
    assert [(e["kind"], e["path"]) for e in of(events, "checkpoint")] == [("model", str(model)), ("state", str(state))]
    [error] = of(events, "error")
    assert f"could not write to --output_dir {out}" in error["message"] and str(folder) in error["message"]
    assert "tiny.safetensors, tiny-state" in error["message"] and "Move them" in error["hint"]
    assert of(events, "end")[-1] == {**of(events, "end")[-1], "reason": "error", "output": str(model)}
    assert "Traceback" not in err and str(folder) in err


def test_resuming_with_another_network_dim_is_refused_in_preflight(rescued, tiny, train_dir, tmp_path):
    (_, _, _), _, home = rescued
    [folder] = list((home / "kohya_rescued").iterdir())
    flags = base_flags(tiny.get("sd15").path, train_dir, tmp_path, "--max_train_steps", "2",
                       "--resume", str(folder / "tiny-state"))
    code, _, _ = run("train_network", [*flags, "--network_dim", "4", "--preflight"])
    assert code == 0
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = run_command("train_network", [*flags, "--network_dim", "8", "--network_alpha", "2", "--preflight"])
    assert code == 1
    [problem] = [e for e in json.loads(out.getvalue())["errors"] if "--resume" in e]
    assert "--network_dim: 4 in the state, 8 in this run" in problem
    assert "--network_alpha: 1.0 in the state, 2.0 in this run" in problem and "without --resume" in problem


def test_a_state_without_a_record_is_compared_by_its_weights(rescued, tiny, train_dir, tmp_path):
    """States saved before the record existed: the saved weights' shapes are compared before loading."""
    (_, _, _), _, home = rescued
    [folder] = list((home / "kohya_rescued").iterdir())
    state = tmp_path / "old-state"
    shutil.copytree(folder / "tiny-state", state)
    record = json.loads((state / "train_state.json").read_text())
    del record["run"]
    (state / "train_state.json").write_text(json.dumps(record))
    code, events, err = run("train_network", base_flags(
        tiny.get("sd15").path, train_dir, tmp_path / "out", "--max_train_steps", "2", "--network_dim", "8",
        "--resume", str(state),
    ))
    assert code == 1
    [error] = of(events, "error")
    assert f"--resume {state} does not fit this run" in error["message"]
    assert "weights have another shape" in error["message"] and "4x" in error["message"] and "8x" in error["message"]
    assert "without --resume" in error["hint"]
    assert "Traceback" not in err


def test_a_full_disk_at_the_final_save_says_so_and_rescues_the_file(tiny, train_dir, tmp_path, monkeypatch):
    out, home = tmp_path / "out", tmp_path / "home"
    real_replace = os.replace

    def full_disk(src, dst, *args, **kwargs):  # the output disk fills up: the file cannot be completed there
        if Path(dst).parent == out:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(src))
        return real_replace(src, dst, *args, **kwargs)

    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setattr(os, "replace", full_disk)
    code, events, err = run("train_network", base_flags(
        tiny.get("sd15").path, train_dir, out, "--max_train_steps", "1", "--network_dim", "4"))
    assert code == 1
    [folder] = list((home / "kohya_rescued").iterdir())
    assert all_finite(folder / "tiny.safetensors") and not list(out.iterdir())  # no temporary file left behind
    [error] = of(events, "error")
    assert "the disk is full (no space left on device)" in error["message"] and str(folder) in error["message"]
    assert "Free space on that disk" in error["hint"]
    assert of(events, "end")[-1]["output"] == str(folder / "tiny.safetensors")
    assert "Traceback" not in err


def test_a_lora_run_without_room_for_its_saves_stops_before_the_first_step(tiny, train_dir, tmp_path, monkeypatch):
    """A network's size is known once it is built: checked then, with the exact parameter count."""
    from backend.training import output_space

    free = 100_000  # bytes: less than the LoRA file, its 2 step saves and 3 states need
    monkeypatch.setattr(output_space.shutil, "disk_usage", lambda path: shutil._ntuple_diskusage(1, 1, free))
    code, events, err = run("train_network", base_flags(
        tiny.get("sd15").path, train_dir, tmp_path, "--max_train_steps", "3", "--network_dim", "4",
        "--save_every_n_steps", "1", "--save_state"))
    assert code == 1 and not of(events, "start") and not of(events, "step")
    [error] = of(events, "error")
    assert error["message"].startswith(f"--output_dir {tmp_path}: only 0.1 MiB free, but this run saves about")
    assert "(3 model files of about 0.1 MiB and 2 training states of about 0.4 MiB)" in error["message"]
    assert "Traceback" not in err


@pytest.mark.parametrize("damaged", ["model", "image"])
def test_a_file_damaged_after_preflight_is_reported_without_a_traceback(damaged, tiny, train_dir, tmp_path,
                                                                        monkeypatch):
    """Preflight passed, then a file changed (a copy still running, a download replaced it): the error found
    while the run is built (ModelFileError, DatasetError) is said like every other stop, not as a traceback."""
    import backend.training.command as command

    model, images = tmp_path / "model.safetensors", tmp_path / "train"
    shutil.copy(tiny.get("sd15", single_file=True).path, model)
    shutil.copytree(train_dir, images)
    victim = model if damaged == "model" else images / "2_sks dog" / "img1.png"
    real_build_plan = command.build_plan

    def plan_then_cut_a_file_short(*args, **kwargs):
        plan = real_build_plan(*args, **kwargs)
        with open(victim, "r+b") as file:
            file.truncate(victim.stat().st_size // 2)
        return plan

    monkeypatch.setattr(command, "build_plan", plan_then_cut_a_file_short)
    code, events, err = run("train_network", [
        *base_flags(model, images, tmp_path / "out", "--max_train_steps", "1", "--network_dim", "4"),
        "--tokenizer_cache_dir", str(tiny.get("sd15", single_file=True).tokenizer_cache_dir),
    ])
    assert code == 1
    [error] = of(events, "error")
    assert str(victim) in error["message"] and not error["message"].startswith(("ModelFileError", "DatasetError"))
    assert of(events, "end")[-1]["reason"] == "error" and not of(events, "start")
    assert "Traceback" not in err and f"error: {error['message']}" in err
