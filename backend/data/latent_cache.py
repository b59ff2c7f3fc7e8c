"""Encoding every image once with the VAE (`--cache_latents`, `--cache_latents_to_disk`).

The VAE belongs to backend/models, so encoding is a callable: `encode_fn(pixels) -> latents`,
pixels (N, 3, H, W) float32 in [-1, 1] on the CPU, latents (N, C, H/8, W/8). Images are encoded
in batches of `vae_batch_size` that share a bucket (one tensor shape per batch). With to_disk,
valid cache files are reused and only missing or stale ones are encoded.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor

import torch

from backend.data.dataset import DatasetGroup, TrainDataset
from backend.data.errors import DatasetError
from backend.data.images import FittedImage, fit_to_bucket, load_image, mask_to_tensor, to_tensor
from backend.data.latent_files import CachedLatents, CacheKey, cache_path, find_valid_cache, save_cache
from backend.data.specs import DatasetSpec
from backend.messages import msg

logger = logging.getLogger(__name__)

EncodeFn = Callable[[torch.Tensor], torch.Tensor]
ProgressFn = Callable[[int, int], None]  # (images done, images to encode)
FreeFn = Callable[[], None]  # gives the encoding device's cached memory back (torch.cuda.empty_cache)


def uncacheable_problem(specs: Iterable[DatasetSpec]) -> str | None:
    """sd-scripts' rule, and why: cached latents would freeze one colour/crop augmentation for all epochs.
    A face crop (without buckets) draws its scale and place per sample too; sd-scripts would cache the image
    without it and silently never crop, so it is refused here as well."""
    offending = []
    for spec in specs:
        for s in spec.subsets:
            settings = [n for n in ("color_aug", "random_crop") if getattr(s, n)]
            if s.face_crop_aug_range and not spec.enable_bucket:
                settings.append("face_crop_aug_range")
            if settings:
                offending.append(f"{s.name} ({', '.join(settings)})")
    if not offending:
        return None
    return msg(
        "dataset.latents.augmentation_per_sample",
        "cache_latents / cache_latents_to_disk cannot be used with color_aug, random_crop or face_crop_aug_range "
        "(without buckets), because the cached latents would repeat one augmentation or crop every epoch; "
        "affected subsets: {subsets}. Turn those off, or turn off latent caching (flip_aug is fine: both sides "
        "are cached)",
        subsets=", ".join(offending),
    )  # fmt: skip


def check_cacheable(group: DatasetGroup) -> None:
    problem = uncacheable_problem(d.spec for d in group.datasets)
    if problem:
        raise DatasetError(problem)


def cache_latents(
    group: DatasetGroup,
    encode_fn: EncodeFn,
    vae_batch_size: int = 1,
    to_disk: bool = False,
    arch: str = "sd",
    encoder_id: str = "",
    skip_check: bool = False,
    progress: ProgressFn | None = None,
    free_memory: FreeFn | None = None,
    highvram: bool = False,
) -> int:
    """Fill every dataset's latent cache; returns how many images were encoded (not reused).

    `arch` names the cache file (`<stem>_sd.npz`, `<stem>_sdxl.npz`); `encoder_id` (e.g. the VAE
    file's name or hash) makes caches from another VAE count as stale. `free_memory` runs after every
    batch, as sd-scripts clears the device's cache for small GPUs; with `highvram` (its --highvram) only
    when the next batch has another size.
    """
    check_cacheable(group)
    todo: list[tuple[TrainDataset, int, CacheKey]] = []
    for dataset in group.datasets:
        dataset.latents.clear()
        dataset.latent_files.clear()
        for index, record in enumerate(dataset.records):
            subset = dataset.subsets[record.subset_index]
            key = CacheKey(
                file_stat=record.file_stat,
                image_size=record.image_size,
                bucket_reso=record.bucket_reso,
                resized_size=record.resized_size,
                interpolation=subset.resize_interpolation or dataset.spec.resize_interpolation or "",
                flip=subset.flip_aug,
                alpha=subset.alpha_mask,
                encoder_id=encoder_id,
            )
            found = find_valid_cache(record.path, arch, key, skip_check) if to_disk else None
            if found is not None:
                dataset.latent_files[index] = str(found)
            else:
                todo.append((dataset, index, key))

    # Same bucket together, then in chunks of vae_batch_size.
    todo.sort(key=lambda item: (item[2].bucket_reso, item[0].records[item[1]].path))
    batches: list[list[tuple[TrainDataset, int, CacheKey]]] = []
    for item in todo:
        if batches and len(batches[-1]) < vae_batch_size and batches[-1][0][2].bucket_reso == item[2].bucket_reso:
            batches[-1].append(item)
        else:
            batches.append([item])

    done = 0
    if progress:
        progress(0, len(todo))
    with ThreadPoolExecutor(max_workers=4) as pool:
        for number, batch in enumerate(batches):
            if free_memory and highvram and number and batch[0][2].bucket_reso != batches[number - 1][0][2].bucket_reso:
                free_memory()
            fitted = list(pool.map(_load_for_cache, batch))
            pixels = torch.stack([to_tensor(f.rgb) for f in fitted])
            latents = _encode(encode_fn, pixels)
            flipped = _encode(encode_fn, torch.flip(pixels, dims=[3])) if any(k.flip for _, _, k in batch) else None
            for i, ((dataset, index, key), image) in enumerate(zip(batch, fitted, strict=True)):
                record = dataset.records[index]
                entry = CachedLatents(
                    latents=latents[i],
                    latents_flipped=flipped[i] if flipped is not None and key.flip else None,
                    alpha_mask=mask_to_tensor(image.alpha) if image.alpha is not None else None,
                    original_size=record.image_size,
                    crop_ltrb=image.crop_ltrb,
                    resized_size=record.resized_size,
                )
                if to_disk:
                    path = cache_path(record.path, arch)
                    save_cache(path, key, entry)
                    dataset.latent_files[index] = str(path)
                else:
                    dataset.latents[index] = entry
            done += len(batch)
            if free_memory and not highvram:
                free_memory()
            if progress:
                progress(done, len(todo))
    total = sum(len(d.records) for d in group.datasets)
    logger.info("latents: %d encoded, %d reused from cache files", len(todo), total - len(todo))
    return len(todo)


def _load_for_cache(item: tuple[TrainDataset, int, CacheKey]) -> FittedImage:
    dataset, index, key = item
    record = dataset.records[index]
    image = load_image(record.path, with_alpha=key.alpha)
    if (image.rgb.shape[1], image.rgb.shape[0]) != record.image_size:
        raise DatasetError(msg(
            "dataset.image.changed", "{path} changed since the dataset was scanned: restart the run", path=record.path
        ))  # fmt: skip
    return fit_to_bucket(image, key.bucket_reso, key.resized_size, False, None, key.interpolation or None)


def _encode(encode_fn: EncodeFn, pixels: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        latents = encode_fn(pixels)
    expected = (pixels.shape[0], pixels.shape[2] // 8, pixels.shape[3] // 8)
    if latents.dim() != 4 or (latents.shape[0], *latents.shape[2:]) != expected:
        raise DatasetError(f"encode_fn returned latents of shape {tuple(latents.shape)} for pixels {tuple(pixels.shape)}")
    return latents.float().cpu()

