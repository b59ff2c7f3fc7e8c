"""SDXL text-encoder output caching: same training, files reused while valid, preflight rules."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from backend.data.text_encoder_files import TextCacheKey
from backend.families.sdxl.spec import sdxl_text_cache_file
from backend.models.components import PromptEmbeds
from backend.training.command import run_command
from backend.training.text_cache import cache_text_encoder_outputs

from .helpers import TrainerResult, base_flags, make_images, run_trainer

CACHE = "--cache_text_encoder_outputs"
TO_DISK = "--cache_text_encoder_outputs_to_disk"


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("te-cache") / "train"
    make_images(root / "2_sks dog", 3, sizes=[(64, 64), (96, 64), (64, 96)])
    return root


def train(tiny, data: Path, out: Path, *extra: str) -> TrainerResult:
    flags = base_flags(
        tiny.get("sdxl").path, data, out, "--network_train_unet_only", "--max_train_steps", "3",
        "--learning_rate", "1e-3", *extra,
    )
    result = run_trainer("sdxl_train_network", *flags)
    assert result.returncode == 0, result.stderr[-3000:]
    return result


def encoding_progress(result: TrainerResult) -> list[tuple[int, int]]:
    return [(e["done"], e["total"]) for e in result.of("cache") if e["what"] == "text_encoder_outputs"]


@pytest.fixture(scope="module")
def uncached(tiny, data: Path, tmp_path_factory: pytest.TempPathFactory) -> TrainerResult:
    return train(tiny, data, tmp_path_factory.mktemp("uncached"))


@pytest.mark.slow
def test_cached_outputs_train_exactly_like_encoding_each_batch(tiny, data, uncached, tmp_path):
    result = train(tiny, data, tmp_path, CACHE)
    assert encoding_progress(result) == [(0, 3), (3, 3)]  # one line before, one per encoded batch
    assert not list(data.rglob("*_te_outputs.npz")), "in memory only"
    assert len(uncached.losses()) == 3
    assert result.losses() == pytest.approx(uncached.losses(), rel=1e-4)


@pytest.mark.slow
def test_validation_captions_come_from_the_cache_too(tiny, data, tmp_path):
    result = train(tiny, data, tmp_path, CACHE, "--validation_split", "0.34", "--validate_every_n_steps", "3")
    assert encoding_progress(result)[-1] == (3, 3)  # 2 training captions + 1 held-out caption
    [validation] = result.of("validation")
    assert validation["step"] == 3 and validation["loss"] is not None


@pytest.mark.slow
def test_disk_cache_is_written_reused_and_rebuilt_for_a_changed_caption(tiny, data, uncached, tmp_path):
    folder = tmp_path / "train"
    shutil.copytree(data, folder)
    images = folder / "2_sks dog"

    first = train(tiny, folder, tmp_path / "out1", TO_DISK)
    files = sorted(images.glob("*_te_outputs.npz"))
    assert [f.name for f in files] == [f"img{i}_te_outputs.npz" for i in range(3)]
    with np.load(files[1]) as npz:
        # sd-scripts' arrays (one caption, no batch axis) plus what tells whether the file is still valid.
        assert npz["hidden_state1"].shape == (77, 32) and npz["hidden_state2"].shape == (77, 64)
        assert npz["pool2"].shape == (32,)
        assert str(npz["caption"]) == "sks dog, picture 1"
        assert int(npz["max_token_length"]) == 75 and str(npz["dtype"]) == "float32"
    assert encoding_progress(first) == [(0, 3), (3, 3)]
    assert first.losses() == pytest.approx(uncached.losses(), rel=1e-4)
    stamps = {f: f.stat().st_mtime_ns for f in files}

    second = train(tiny, folder, tmp_path / "out2", TO_DISK)
    assert encoding_progress(second) == [(0, 0)], "nothing re-encoded"
    assert {f: f.stat().st_mtime_ns for f in files} == stamps
    assert second.losses() == pytest.approx(uncached.losses(), rel=1e-4), "read back from the files unchanged"

    (images / "img1.txt").write_text("sks dog, picture 1, edited")
    third = train(tiny, folder, tmp_path / "out3", TO_DISK)
    assert encoding_progress(third) == [(0, 1), (1, 1)]
    assert [f for f in files if f.stat().st_mtime_ns != stamps[f]] == [files[1]]
    with np.load(files[1]) as npz:
        assert str(npz["caption"]) == "sks dog, picture 1, edited"


def fake_encoder(calls: list[list[str]]):
    def encode(captions: list[str]) -> PromptEmbeds:
        calls.append(list(captions))
        values = torch.tensor([len(c) + 0.1 for c in captions])
        return PromptEmbeds(values[:, None, None].expand(-1, 77, 6).clone(), values[:, None].expand(-1, 4).clone())

    return encode


def key_for(encoder_id: str = "model.safetensors", max_token_length: int = 75, dtype: str = "bfloat16"):
    return lambda caption: TextCacheKey(caption, encoder_id, max_token_length, dtype)


def test_each_distinct_caption_is_encoded_once(tmp_path):
    calls: list[list[str]] = []
    pairs = [(str(tmp_path / "a.png"), "x"), (str(tmp_path / "b.png"), "x"), (str(tmp_path / "c.png"), "yy")]
    cache = cache_text_encoder_outputs(pairs, fake_encoder(calls), None, torch.float16)
    assert calls == [["x", "yy"]]
    embeds = cache.lookup(["yy", "x", "yy"], torch.device("cpu"))
    assert embeds.hidden_states.shape == (3, 77, 6) and embeds.hidden_states.dtype == torch.float16
    assert embeds.pooled is not None and embeds.pooled[:, 0].tolist() == pytest.approx([2.1, 1.1, 2.1], abs=1e-3)
    with pytest.raises(KeyError, match="not in the text-encoder output cache"):
        cache.lookup(["z"], torch.device("cpu"))


def test_cache_files_are_exact_and_rebuilt_for_another_model_length_or_dtype(tmp_path):
    pairs = [(str(tmp_path / "a.png"), "x"), (str(tmp_path / "b.png"), "x")]
    calls: list[list[str]] = []

    def build(key=None):
        return cache_text_encoder_outputs(pairs, fake_encoder(calls), sdxl_text_cache_file(2), torch.bfloat16,
                                          key or key_for())

    encoded = build().embeds["x"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a_te_outputs.npz", "b_te_outputs.npz"]
    with np.load(tmp_path / "a_te_outputs.npz") as npz:
        assert npz["hidden_state1"].shape == (77, 2) and npz["hidden_state2"].shape == (77, 4)
    reread = build().embeds["x"]
    assert calls == [["x"]]
    assert torch.equal(reread.hidden_states, encoded.hidden_states) and reread.hidden_states.dtype == torch.bfloat16
    for key in (key_for(encoder_id="other.safetensors"), key_for(max_token_length=150), key_for(dtype="float16")):
        build(key)
    assert calls == [["x"]] * 4


def preflight_errors(tiny, data: Path, tmp_path: Path, capsys, *extra: str) -> list[str]:
    argv = [*base_flags(tiny.get("sdxl").path, data, tmp_path, *extra), "--preflight"]
    assert run_command("sdxl_train_network", argv) == 1
    return [e for e in json.loads(capsys.readouterr().out)["errors"] if "cache_text_encoder_outputs" in e]


def test_preflight_needs_network_train_unet_only(tiny, data, tmp_path, capsys):
    assert preflight_errors(tiny, data, tmp_path, capsys, TO_DISK) == [
        "--cache_text_encoder_outputs_to_disk needs --network_train_unet_only: the text encoders do not run "
        "during training, so a text encoder LoRA could not learn"
    ]


def test_preflight_rejects_captions_that_change(tiny, data, tmp_path, capsys):
    errors = preflight_errors(
        tiny, data, tmp_path, capsys, CACHE, "--network_train_unet_only", "--shuffle_caption",
        "--caption_dropout_rate", "0.1",
    )
    assert errors == [
        "--cache_text_encoder_outputs cannot be used with --shuffle_caption (subset '2_sks dog'): the cache "
        "holds one fixed caption per image, but shuffle_caption changes captions between epochs. Turn off "
        "--shuffle_caption or the caching",
        "--cache_text_encoder_outputs cannot be used with --caption_dropout_rate (subset '2_sks dog'): the "
        "cache holds one fixed caption per image, but caption_dropout_rate changes captions between epochs. "
        "Turn off --caption_dropout_rate or the caching",
    ]
