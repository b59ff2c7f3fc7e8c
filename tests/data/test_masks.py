"""Loss masks from --conditioning_data_dir / a dataset config's conditioning_data_dir: paired with their images,
checked before training, and carried through the image's resize, crop, flip and cached latents."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from backend.data import DatasetGroup, TrainDataset, cache_latents, specs_from_args
from backend.data.config import specs_from_dataset_config
from backend.data.latent_files import CachedLatents, CacheKey, is_cache_valid, save_cache
from backend.data.preflight import preflight_report
from backend.options.dataset_config import load_dataset_config, subset_kinds_for
from backend.training.mask_check import MaskConfig, mask_problems

from .test_latent_cache import fake_vae


def image_and_mask(train: Path, masks: Path, name: str, size: tuple[int, int], seed: int) -> None:
    """A noise image and, as its mask, its own red channel: aligned masks then equal the pixels' red channel."""
    rgb = np.random.default_rng(seed).integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
    train.mkdir(parents=True, exist_ok=True)
    masks.mkdir(parents=True, exist_ok=True)
    Image.fromarray(rgb).save(train / f"{name}.png")
    Image.fromarray(rgb[:, :, 0]).save(masks / f"{name}.png")  # grayscale: its red channel is the same


@pytest.fixture
def masked(tmp_path: Path) -> Path:
    for i, size in enumerate([(100, 70), (70, 100), (90, 90)]):
        image_and_mask(tmp_path / "train" / "4_x", tmp_path / "masks" / "4_x", f"img{i}", size, seed=i)
    return tmp_path


def build(root: Path, **args) -> DatasetGroup:
    args = {"train_data_dir": str(root / "train"), "conditioning_data_dir": str(root / "masks"), "resolution": "64",
            "enable_bucket": True, "min_bucket_reso": 32, "max_bucket_reso": 128, "bucket_reso_steps": 16, **args}
    return DatasetGroup([TrainDataset(s, seed=3, warn=lambda _: None) for s in specs_from_args(args)], seed=3)


def red_in_unit_range(batch: dict) -> torch.Tensor:
    return (batch["images"][:, 0] + 1) / 2


def test_masks_follow_resize_random_crop_and_flip(masked: Path) -> None:
    group = build(masked, random_crop=True, flip_aug=True)
    flips, crops = set(), set()
    for epoch in (1, 2):
        group.set_epoch(epoch)
        for i in range(len(group)):
            batch = group[i]
            assert batch["alpha_masks"].shape == batch["images"][:, 0].shape
            # Every mask pixel on its image pixel: resized, cropped and mirrored alike.
            assert torch.allclose(batch["alpha_masks"], red_in_unit_range(batch), atol=1e-5)
            flips.update(batch["flipped"].tolist())
            crops.update(map(tuple, batch["crop_top_lefts"].tolist()))
    assert flips == {True, False} and len(crops) > 2  # both sides and several crops were seen


def test_masks_with_cached_latents_are_those_of_the_pixels(masked: Path) -> None:
    plain, cached = build(masked, flip_aug=True), build(masked, flip_aug=True)
    cache_latents(cached, fake_vae, to_disk=True)
    for path in (masked / "train").rglob("*.npz"):  # read at each step instead, as sd-scripts: its own files
        assert "alpha_mask" not in np.load(path)
    for i in range(len(plain)):
        a, b = plain[i], cached[i]
        assert b["images"] is None and torch.equal(a["flipped"], b["flipped"])
        assert torch.allclose(a["alpha_masks"], b["alpha_masks"], atol=1e-6)
        assert torch.allclose(b["alpha_masks"], red_in_unit_range(a), atol=1e-5)


