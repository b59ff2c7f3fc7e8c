"""--debug_dataset shows the batches without loading the model; preflight refuses what sd-scripts refuses with
--weighted_captions."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from PIL import Image

from backend.training.command import run_command

from .helpers import base_flags, make_images


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("caption-flags") / "train"
    make_images(root / "2_sks dog", 2, sizes=[(64, 64), (96, 64)], caption="(sks:2.0), [dog], outdoors, a, b, c")
    return root


def test_debug_dataset_prints_the_batches_saves_their_images_and_exits_before_the_model(tiny, data, tmp_path, capsys):
    argv = base_flags(tiny.get("sd15").path, data, tmp_path, "--debug_dataset", "--keep_tokens", "1",
                      "--token_warmup_step", "3", "--max_train_steps", "4")
    assert run_command("train_network", argv) == 0
    out = capsys.readouterr().out
    assert "--debug_dataset: epoch 1 of 1 (4 batches, 4 steps in the run), seed 7" in out
    assert "batch 1/4 (step 1), bucket 64x64:" in out and "original 96x64, crop top-left (0, 16)" in out
    # Token warm-up at each batch's step: 1 tag after the kept one at step 1, all 6 from step 4 on.
    assert out.count('caption "(sks:2.0), [dog]"\n') == 1 and ", a, b, c, picture " in out
    [folder] = tmp_path.glob("debug_dataset_*")
    images = sorted(folder.glob("*.png"))
    assert len(images) == 4 and {Image.open(p).size for p in images} == {(64, 64)}
    assert not list(tmp_path.glob("*.safetensors")) and '"event": "start"' not in out.replace('":"', '": "')


def test_preflight_refuses_weighted_captions_with_a_text_cache_in_sdxl_train(tiny, data, tmp_path, capsys):
    argv = [*base_flags(tiny.get("sdxl").path, data, tmp_path, "--weighted_captions", "--cache_text_encoder_outputs",
                        "--preflight")]
    assert run_command("sdxl_train", argv) == 1
    errors = json.loads(capsys.readouterr().out)["errors"]
    assert any(e.startswith("--weighted_captions cannot be used with --cache_text_encoder_outputs in sdxl_train")
               for e in errors)
