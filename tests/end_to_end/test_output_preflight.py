"""Preflight refuses a run whose files could not be written (a file where a folder belongs, a read-only
folder, too little free space), and a check that crashes is reported like any other problem. In-process
and before any model is loaded."""

from __future__ import annotations

import errno
import json
import os
import shutil
from pathlib import Path

import pytest

import backend.training.command as command
from backend.training import output_space
from backend.training.command import run_command
from backend.training.progress import parse_progress_line


def run(capsys, name: str, *args: str) -> tuple[int, str, str]:
    code = run_command(name, list(args))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def flags(model: Path, train_dir: Path, out: Path, *extra: str) -> list[str]:
    return ["--pretrained_model_name_or_path", str(model), "--train_data_dir", str(train_dir),
            "--output_dir", str(out), "--resolution", "64", "--caption_extension", ".txt", *extra]


@pytest.fixture
def model(tiny) -> Path:
    return tiny.get("sd15").path


def preflight_errors(capsys, name: str, *argv: str) -> list[str]:
    code, out, _ = run(capsys, name, *argv, "--preflight")
    report = json.loads(out)
    assert code == (0 if report["ok"] else 1)
    return report["errors"]


def test_a_file_where_a_written_folder_belongs_fails_preflight(capsys, model, train_dir, tmp_path):
    blocker = tmp_path / "blocker"
    blocker.write_text("x")
    [problem] = preflight_errors(capsys, "train_network", *flags(model, train_dir, blocker))
    assert problem.startswith(f"--output_dir {blocker} is a file, not a folder")
    [problem] = preflight_errors(capsys, "train_network", *flags(model, train_dir, tmp_path / "out",
                                                                 "--logging_dir", str(blocker / "logs")))
    assert f"--logging_dir {blocker / 'logs'} cannot be created: {blocker} is a file" in problem
    assert preflight_errors(capsys, "train_network", *flags(model, train_dir, tmp_path / "out")) == []
    assert not (tmp_path / "out").exists()


def test_read_only_folders_fail_preflight(capsys, model, train_dir, tmp_path, monkeypatch):
    """As on a read-only mount (where root cannot write either): the probe file is refused by the kernel."""
    real_open = os.open
    read_only = {str(train_dir / "2_sks dog"), str(tmp_path)}

    def open_on_read_only_mounts(path, *args, **kwargs):
        if "write-check" in str(path) and str(Path(path).parent) in read_only:
            raise OSError(errno.EROFS, os.strerror(errno.EROFS), str(path))
        return real_open(path, *args, **kwargs)

    monkeypatch.setattr(os, "open", open_on_read_only_mounts)
    problems = preflight_errors(capsys, "train_network", *flags(model, train_dir, tmp_path / "out",
                                                                "--cache_latents_to_disk"))
    assert len(problems) == 2
    assert f"--output_dir {tmp_path / 'out'}: cannot write there (it would be created in {tmp_path})" in problems[0]
    assert "read-only file system" in problems[0]
    assert f"image folder {train_dir / '2_sks dog'}: cannot write there" in problems[1]
    assert "--cache_latents_to_disk" in problems[1] and "cache in memory instead" in problems[1]


def test_too_little_free_space_for_a_fine_tune_fails_preflight(capsys, tiny, train_dir, tmp_path, monkeypatch):
    model = tiny.get("sdxl").path
    argv = flags(model, train_dir, tmp_path, "--max_train_steps", "4", "--save_every_n_steps", "1",
                 "--save_state", "--save_precision", "fp16")
    assert preflight_errors(capsys, "sdxl_train", *argv) == []
    monkeypatch.setattr(output_space.shutil, "disk_usage", lambda path: shutil._ntuple_diskusage(1, 1, 1000))
    [problem] = preflight_errors(capsys, "sdxl_train", *argv)
    # The final model and 3 step saves, and 3 states (float32 weights and AdamW's two moments).
    assert problem.startswith(f"--output_dir {tmp_path}: only 0.0 MiB free, but this run saves about")
    assert "4 model files of about" in problem and "3 training states of about" in problem


def test_a_crashing_check_is_an_error_line_not_a_bare_traceback(capsys, model, train_dir, tmp_path, monkeypatch):
    def broken_plan(args, name):
        raise RuntimeError("something unforeseen")

    monkeypatch.setattr(command, "build_plan", broken_plan)
    code, out, err = run(capsys, "train_network", *flags(model, train_dir, tmp_path))
    assert code == 1
    [error] = [e for e in map(parse_progress_line, out.splitlines()) if e and e["event"] == "error"]
    assert "failed unexpectedly (RuntimeError: something unforeseen)" in error["errors"][0]
    assert "Traceback" in err and "something unforeseen" in err  # kept for a bug report
    code, out, _ = run(capsys, "train_network", *flags(model, train_dir, tmp_path, "--preflight"))
    assert code == 1 and json.loads(out)["ok"] is False