def test_dataset_config_subsets_and_reg_images(masked: Path) -> None:
    """A ControlNet-style subset of a dataset config, and a reg folder: its images count fully."""
    (masked / "reg" / "1_y").mkdir(parents=True)
    Image.new("RGB", (64, 64), (0, 0, 0)).save(masked / "reg" / "1_y" / "r.png")
    group = build(masked, reg_data_dir=str(masked / "reg"), enable_bucket=False, train_batch_size=4)
    mixed = [b for b in (group[i] for i in range(len(group))) if b["is_reg"].any() and not b["is_reg"].all()]
    assert mixed and all(b["alpha_masks"][b["is_reg"]].eq(1).all() for b in mixed)
    toml = masked / "data.toml"
    toml.write_text(f"[[datasets]]\nresolution = 64\n[[datasets.subsets]]\nimage_dir = '{masked / 'train' / '4_x'}'\n"
                    f"conditioning_data_dir = '{masked / 'masks' / '4_x'}'\n")
    config = load_dataset_config(toml, subset_kinds_for("train_network", masked_loss=True))
    (spec,) = specs_from_dataset_config(config, {})
    batch = TrainDataset(spec, warn=lambda _: None).load_batch(1, 0)
    assert torch.allclose(batch["alpha_masks"], red_in_unit_range(batch), atol=1e-5)


def test_every_mask_problem_listed_before_training(masked: Path) -> None:
    masks = masked / "masks" / "4_x"
    (masks / "img0.png").unlink()  # missing
    Image.new("L", (10, 10)).save(masks / "img1.png")  # another size than its 70x100 image
    Image.new("L", (90, 90)).save(masks / "stray.png")  # no image of that name
    (spec,) = specs_from_args({"train_data_dir": str(masked / "train"), "conditioning_data_dir": str(masked / "masks"),
                               "resolution": "64"})
    report = preflight_report([spec])
    problems = {Path(p["path"]).name: p["problem"] for p in report["problems"]}
    assert not report["ok"] and set(problems) == {"img0.png", "img1.png", "stray.png"}
    assert "no mask named img0.*" in problems["img0.png"]
    assert problems["img1.png"].startswith("mask is 10x10 but its image") and "70x100" in problems["img1.png"]
    assert "mask without an image of the same name" in problems["stray.png"]
    assert report["datasets"][0]["num_train_images"] == 4  # only img2 (x4 repeats) can train
    (spec,) = specs_from_args({"train_data_dir": str(masked / "train"), "conditioning_data_dir": str(masked / "none"),
                               "resolution": "64"})
    (error,) = preflight_report([spec])["errors"]
    assert "none/4_x" in error and "does not exist" in error


def test_mask_options_checked_in_preflight(masked: Path) -> None:
    def check(**options) -> tuple[list[str], list[str]]:
        config = MaskConfig(**{"alpha_mask": False, "in_json": None, "dataset_config": None, **options})
        specs = specs_from_args({"train_data_dir": str(masked / "train"), "resolution": "64",
                                 "alpha_mask": config.alpha_mask})
        return mask_problems(config, specs)

    (error,), _ = check(conditioning_data_dir="masks")
    assert "only --masked_loss applies" in error
    (error,), _ = check(conditioning_data_dir="masks", masked_loss=True, alpha_mask=True)
    assert "two masks for the same images" in error
    [], (warning,) = check(masked_loss=True)
    assert "no mask and the loss is not masked" in warning
    assert check(masked_loss=True, alpha_mask=True) == ([], [])


def test_a_cached_alpha_mask_no_longer_wanted_is_made_again(tmp_path: Path) -> None:
    key = CacheKey(file_stat=(1, 2), image_size=(64, 64), bucket_reso=(64, 64), resized_size=(64, 64),
                   interpolation="", flip=False, alpha=True)
    entry = CachedLatents(torch.zeros(4, 8, 8), None, torch.ones(64, 64), (64, 64), (0, 0, 64, 64), (64, 64))
    save_cache(tmp_path / "a_sd.npz", key, entry)
    assert is_cache_valid(tmp_path / "a_sd.npz", key)
    # as sd-scripts: a stale mask would otherwise keep masking after alpha_mask is turned off
    assert not is_cache_valid(tmp_path / "a_sd.npz", CacheKey(**{**key.__dict__, "alpha": False}))
