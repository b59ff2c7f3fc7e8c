"""Latent cache files (`--cache_latents_to_disk`): `<image stem>_<arch>.npz` beside the image.

The arrays are those sd-scripts writes (`latents`, `latents_flipped`, `alpha_mask`,
`original_size`, `crop_ltrb`), plus what tells whether the file still matches its image and
settings, because stale caches silently training on old pixels are a known sd-scripts complaint:
the image's byte size and mtime, its (EXIF-applied) size, the bucket, the resized size, the resize
interpolation and an optional encoder id (e.g. the VAE's name or hash). Any difference means the
file is rebuilt. Files are written to a temporary name and renamed, so an interrupted run never
leaves a half-written cache that looks valid.

sd-scripts' own files (`<stem>.npz`, `<stem>_<W>x<H>_<arch>.npz`) carry no such record; they are
used only when their shapes fit and they are newer than the image.

`alpha_mask` is there exactly when the subset sets alpha_mask (as sd-scripts checks: a file with the
mask missing, or with a mask no longer wanted, is made again). Masks of a conditioning_data_dir are
not cached: they are read at each step and given the image's recorded resize and crop, as
sd-scripts reads its conditioning images, so the same cache files serve runs with and without them.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from backend.atomic import atomic_write

FORMAT_VERSION = 1
LATENT_STRIDE = 8  # SD/SDXL VAEs downsample by 8


@dataclass
class CachedLatents:
    latents: torch.Tensor  # (C, h, w) float32
    latents_flipped: torch.Tensor | None
    alpha_mask: torch.Tensor | None  # (H, W) float32 in [0, 1], pixel resolution
    original_size: tuple[int, int]  # (width, height)
    crop_ltrb: tuple[int, int, int, int]
    resized_size: tuple[int, int]


@dataclass(frozen=True)
class CacheKey:
    """Everything a cache file must agree with to be reused."""

    file_stat: tuple[int, int]  # (bytes, mtime_ns) of the image
    image_size: tuple[int, int]
    bucket_reso: tuple[int, int]
    resized_size: tuple[int, int]
    interpolation: str
    flip: bool
    alpha: bool
    encoder_id: str = ""


def cache_path(image_path: str | Path, arch: str) -> Path:
    image_path = Path(image_path)
    return image_path.with_name(f"{image_path.stem}_{arch}.npz")


def _legacy_paths(image_path: Path, image_size: tuple[int, int], arch: str) -> list[Path]:
    return [
        image_path.with_name(f"{image_path.stem}_{image_size[0]:04d}x{image_size[1]:04d}_{arch}.npz"),
        image_path.with_suffix(".npz"),
    ]


def is_cache_valid(path: Path, key: CacheKey, skip_check: bool = False) -> bool:
    """True when `path` holds latents made from this image with these settings.

    skip_check (sd-scripts' --skip_cache_check) only checks that the file exists.
    """
    if not path.is_file():
        return False
    if skip_check:
        return True
    try:
        with np.load(path) as npz:
            if "format_version" not in npz or int(npz["format_version"]) != FORMAT_VERSION:
                return False
            stored = {
                "file_stat": tuple(int(v) for v in npz["file_stat"]),
                "image_size": tuple(int(v) for v in npz["image_size"]),
                "bucket_reso": tuple(int(v) for v in npz["bucket_reso"]),
                "resized_size": tuple(int(v) for v in npz["resized_size"]),
                "interpolation": str(npz["interpolation"]),
                "encoder_id": str(npz["encoder_id"]),
            }
            wanted = {name: getattr(key, name) for name in stored}
            if stored != wanted:
                return False
            return _shapes_fit(npz, key.bucket_reso, key.flip, key.alpha)
    except (OSError, ValueError, KeyError, EOFError):
        return False  # unreadable or foreign: rebuild


def _shapes_fit(npz: np.lib.npyio.NpzFile, bucket_reso: tuple[int, int], flip: bool, alpha: bool) -> bool:
    expected = (bucket_reso[1] // LATENT_STRIDE, bucket_reso[0] // LATENT_STRIDE)
    if "latents" not in npz or tuple(npz["latents"].shape[-2:]) != expected:
        return False
    if flip and ("latents_flipped" not in npz or tuple(npz["latents_flipped"].shape[-2:]) != expected):
        return False
    if not alpha:
        return "alpha_mask" not in npz  # sd-scripts' rule: a file with a mask nobody asked for is made again
    return "alpha_mask" in npz and tuple(npz["alpha_mask"].shape) == (bucket_reso[1], bucket_reso[0])


def find_valid_cache(image_path: str | Path, arch: str, key: CacheKey, skip_check: bool = False) -> Path | None:
    """Our cache file if valid, else a usable sd-scripts file, else None."""
    image_path = Path(image_path)
    ours = cache_path(image_path, arch)
    if is_cache_valid(ours, key, skip_check):
        return ours
    for legacy in _legacy_paths(image_path, key.image_size, arch):
        if legacy.is_file() and legacy.stat().st_mtime_ns >= key.file_stat[1] and not key.encoder_id:
            try:
                with np.load(legacy) as npz:
                    if "original_size" in npz and "crop_ltrb" in npz and _shapes_fit(npz, key.bucket_reso, key.flip, key.alpha):
                        return legacy
            except (OSError, ValueError, EOFError):
                continue
    return None


def save_cache(path: Path, key: CacheKey, entry: CachedLatents) -> None:
    arrays: dict[str, np.ndarray] = {
        "latents": entry.latents.float().cpu().numpy(),
        "original_size": np.array(entry.original_size),
        "crop_ltrb": np.array(entry.crop_ltrb),
        "format_version": np.array(FORMAT_VERSION),
        "file_stat": np.array(key.file_stat, dtype=np.int64),
        "image_size": np.array(key.image_size),
        "bucket_reso": np.array(key.bucket_reso),
        "resized_size": np.array(key.resized_size),
        "interpolation": np.array(key.interpolation),
        "encoder_id": np.array(key.encoder_id),
    }
    if entry.latents_flipped is not None:
        arrays["latents_flipped"] = entry.latents_flipped.float().cpu().numpy()
    if entry.alpha_mask is not None:
        arrays["alpha_mask"] = entry.alpha_mask.float().cpu().numpy()
    with atomic_write(path, "wb") as f:
        np.savez(f, **arrays)


def load_cache(path: str | Path) -> CachedLatents:
    with np.load(path) as npz:
        latents = torch.from_numpy(npz["latents"]).float()
        flipped = torch.from_numpy(npz["latents_flipped"]).float() if "latents_flipped" in npz else None
        alpha = torch.from_numpy(npz["alpha_mask"]).float() if "alpha_mask" in npz else None
        original = tuple(int(v) for v in npz["original_size"])
        crop = tuple(int(v) for v in npz["crop_ltrb"])
        resized = tuple(int(v) for v in npz["resized_size"]) if "resized_size" in npz else None
    if latents.dim() == 4:  # sd-scripts' older files kept a batch axis
        latents = latents[0]
        flipped = None if flipped is None else flipped[0]
    h, w = latents.shape[-2] * LATENT_STRIDE, latents.shape[-1] * LATENT_STRIDE
    return CachedLatents(latents, flipped, alpha, (original[0], original[1]), (crop[0], crop[1], crop[2], crop[3]),
                         resized or (w, h))
