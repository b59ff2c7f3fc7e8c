"""sd-scripts' dataset flags: token warm-up, the face crop, cache_info (metadata_cache.json), and their
dataset-config keys; unit tests on the data layer, no training run."""

from __future__ import annotations

import json
import os
import random
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from backend.data.captions import CaptionStep, process_caption, read_caption
from backend.data.config import specs_from_args, specs_from_dataset_config
from backend.data.dataset import DatasetGroup, TrainDataset
from backend.data.errors import DatasetError
from backend.data.face_crop import FaceBox, face_crop, face_in_name
from backend.data.images import LoadedImage
from backend.data.info_cache import CACHE_FILE
from backend.data.latent_cache import uncacheable_problem
from backend.data.scan import scan_dataset
from backend.data.specs import DatasetSpec, SubsetSpec
from backend.options.dataset_config import validate_dataset_config

from .helpers import make_image

TAGS = "sks, a, b, c, d, e, f, g, h, i"  # keep_tokens 1 keeps "sks": 9 tags warm up


def warm(step: int, total: int = 100, **settings) -> str:
    spec = SubsetSpec(image_dir="x", keep_tokens=1, token_warmup_min=1, **settings)
    return process_caption(TAGS, spec, 1, random.Random(0), CaptionStep(step, total))


def test_token_warmup_grows_the_tags_kept_as_sd_scripts_counts_them() -> None:
    # sd-scripts: floor(step * (9 - 1) / 8) + 1 tags after the kept ones, all from step 8 on.
    assert [warm(step, token_warmup_step=8).count(",") for step in (0, 1, 4, 7, 8, 50)] == [1, 2, 5, 8, 9, 9]
    assert warm(0, token_warmup_step=8) == "sks, a"  # the first tags of the file: cut before any shuffle
    # Below 1: a share of the run's steps (0.1 of 80 = 8 steps).
    assert warm(4, total=80, token_warmup_step=0.1) == warm(4, token_warmup_step=8)
    assert warm(0, token_warmup_step=0) == TAGS  # off
    shuffled = warm(2, token_warmup_step=8, shuffle_caption=True)
    assert shuffled.startswith("sks, ") and set(shuffled.split(", ")[1:]) == {"a", "b", "c"}
    # No step (validation, reports): whole captions.
    spec = SubsetSpec(image_dir="x", token_warmup_step=8)
    assert process_caption(TAGS, spec, 1, random.Random(0)) == TAGS


def test_each_batch_knows_its_optimizer_step(tmp_path: Path) -> None:
    for i in range(6):
        make_image(tmp_path / "1_x" / f"{i}.png")
        (tmp_path / "1_x" / f"{i}.txt").write_text(TAGS)
    [spec] = specs_from_args({"train_data_dir": str(tmp_path), "resolution": "64", "caption_extension": ".txt",
                              "keep_tokens": 1, "token_warmup_step": 4.0})
    group = DatasetGroup([TrainDataset(spec)])
    group.set_steps(accumulation=2, total_steps=9)  # 6 batches: 3 steps an epoch
    assert [group.caption_step(e, i).step for e, i in ((1, 0), (1, 1), (1, 2), (1, 5), (2, 0), (3, 3))] == [
        0, 0, 1, 2, 3, 7]
    lengths = [group[(1, i)]["captions"][0].count(",") for i in range(6)]
    assert lengths == [1, 1, 3, 3, 5, 5]  # floor(step * 8 / 4) + 1 tags after "sks"
    assert group.caption_variation() == ["1_x: token_warmup_step"]  # no text-encoder cache for them


def test_face_crop_keeps_the_face_centred_and_scaled_into_range() -> None:
    assert face_in_name("a/photo_120_80_40_40.png") == FaceBox(120, 80, 40, 40)
    assert face_in_name("photo_1_2_3.png") is None and face_in_name("my_cat_in_the_park.png") is None
    assert face_in_name("photo_0_80_40_40.png") is None  # sd-scripts: no face without a centre x
    # A 400x300 image, face 40 px around (300, 100): 2..4 face sizes per 64 px short side.
    rgb = np.zeros((300, 400, 3), np.uint8)
    rgb[80:120, 280:320] = 255
    sides = []
    for seed in range(20):
        fitted, scaled = face_crop(LoadedImage(rgb, None), (64, 64), FaceBox(300, 100, 40, 40), (2.0, 4.0), False,
                                   random.Random(seed), None)
        assert fitted.rgb.shape == (64, 64, 3)
        scale = scaled[0] / 400
        assert 64 / (40 * 4) - 0.01 <= scale <= 64 / (40 * 2) + 0.01
        face = np.argwhere(fitted.rgb[..., 0] > 127)
        assert abs(face.mean(axis=0) - 32).max() <= 3  # the face in the middle (jitter: 40 // 20 px)
        sides.append(round(scale, 3))
    assert len(set(sides)) > 5  # a scale drawn per sample
    same, _ = face_crop(LoadedImage(rgb, None), (64, 64), FaceBox(300, 100, 40, 40), (3.0, 3.0), False,
                        random.Random(1), None)
    again, _ = face_crop(LoadedImage(rgb, None), (64, 64), FaceBox(300, 100, 40, 40), (3.0, 3.0), False,
                         random.Random(2), None)
    assert np.array_equal(same.rgb, again.rgb)  # low == high: one scale, centred exactly


