"""`python -m backend.tools.generate` on the tiny SDXL model (two text encoders, size conditioning): a LoRA the
SDXL trainer saved after one step, at weights 0 and 1 as an X/Y grid with an embedding-free prompt. The README
says every family the trainer trains generates; the SD 1.5 test covers the grid itself, this one that an SDXL
model and its LoRA load, render and differ by weight."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from PIL import Image

from tests.end_to_end.helpers import _ENV_AT_START, REPO, base_flags, make_images, run_trainer, trainer_env
from tests.forked_commands import run_module
from tests.tiny_models import TinyModels


def test_an_sdxl_lora_at_two_weights(tiny: TinyModels, tmp_path: Path) -> None:
    model = tiny.get("sdxl").path
    make_images(tmp_path / "train" / "1_sks dog", 2)
    trained = run_trainer("sdxl_train_network", *base_flags(
        model, tmp_path / "train", tmp_path / "out", "--max_train_steps", "1", "--learning_rate", "5e-2",
        "--network_dim", "4", "--network_alpha", "4", "--train_batch_size", "2",
    ))  # fmt: skip
    assert trained.returncode == 0, trained.stderr[-3000:]
    outdir = tmp_path / "gen"
    result = run_module("backend.tools.generate", [
        "--pretrained_model_name_or_path", str(model), "--outdir", str(outdir), "--network",
        str(tmp_path / "out" / "tiny.safetensors"), "--prompt", "sks dog --n blurry --w 64 --h 64 --s 2",
        "--seed", "3", "--device", "cpu", "--xy", "weight=0,1", "seed=3",
    ], trainer_env(), REPO, 300, server_env=trainer_env(_ENV_AT_START))  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    (grid,) = outdir.glob("*-grid.png")
    record = json.loads(grid.with_suffix(".json").read_text(encoding="utf-8"))
    assert record["x"]["labels"] == ["0", "1"] and record["size"] == [64, 64]
    off, on = (
        np.asarray(Image.open(outdir / cell["file"]).convert("RGB"), dtype=np.int16)
        for cell in record["cells"]
    )
    assert off.shape == (64, 64, 3) and np.abs(off - on).mean() > 1  # the LoRA changes the SDXL image
