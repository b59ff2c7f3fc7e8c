"""Summaries for people (bucket table in the log) and for LoRA metadata (ss_* keys)."""

from __future__ import annotations

import math
from typing import Any

from backend.data.captions import count_tags
from backend.data.dataset import DatasetGroup, TrainDataset


def bucket_table(dataset: TrainDataset) -> list[dict[str, Any]]:
    """One row per bucket: resolution [w, h], distinct images, images with repeats, batches."""
    rows = []
    for reso, items in dataset.buckets.items():
        rows.append(
            {
                "resolution": [reso[0], reso[1]],
                "images": len(set(items)),
                "count": len(items),
                "batches": math.ceil(len(items) / dataset.spec.batch_size),
            }
        )
    return rows


def format_bucket_table(dataset: TrainDataset) -> str:
    lines = [f"{'bucket (WxH)':>14} {'images':>7} {'with repeats':>13} {'batches':>8}"]
    for row in bucket_table(dataset):
        w, h = row["resolution"]
        lines.append(f"{f'{w}x{h}':>14} {row['images']:>7} {row['count']:>13} {row['batches']:>8}")
    errors = [abs(r.ar_error) for r in dataset.records]
    if dataset.spec.enable_bucket and errors:
        lines.append(f"mean aspect ratio error: {sum(errors) / len(errors):.4f}")
    return "\n".join(lines)


def bucket_info(dataset: TrainDataset) -> dict[str, Any] | None:
    """sd-scripts' ss_bucket_info value (None without enable_bucket, as there)."""
    if not dataset.spec.enable_bucket:
        return None
    errors = [abs(r.ar_error) for r in dataset.records]
    return {
        "buckets": {
            i: {"resolution": row["resolution"], "count": row["count"]} for i, row in enumerate(bucket_table(dataset))
        },
        "mean_img_ar_error": sum(errors) / len(errors) if errors else 0.0,
    }


def tag_frequency(group: DatasetGroup) -> dict[str, dict[str, int]]:
    """ss_tag_frequency: {subset folder name: {tag: count}} over the raw captions (no repeats)."""
    frequency: dict[str, dict[str, int]] = {}
    for dataset in group.datasets:
        for scan in dataset.scan.subsets:
            counts = frequency.setdefault(scan.subset.name, {})
            for tag, n in count_tags(scan.captions.captions).items():
                counts[tag] = counts.get(tag, 0) + n
    return frequency


def dataset_dirs(group: DatasetGroup, reg: bool = False) -> dict[str, dict[str, int]]:
    """ss_dataset_dirs (or ss_reg_dataset_dirs): {folder name: {"n_repeats", "img_count"}}."""
    return {
        scan.subset.name: {"n_repeats": scan.subset.num_repeats, "img_count": len(scan.images)}
        for dataset in group.datasets
        for scan in dataset.scan.subsets
        if scan.subset.is_reg == reg
    }
