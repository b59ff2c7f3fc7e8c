"""The whole metadata workflow on the tiny SD 1.5 model: merge, clean, bucket + latents, then train.

The trainer must take the buckets from `train_resolution` and reuse every latent file as written.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from backend.tools.metadata import (
    clean_captions_and_tags,
    merge_captions_to_metadata,
    merge_dd_tags_to_metadata,
    prepare_buckets_latents,
)
from backend.tools.metadata.metadata_io import run_metadata_tool
from tests.end_to_end.helpers import make_images, run_trainer
from tests.tiny_models import TinyModels

BUCKET_FLAGS = ["--max_resolution", "128,64", "--min_bucket_reso", "64", "--max_bucket_reso", "128"]


@dataclass
class Prepared:
    folder: Path
    metadata: Path
    model: Path
    table: str
    mtimes: dict[str, int]


def run(tool, *argv: str | Path) -> int:
    return run_metadata_tool(tool.main, [str(a) for a in argv])


def prepare_args(folder: Path, in_json: Path, out_json: Path, model: Path, *extra: str) -> list[str | Path]:
    return [folder, in_json, out_json, model, "--batch_size", "2", "--mixed_precision", "no", *BUCKET_FLAGS, *extra]


@pytest.fixture(scope="module")
def prepared(tiny: TinyModels, tmp_path_factory: pytest.TempPathFactory) -> Prepared:
    root = tmp_path_factory.mktemp("workflow")
    folder = root / "imgs"
    paths = make_images(folder, 3, sizes=[(64, 64), (128, 64), (64, 64)], caption="a young woman",
                        caption_extension=".caption")
    for path in paths:
        path.with_suffix(".txt").write_text("long_hair, shirt, white_shirt, rating:safe", encoding="utf-8")
    model = tiny.get("sd15").path
    assert run(merge_captions_to_metadata, folder, root / "meta.json") == 0
    assert run(merge_dd_tags_to_metadata, folder, root / "meta.json") == 0
    assert run(clean_captions_and_tags, root / "meta.json", root / "clean.json") == 0
    stdout = io.StringIO()
    with contextlib.redirect_stdout(stdout):
        code = run(prepare_buckets_latents, *prepare_args(folder, root / "clean.json", root / "lat.json", model,
                                                          "--flip_aug"))
    assert code == 0
    mtimes = {p.name: p.stat().st_mtime_ns for p in folder.glob("*.npz")}
    return Prepared(folder, root / "lat.json", model, stdout.getvalue(), mtimes)


def test_metadata_has_cleaned_text_and_buckets(prepared: Prepared) -> None:
    metadata = json.loads(prepared.metadata.read_text(encoding="utf-8"))
    assert metadata == {
        "img0": {"caption": "a girl, picture 0", "tags": "long hair, white shirt", "train_resolution": [64, 64]},
        "img1": {"caption": "a girl, picture 1", "tags": "long hair, white shirt", "train_resolution": [128, 64]},
        "img2": {"caption": "a girl, picture 2", "tags": "long hair, white shirt", "train_resolution": [64, 64]},
    }
    lines = prepared.table.splitlines()
    assert lines[0].split() == ["bucket", "(WxH)", "images", "with", "repeats", "batches"]
    assert [line.split() for line in lines[1:3]] == [["64x64", "2", "2", "1"], ["128x64", "1", "1", "1"]]


def test_latents_with_flipped_variants_beside_the_images(prepared: Prepared) -> None:
    assert sorted(prepared.mtimes) == ["img0_sd.npz", "img1_sd.npz", "img2_sd.npz"]
    with np.load(prepared.folder / "img1_sd.npz") as npz:
        assert npz["latents"].shape[-2:] == (8, 16)  # bucket 128x64 in latent pixels (h, w)
        assert npz["latents_flipped"].shape == npz["latents"].shape
        assert not np.allclose(npz["latents"], npz["latents_flipped"])
        assert tuple(npz["bucket_reso"]) == (128, 64)


def test_second_run_reuses_the_latent_files(prepared: Prepared, tmp_path: Path,
                                            caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO):
        code = run(prepare_buckets_latents, *prepare_args(prepared.folder, prepared.metadata, tmp_path / "again.json",
                                                          prepared.model, "--flip_aug", "--skip_existing"))
    assert code == 0
    assert "latents: 0 encoded, 3 reused from cache files" in caplog.text
    assert {p.name: p.stat().st_mtime_ns for p in prepared.folder.glob("*.npz")} == prepared.mtimes
    assert json.loads((tmp_path / "again.json").read_text()) == json.loads(prepared.metadata.read_text())


def test_trainer_trains_on_the_metadata_and_reuses_the_latents(prepared: Prepared, tmp_path: Path) -> None:
    result = run_trainer(
        "train_network", "--pretrained_model_name_or_path", str(prepared.model), "--in_json", str(prepared.metadata),
        "--train_data_dir", str(prepared.folder), "--output_dir", str(tmp_path / "out"), "--output_name", "tiny",
        "--resolution", "64", "--max_train_steps", "2", "--max_data_loader_n_workers", "0",
        "--cache_latents_to_disk", "--flip_aug", "--network_module", "networks.lora", "--seed", "1",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert [e["step"] for e in result.of("step")] == [1, 2]
    assert result.of("cache") == []  # nothing encoded: every file was valid for the trainer's buckets
    assert {p.name: p.stat().st_mtime_ns for p in prepared.folder.glob("*.npz")} == prepared.mtimes
    assert (tmp_path / "out" / "tiny.safetensors").is_file()


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"--max_resolution": "512"}, "--max_resolution must be 'width,height'"),
        ({"--max_resolution": "a,64"}, "--max_resolution must be 'width,height'"),
        ({"--batch_size": "0"}, "--batch_size must be 1 or more"),
        ({"--min_bucket_reso": "256"}, "min_bucket_reso 256 is larger than the resolution's short side 64"),
        ({"dir": "missing"}, "image folder not found"),
        ({"in_json": "missing.json"}, "metadata file not found"),
        ({"in_json": "list.json"}, "is not a metadata file: it holds a JSON list"),
        ({"model": "missing-model"}, "model not found"),
        ({"--v2": None}, "but --v2 was given; remove --v2"),
        ({"--recursive": None}, "--recursive needs --full_path"),
    ],
)
def test_errors_exit_2_before_writing(prepared: Prepared, tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                      change: dict[str, str | None], message: str) -> None:
    (tmp_path / "list.json").write_text("[]", encoding="utf-8")
    folder = tmp_path / change["dir"] if "dir" in change else prepared.folder
    in_json = tmp_path / change["in_json"] if "in_json" in change else prepared.metadata
    model = tmp_path / change["model"] if "model" in change else prepared.model
    args = [str(a) for a in prepare_args(folder, in_json, tmp_path / "out.json", model)]
    for flag, value in change.items():
        if flag.startswith("--") and value is None:
            args.append(flag)
        elif flag.startswith("--"):
            args[args.index(flag) + 1] = value
    assert run(prepare_buckets_latents, *args) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "out.json").exists()
