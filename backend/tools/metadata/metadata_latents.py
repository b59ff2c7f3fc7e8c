"""Buckets recorded in metadata and latents cached beside the images (prepare_buckets_latents).

Each image's bucket is chosen with the trainer's own BucketSelector and recorded as
`train_resolution: [w, h]` (multiples of 8, as sd-scripts writes). The latents are then made by
the trainer's own code path: the written metadata is read as a `--in_json` dataset (where
`train_resolution` fixes the bucket) and `cache_latents` writes `<stem>_sd.npz` (`_sdxl.npz`)
files, with the flipped latents inside the same file for --flip_aug. So a later training run with
`--in_json OUT.json --train_data_dir DIR --cache_latents_to_disk` and the same model finds every
file valid and encodes nothing.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

import torch

from backend.data.buckets import BucketSelector
from backend.data.dataset import DatasetGroup, TrainDataset
from backend.data.errors import DatasetError
from backend.data.images import probe_image
from backend.data.latent_cache import cache_latents
from backend.data.scan import DatasetScan, scan_dataset
from backend.data.specs import DatasetSpec
from backend.families.loaded import family as loaded_family
from backend.messages import msg
from backend.models.files import model_identity
from backend.tools.metadata.metadata_io import LATENT_STRIDE, Metadata, MetadataError

logger = logging.getLogger(__name__)


@dataclass
class BucketReport:
    bucketed: list[Path]
    skipped: list[str]  # "path: reason" for images that got no bucket (in the user's language)


def record_buckets(metadata: Metadata, keyed: dict[str, Path], spec: DatasetSpec) -> BucketReport:
    """Set `train_resolution` of every image's entry (creating entries as needed), in place."""
    try:
        selector = BucketSelector(spec, warn=logger.warning)
    except DatasetError as exc:
        raise MetadataError(str(exc)) from None
    report = BucketReport([], [])
    for key, image in keyed.items():
        probe = probe_image(image)
        if probe.size is None:
            report.skipped.append(f"{image}: {probe.problem or msg('tool.unreadable', 'unreadable')}")
            continue
        try:
            reso = selector.select(*probe.size).reso
        except DatasetError as exc:
            report.skipped.append(f"{image}: {exc}")
            continue
        reso = (reso[0] - reso[0] % LATENT_STRIDE, reso[1] - reso[1] % LATENT_STRIDE)
        metadata.setdefault(key, {})["train_resolution"] = [reso[0], reso[1]]
        report.bucketed.append(image)
    return report


def dataset_for(spec: DatasetSpec, images: list[Path]) -> TrainDataset:
    """The trainer's dataset of the written metadata, limited to `images` (the metadata may also list
    images of other folders, prepared by earlier runs)."""
    wanted = {os.path.abspath(p) for p in images}
    scan = scan_dataset(spec, warn=logger.warning)
    records = [r for r in scan.records if os.path.abspath(r.path) in wanted]
    if not records:
        raise MetadataError(msg("tool.metadata_read_back_failed",
                                "no image of the folder could be read back from the written metadata"))
    return TrainDataset(spec, scan=DatasetScan(scan.subsets, records, []), warn=logger.warning)


def encode_latents(dataset: TrainDataset, model: str, batch_size: int, dtype: torch.dtype,
                   tokenizer_cache_dir: str | None, family: str) -> int:
    """Write the latent cache files of `dataset`; returns how many images were encoded (not reused)."""
    spec = loaded_family(family).spec
    components = spec.load(model, dtype=dtype, tokenizer_cache_dir=tokenizer_cache_dir)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    vae = components.vae.to(device=device, dtype=dtype).eval()

    def encode(pixels: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return spec.encode_images(vae, pixels)

    def progress(done: int, total: int) -> None:
        if total:
            logger.info(msg("tool.latents_progress", "latents: {done}/{total} encoded", done=done, total=total))

    group = DatasetGroup([dataset])
    return cache_latents(group, encode, batch_size, to_disk=True, arch=loaded_family(family).latent_cache_arch,
                         encoder_id=model_identity(model), progress=progress)
