"""A damaged base model or a file that is no base model stops the run before training, with the
file's name and what to do: in the `--preflight` JSON report and as an `error` progress line, exit 1.
In-process and before any model is loaded, so cheap."""

from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors.torch import save_file

from backend.training.command import run_command
from backend.training.progress import parse_progress_line


def _run(capsys, *args: str) -> tuple[int, str, str]:
    code = run_command("train_network", list(args))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def _flags(model: Path, train_dir: Path, out: Path, *extra: str) -> list[str]:
    return ["--pretrained_model_name_or_path", str(model), "--train_data_dir", str(train_dir),
            "--output_dir", str(out), "--resolution", "64", "--caption_extension", ".txt", *extra]


def test_truncated_model_in_preflight_and_in_a_run(capsys, tiny, train_dir, tmp_path):
    data = tiny.get("sd15", single_file=True).path.read_bytes()
    cut = tmp_path / "model.safetensors"
    cut.write_bytes(data[: len(data) // 3])
    expected = (f"{cut}: the file ends after {len(data) // 3:,} of {len(data):,} bytes: the download or copy was cut "
                "short; download or copy it again")

    code, out, err = _run(capsys, *_flags(cut, train_dir, tmp_path, "--preflight"))
    assert code == 1 and "Traceback" not in err
    report = json.loads(out)
    assert report["ok"] is False and report["errors"] == [expected]

    code, out, err = _run(capsys, *_flags(cut, train_dir, tmp_path / "out", "--max_train_steps", "1"))
    assert code == 1 and "Traceback" not in err and expected in err
    [error] = [e for e in map(parse_progress_line, out.splitlines()) if e and e["event"] == "error"]
    assert error["errors"] == [expected]


def test_lora_given_as_the_base_model(capsys, train_dir, tmp_path):
    lora = tmp_path / "style.safetensors"
    save_file({"lora_unet_mid_block_attentions_0_proj_in.lora_down.weight": torch.zeros(4, 8),
               "lora_unet_mid_block_attentions_0_proj_in.lora_up.weight": torch.zeros(8, 4)}, str(lora))
    code, out, _ = _run(capsys, *_flags(lora, train_dir, tmp_path, "--preflight"))
    assert code == 1
    [error] = json.loads(out)["errors"]
    assert error.startswith(f"{lora}: this is a LoRA network file, not a base model")
    assert "--network_weights" in error
