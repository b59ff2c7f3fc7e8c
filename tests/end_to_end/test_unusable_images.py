"""--skip_unreadable_images as a user passes it: preflight (in-process, nothing trains) stops on an image
that cannot be read, or with the flag plans the run without it."""

from __future__ import annotations

import json

from backend.training.command import run_command

from .helpers import make_images


def test_preflight_with_and_without_skip_unreadable_images(capsys, tiny, tmp_path):
    folder = tmp_path / "train" / "2_sks"
    make_images(folder, 3)
    (folder / "cut.png").write_bytes((folder / "img0.png").read_bytes()[:200])
    flags = ["--pretrained_model_name_or_path", str(tiny.get("sd15").path), "--train_data_dir", str(folder.parent),
             "--output_dir", str(tmp_path / "out"), "--resolution", "64", "--caption_extension", ".txt",
             "--max_train_epochs", "1", "--preflight"]

    assert run_command("train_network", flags) == 1
    report = json.loads(capsys.readouterr().out)
    [error] = report["errors"]
    assert error.startswith(f"{folder / 'cut.png'}: ") and "or train without it: --skip_unreadable_images" in error

    assert run_command("train_network", [*flags, "--skip_unreadable_images"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["ok"] is True and report["errors"] == []
    assert any(w.startswith("training without 1 image file(s) that cannot be read") for w in report["warnings"])
    assert report["dataset"]["total_steps"] == 6  # 3 readable images x 2 repeats, batch size 1