def test_face_crop_runs_without_buckets_only_and_its_caption_is_the_source_images(tmp_path: Path) -> None:
    folder = tmp_path / "1_person"
    image = np.zeros((300, 400, 3), np.uint8)
    image[80:120, 280:320] = 255
    folder.mkdir()
    Image.fromarray(image).save(folder / "me_300_100_40_40.png")
    (folder / "me.txt").write_text("a face")
    assert read_caption(folder / "me_300_100_40_40.png", ".txt") == "a face"
    values = {"train_data_dir": str(tmp_path), "resolution": "64", "caption_extension": ".txt",
              "face_crop_aug_range": "3.0,3.0"}
    [spec] = specs_from_args(values)
    assert spec.subsets[0].face_crop_aug_range == (3.0, 3.0)
    batch = TrainDataset(spec).load_batch(1, 0)
    assert batch["captions"] == ["a face"]
    pixels = batch["images"][0, 0]
    assert pixels[24:40, 24:40].min() > 0.9 and pixels[:8].max() < -0.9  # the face fills the middle
    assert (pixels > 0.9).float().mean() > 0.08  # a face of 64 / 3 px
    [bucketed] = specs_from_args({**values, "enable_bucket": True, "min_bucket_reso": 64})
    bucketed_pixels = TrainDataset(bucketed).load_batch(1, 0)["images"][0, 0]
    assert (bucketed_pixels > 0.9).float().mean() < 0.03  # the whole image resized: a face of 9 px
    assert "face_crop_aug_range" in (uncacheable_problem([spec]) or "")
    assert uncacheable_problem([bucketed]) is None
    with pytest.raises(DatasetError, match="face_crop_aug_range must be two numbers"):
        specs_from_args({**values, "face_crop_aug_range": "4.0,2.0"})


def test_cache_info_reuses_sizes_of_unchanged_images_and_writes_sd_scripts_keys(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = tmp_path / "1_x"
    for i in range(3):
        make_image(folder / f"{i}.png", (64 + 8 * i, 64))
    (folder / "0.txt").write_text("zero")
    spec = DatasetSpec(subsets=(SubsetSpec(str(folder), caption_extension=".txt", cache_info=True),),
                       resolution=(64, 64))
    scan_dataset(spec)
    cache = json.loads((folder / CACHE_FILE).read_text())
    assert cache[str(folder / "0.png")]["caption"] == "zero"
    assert [cache[str(folder / f"{i}.png")]["resolution"] for i in range(3)] == [[64, 64], [72, 64], [80, 64]]

    probed: list[Path] = []
    from backend.data import scan as scan_module

    def counting_probe(path: Path):
        probed.append(path)
        return real_probe(path)

    real_probe = scan_module.probe_image
    monkeypatch.setattr(scan_module, "probe_image", counting_probe)
    before = (folder / CACHE_FILE).stat().st_mtime_ns
    records = scan_dataset(spec).records
    assert probed == [] and [r.image_size for r in records] == [(64, 64), (72, 64), (80, 64)]
    assert (folder / CACHE_FILE).stat().st_mtime_ns == before  # nothing changed, nothing written
    make_image(folder / "1.png", (96, 64))  # replaced: measured again, the file follows
    os.utime(folder / "1.png", ns=(1, 1))
    assert [r.image_size for r in scan_dataset(spec).records][1] == (96, 64)
    assert probed == [folder / "1.png"]
    assert json.loads((folder / CACHE_FILE).read_text())[str(folder / "1.png")]["resolution"] == [96, 64]

    (folder / CACHE_FILE).write_text("my notes")  # not the cache: left alone, with a warning
    warnings: list[str] = []
    scan_dataset(spec, warn=warnings.append)
    assert (folder / CACHE_FILE).read_text() == "my notes" and any("metadata_cache.json" in w for w in warnings)


def test_dataset_config_keys_reach_the_subsets(tmp_path: Path) -> None:
    make_image(tmp_path / "img" / "a.png")
    config = validate_dataset_config({
        "general": {"token_warmup_step": 0.5, "face_crop_aug_range": [2.0, 3.0]},
        "datasets": [{"subsets": [{"image_dir": str(tmp_path / "img"), "token_warmup_min": 2, "cache_info": True}]}],
    })  # fmt: skip
    [spec] = specs_from_dataset_config(config, {"resolution": "64"})
    subset = spec.subsets[0]
    assert (subset.token_warmup_step, subset.token_warmup_min, subset.face_crop_aug_range, subset.cache_info) == (
        0.5, 2, (2.0, 3.0), True)
