import os
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from backend.data import (
    DatasetError,
    DatasetGroup,
    TrainDataset,
    cache_latents,
    cache_path,
    make_dataloader,
    specs_from_args,
)
from backend.data.latent_files import CacheKey, is_cache_valid

from .helpers import make_noise


def fake_vae(pixels: torch.Tensor) -> torch.Tensor:
    """(N, 3, H, W) -> (N, 4, H/8, W/8): stands in for a VAE; deterministic and position-sensitive."""
    pooled = F.avg_pool2d(pixels, 8)
    return torch.cat([pooled, pooled.mean(dim=1, keepdim=True)], dim=1)


def build(root: Path, **args) -> DatasetGroup:
    args = {"train_data_dir": str(root), "resolution": "64", **args}
    return DatasetGroup([TrainDataset(s, warn=lambda _: None) for s in specs_from_args(args)])


@pytest.fixture
def images(tmp_path: Path) -> Path:
    root = tmp_path / "train"
    make_noise(root / "2_x" / "a.png", (96, 64), seed=1)
    make_noise(root / "2_x" / "b.png", (64, 96), seed=2)
    make_noise(root / "2_x" / "c.png", (96, 64), seed=3)
    return root


def test_cache_to_disk_then_reuse(images: Path) -> None:
    group = build(images, enable_bucket=True, min_bucket_reso=32, max_bucket_reso=128, bucket_reso_steps=32,
                  flip_aug=True)
    progress: list[tuple[int, int]] = []
    assert cache_latents(group, fake_vae, vae_batch_size=2, to_disk=True, progress=lambda d, t: progress.append((d, t))) == 3
    assert progress[0] == (0, 3) and progress[-1] == (3, 3)
    assert cache_path(images / "2_x" / "a.png", "sd").name == "a_sd.npz"
    assert (images / "2_x" / "a_sd.npz").is_file() and not list(images.rglob("*.tmp"))
    # A second run reuses every file.
    again = build(images, enable_bucket=True, min_bucket_reso=32, max_bucket_reso=128, bucket_reso_steps=32,
                  flip_aug=True)
    assert cache_latents(again, fake_vae, vae_batch_size=2, to_disk=True) == 0
    batch = again[0]
    assert batch["images"] is None
    n, (w, h) = len(batch["captions"]), batch["bucket_reso"]
    assert batch["latents"].shape == (n, 4, h // 8, w // 8)
    assert batch["original_sizes_hw"].shape == (n, 2)
    assert len(list(make_dataloader(again, max_workers=2))) == len(again)


def test_cached_latents_equal_encoding_the_batch_pixels(images: Path) -> None:
    plain = build(images)
    cached = build(images)
    cache_latents(cached, fake_vae, to_disk=False)
    for i in range(len(plain)):
        a, b = plain[i], cached[i]
        assert a["image_paths"] == b["image_paths"]
        assert torch.allclose(fake_vae(a["images"]), b["latents"], atol=1e-6)
        assert torch.equal(a["crop_top_lefts"], b["crop_top_lefts"])


def key_for(group: DatasetGroup, index: int = 0, **changes) -> CacheKey:
    dataset = group.datasets[0]
    record = dataset.records[index]
    fields = dict(file_stat=record.file_stat, image_size=record.image_size, bucket_reso=record.bucket_reso,
                  resized_size=record.resized_size, interpolation="", flip=False, alpha=False)
    fields.update(changes)
    return CacheKey(**fields)


def test_cache_validity(images: Path) -> None:
    group = build(images)
    cache_latents(group, fake_vae, to_disk=True)
    record = group.datasets[0].records[0]
    path = cache_path(record.path, "sd")
    assert is_cache_valid(path, key_for(group))
    assert not is_cache_valid(path, key_for(group, bucket_reso=(128, 128)))  # other bucket
    assert not is_cache_valid(path, key_for(group, flip=True))  # no flipped latents stored
    assert not is_cache_valid(path, key_for(group, encoder_id="other-vae"))
    # The image changes: a rebuilt dataset sees a new size/mtime, and the file no longer counts.
    make_noise(Path(record.path), (96, 64), seed=99)
    os.utime(record.path, ns=(record.file_stat[1] + 10**9, record.file_stat[1] + 10**9))
    changed = build(images)
    assert not is_cache_valid(path, key_for(changed))
    assert is_cache_valid(path, key_for(changed), skip_check=True)
    assert cache_latents(changed, fake_vae, to_disk=True) == 1


def test_bucket_change_rebuilds(images: Path) -> None:
    cache_latents(build(images), fake_vae, to_disk=True)
    bucketed = build(images, enable_bucket=True, min_bucket_reso=32, max_bucket_reso=128, bucket_reso_steps=32)
    moved = sum(r.bucket_reso != (64, 64) for r in bucketed.datasets[0].records)
    assert moved == 1  # the tall image; the wide ones still fit 64x64 best
    assert cache_latents(bucketed, fake_vae, to_disk=True) == moved
    assert cache_latents(build(images, resolution="32"), fake_vae, to_disk=True) == 3


def test_corrupt_cache_file_is_rebuilt(images: Path) -> None:
    cache_latents(build(images), fake_vae, to_disk=True)
    (images / "2_x" / "a_sd.npz").write_bytes(b"garbage")
    assert cache_latents(build(images), fake_vae, to_disk=True) == 1


def test_color_aug_or_random_crop_cannot_be_cached(images: Path) -> None:
    with pytest.raises(DatasetError, match="color_aug, random_crop or face_crop_aug_range.*2_x \\(color_aug\\)"):
        cache_latents(build(images, color_aug=True), fake_vae)
    with pytest.raises(DatasetError, match="random_crop"):
        cache_latents(build(images, random_crop=True), fake_vae, to_disk=True)


def test_sd_scripts_cache_file_is_used_when_newer_than_image(images: Path) -> None:
    group = build(images)
    record = group.datasets[0].records[0]
    legacy = Path(record.path).with_suffix(".npz")
    latents = np.zeros((4, 8, 8), np.float32)
    np.savez(legacy, latents=latents, original_size=np.array(record.image_size), crop_ltrb=np.array([0, 0, 64, 64]))
    assert cache_latents(group, fake_vae, to_disk=True) == 2
    assert group.datasets[0].latent_files[0] == str(legacy)
    os.utime(legacy, ns=(record.file_stat[1] - 10**9, record.file_stat[1] - 10**9))  # older than the image
    assert cache_latents(build(images), fake_vae, to_disk=True) == 1


def test_highvram_frees_the_device_cache_only_when_the_image_size_changes(images: Path) -> None:
    """sd-scripts clears the device's cache after every latent batch; with --highvram when the shape changes."""
    args = {"enable_bucket": True, "min_bucket_reso": 32, "max_bucket_reso": 128, "bucket_reso_steps": 32}
    freed: list[bool] = []
    for highvram, expected in ((False, 3), (True, 1)):  # three single-image batches in two sizes
        freed.clear()
        cache_latents(build(images, **args), fake_vae, vae_batch_size=1, free_memory=lambda: freed.append(True),
                      highvram=highvram)
        assert len(freed) == expected
