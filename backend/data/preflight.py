"""`--preflight`: everything about the dataset a person should know before a long run, as a dict.

It never raises for dataset problems: structural errors ("no data found") and bad files become
entries of the report, so the trainer can print the whole picture as JSON and exit non-zero.
`problems` are the files that stop the run; images the run trains without (--skip_unreadable_images)
are one warning instead, with the same words, and are not in the image and batch counts.
"""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from backend.data.dataset import TrainDataset
from backend.data.errors import DatasetError
from backend.data.images import probe_image
from backend.data.scan import (
    UNREADABLE_IMAGE,
    ImageProblem,
    scan_dataset,
    skipped_images_message,
    split_problems,
    unreadable_image,
)
from backend.data.specs import DatasetSpec, SubsetSpec
from backend.data.summary import bucket_table
from backend.messages import msg

# Upscaling beyond this factor makes blurry training targets; reported as a warning.
MAX_UPSCALE = 2.0


def check_images(paths: Sequence[str | Path], threads: int = 8) -> list[ImageProblem]:
    """Unreadable, truncated or empty images among `paths` (header-level checks, no full decode
    except for formats without a cheap integrity check)."""
    with ThreadPoolExecutor(max_workers=max(1, threads)) as pool:
        probes = list(pool.map(probe_image, [Path(p) for p in paths]))
    return [
        unreadable_image(p.path, p.problem or msg("dataset.image.unreadable", "cannot be read"))
        for p in probes
        if p.size is None
    ]


def preflight_report(specs: Sequence[DatasetSpec], seed: int = 0, processes: int = 1,
                     word: str | None = None) -> dict[str, Any]:
    """The datasets as a run would see them; batches are global ones (`processes` x batch size). `word`
    (Textual Inversion's new word): how many training images' captions hold it, as `captions_with_word`
    [with, of all]."""
    warnings: list[str] = []
    report: dict[str, Any] = {"ok": True, "datasets": [], "problems": [], "errors": [], "warnings": warnings}
    total_batches = 0
    for spec in specs:
        try:
            scan = scan_dataset(spec, warn=warnings.append)
            dataset = TrainDataset(spec, seed=seed, scan=scan, skip_bad_images=True, warn=warnings.append,
                                   processes=processes)
        except DatasetError as exc:
            report["errors"].append(str(exc))
            continue
        stopping, skipped = split_problems(dataset.problems, spec.skip_unreadable_images)
        report["problems"] += [p.as_dict() for p in stopping]
        if skipped:
            warnings.append(skipped_images_message(skipped, limit=len(skipped)))
        upscaled = [r for r in dataset.records if r.resized_size[0] / r.image_size[0] > MAX_UPSCALE]
        if upscaled:
            smallest = min(upscaled, key=lambda r: r.image_size[0] * r.image_size[1])
            warnings.append(msg(
                "dataset.image.upscaled",
                "{count} image(s) are enlarged more than {factor}x to fit their bucket and will look blurry to the "
                "model (smallest: {path}, {width}x{height}); use larger images, a lower resolution, or "
                "--bucket_no_upscale",
                count=len(upscaled), factor=f"{MAX_UPSCALE:g}", path=smallest.path,
                width=smallest.image_size[0], height=smallest.image_size[1],
            ))  # fmt: skip
        total_batches += len(dataset)
        report["datasets"].append(_dataset_entry(dataset))
        if word is not None:
            found = report.setdefault("captions_with_word", [0, 0])
            for record in dataset.records:
                if not record.is_reg:
                    found[0] += word in full_caption(record.caption, dataset.scan.subsets[record.subset_index].subset)
                    found[1] += 1
    report["num_batches_per_epoch"] = total_batches
    report["ok"] = not report["errors"] and not report["problems"]
    return report


def full_caption(caption: str, subset: SubsetSpec) -> str:
    """A caption with the subset's prefix and suffix, before any per-epoch change."""
    return " ".join(part for part in (subset.caption_prefix, caption, subset.caption_suffix) if part)


def _dataset_entry(dataset: TrainDataset) -> dict[str, Any]:
    spec = dataset.spec
    subsets = []
    for scan in dataset.scan.subsets:
        subset = scan.subset
        # Counts of the images that can be read: those the run trains on (or would, once fixed).
        unreadable = {p.path for p in scan.problems if p.kind == UNREADABLE_IMAGE}
        usable = len(scan.images) - len(unreadable)
        missing = sum(str(image) not in unreadable for image in scan.captions.missing)
        entry: dict[str, Any] = {
            "image_dir": subset.image_dir,
            "is_reg": subset.is_reg,
            "num_repeats": subset.num_repeats,
            "images": usable,
            "unreadable_images": len(unreadable),
        }
        if subset.metadata_file is not None:
            entry["metadata_file"] = subset.metadata_file
        else:
            entry.update(
                class_tokens=subset.class_tokens,
                caption_extension=subset.caption_extension,
                captions_found=usable - missing - len(scan.captions.unreadable),
                captions_missing=missing,
                captions_not_utf8=len(scan.captions.unreadable),
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

