"""`--preflight`: everything about the dataset a person should know before a long run, as a dict.

It never raises for dataset problems: structural errors ("no data found") and bad files become
entries of the report, so the trainer can print the whole picture as JSON and exit non-zero.
"""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from backend.data.dataset import TrainDataset
from backend.data.errors import DatasetError
from backend.data.images import probe_image
from backend.data.scan import FIX_BAD_IMAGE, ImageProblem, scan_dataset
from backend.data.specs import DatasetSpec
from backend.data.summary import bucket_table

# Upscaling beyond this factor makes blurry training targets; reported as a warning.
MAX_UPSCALE = 2.0


def check_images(paths: Sequence[str | Path], threads: int = 8) -> list[ImageProblem]:
    """Unreadable, truncated or empty images among `paths` (header-level checks, no full decode
    except for formats without a cheap integrity check)."""
    with ThreadPoolExecutor(max_workers=max(1, threads)) as pool:
        probes = list(pool.map(probe_image, [Path(p) for p in paths]))
    return [ImageProblem(str(p.path), p.problem or "unreadable", FIX_BAD_IMAGE) for p in probes if p.size is None]


def preflight_report(specs: Sequence[DatasetSpec], seed: int = 0) -> dict[str, Any]:
    warnings: list[str] = []
    report: dict[str, Any] = {"ok": True, "datasets": [], "problems": [], "errors": [], "warnings": warnings}
    total_batches = 0
    for spec in specs:
        try:
            scan = scan_dataset(spec, warn=warnings.append)
            dataset = TrainDataset(spec, seed=seed, scan=scan, skip_bad_images=True, warn=warnings.append)
        except DatasetError as exc:
            report["errors"].append(str(exc))
            continue
        report["problems"] += [p.as_dict() for p in dataset.problems]
        upscaled = [r for r in dataset.records if r.resized_size[0] / r.image_size[0] > MAX_UPSCALE]
        if upscaled:
            smallest = min(upscaled, key=lambda r: r.image_size[0] * r.image_size[1])
            warnings.append(
                f"{len(upscaled)} image(s) are enlarged more than {MAX_UPSCALE:g}x to fit their bucket and will look "
                f"blurry to the model (smallest: {smallest.path}, {smallest.image_size[0]}x{smallest.image_size[1]}); "
                "use larger images, a lower resolution, or --bucket_no_upscale"
            )
        total_batches += len(dataset)
        report["datasets"].append(_dataset_entry(dataset))
    report["num_batches_per_epoch"] = total_batches
    report["ok"] = not report["errors"] and not report["problems"]
    return report


def _dataset_entry(dataset: TrainDataset) -> dict[str, Any]:
    spec = dataset.spec
    subsets = []
    for scan in dataset.scan.subsets:
        subset = scan.subset
        entry: dict[str, Any] = {
            "image_dir": subset.image_dir,
            "is_reg": subset.is_reg,
            "num_repeats": subset.num_repeats,
            "images": len(scan.images),
        }
        if subset.metadata_file is not None:
            entry["metadata_file"] = subset.metadata_file
        else:
            entry.update(
                class_tokens=subset.class_tokens,
                caption_extension=subset.caption_extension,
                captions_found=len(scan.images) - len(scan.captions.missing),
                captions_missing=len(scan.captions.missing),
                caption_hint=scan.captions.hint(subset),
            )
        subsets.append(entry)
    return {
        "resolution": list(spec.resolution),
        "batch_size": spec.batch_size,
        "enable_bucket": spec.enable_bucket,
        "subsets": subsets,
        "num_train_images": dataset.num_train_images,
        "num_reg_images": dataset.num_reg_images,
        "buckets": bucket_table(dataset),
        "num_batches_per_epoch": len(dataset),
    }

