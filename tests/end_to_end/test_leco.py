"""LECO commands (train_leco, sdxl_train_leco): preflight on tiny models. The prompt file's problems and the flags
LECO refuses are reported as JSON before any model loads; no dataset is asked for."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from backend.training.command import run_command


@pytest.mark.parametrize(("command", "arch"), [("train_leco", "sd15"), ("sdxl_train_leco", "sdxl")])
def test_preflight_reads_the_prompt_file(tiny, tmp_path: Path, capsys, command: str, arch: str) -> None:
    prompts = tmp_path / "prompts.toml"
    prompts.write_text('[[prompts]]\ntarget = "dog"\nresolution = 64\n', encoding="utf-8")
    model = tiny.get(arch)
    base = ["--pretrained_model_name_or_path", str(model.path), "--output_dir", str(tmp_path / "out"),
            "--prompts_file", str(prompts), "--preflight"]
    assert run_command(command, base) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["ok"] and report["leco"]["settings"] == 1

    prompts.write_text('[[prompts]]\ntarget = "dog"\nresolution = 60\n', encoding="utf-8")
    assert run_command(command, [*base, "--max_train_epochs", "2", "--network_train_text_encoder_only"]) == 1
    errors = json.loads(capsys.readouterr().out)["errors"]
    assert any("--max_train_epochs 2: LECO counts steps only" in error for error in errors)
    assert any("--network_train_text_encoder_only" in error for error in errors)
    assert any('[[prompts]] #1: "resolution" 60' in error for error in errors)
