"""The generator's command line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from devtools.make_tiny_model import main


def test_cli_single_file_prints_trainer_flags(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    main(["--arch", "sd2-v", "--out", str(tmp_path), "--single-file", "--seed", "3"])
    out = capsys.readouterr().out
    cache = tmp_path / "tokenizer_cache"
    assert (tmp_path / "tiny-sd2-v.safetensors").is_file()
    assert (cache / "stabilityai_stable-diffusion-2" / "vocab.json").is_file()
    assert f"--tokenizer_cache_dir {cache}" in out
    assert "--v2 --v_parameterization" in out


def test_cli_diffusers_folder(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    main(["--arch", "sdxl", "--out", str(tmp_path / "m")])
    index = json.loads((tmp_path / "m" / "model_index.json").read_text())
    assert index["_class_name"] == "StableDiffusionXLPipeline"
    assert "--tokenizer_cache_dir" not in capsys.readouterr().out
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m"]
