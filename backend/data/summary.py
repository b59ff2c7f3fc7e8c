"""Summaries for people (bucket table in the log) and for trained files' metadata (ss_* keys).

The metadata describes the datasets as sd-scripts' train_network.py does (commit 48d368fa, lines
1067-1198), in one of two shapes:

- without `--dataset_config` (the `<repeats>_<name>` folder convention or `--in_json`): the one
  dataset's settings as flat keys (`ss_resolution`, `ss_enable_bucket`, `ss_bucket_info`, ...);
- with `--dataset_config`: `ss_datasets`, a JSON list with one object per dataset and its subsets,
  plus the tag frequencies and folders of all datasets merged.

Values are what sd-scripts writes: `str()` of plain values, JSON for nested ones. The one
difference: counts are of the images actually trained on (unreadable images and those held out for
validation are left out), where sd-scripts counts files it has not opened yet.
"""

from __future__ import annotations

import json
import math
import unicodedata
from pathlib import Path
from typing import Any

from backend.data.buckets import bucket_reso_range
from backend.data.captions import count_tags
from backend.data.dataset import DatasetGroup, TrainDataset
from backend.data.scan import ImageRecord, SubsetScan, _read_metadata
from backend.data.split import held_out_paths
from backend.messages import msg

# The ss_* keys of each shape (train_network.py:1070-1159 and 1160-1198).
FLAT_DATASET_KEYS = (
    "ss_batch_size_per_device", "ss_total_batch_size", "ss_resolution", "ss_color_aug", "ss_flip_aug",
    "ss_random_crop", "ss_shuffle_caption", "ss_enable_bucket", "ss_bucket_no_upscale", "ss_min_bucket_reso",
    "ss_max_bucket_reso", "ss_keep_tokens", "ss_dataset_dirs", "ss_reg_dataset_dirs", "ss_tag_frequency",
    "ss_bucket_info",
)  # fmt: skip
CONFIG_DATASET_KEYS = ("ss_datasets", "ss_tag_frequency", "ss_dataset_dirs")


def bucket_table(dataset: TrainDataset) -> list[dict[str, Any]]:
    """One row per bucket: resolution [w, h], distinct images, images with repeats, global batches."""
    rows = []
    for reso, items in dataset.buckets.items():
        rows.append(
            {
                "resolution": [reso[0], reso[1]],
                "images": len(set(items)),
                "count": len(items),
                "batches": math.ceil(len(items) / dataset.batch_size),  # global batches: optimizer steps
            }
        )
    return rows


def format_bucket_table(dataset: TrainDataset) -> str:
    headings = [
        msg("dataset.buckets.bucket", "bucket (WxH)"),
        msg("dataset.buckets.images", "images"),
        msg("dataset.buckets.with_repeats", "with repeats"),
        msg("dataset.buckets.batches", "batches"),
    ]
    rows = [[f"{r['resolution'][0]}x{r['resolution'][1]}", r["images"], r["count"], r["batches"]]
            for r in bucket_table(dataset)]  # fmt: skip
    widths = [max(least, _width(heading)) for least, heading in zip((14, 7, 13, 8), headings, strict=True)]
    lines = [" ".join(_right(str(cell), width) for cell, width in zip(row, widths, strict=True))
             for row in [headings, *rows]]  # fmt: skip
    errors = [abs(r.ar_error) for r in dataset.records]
    if dataset.spec.enable_bucket and errors:
        lines.append(msg(
            "dataset.buckets.mean_error", "mean aspect ratio error: {error}", error=f"{sum(errors) / len(errors):.4f}"
        ))  # fmt: skip
    return "\n".join(lines)


def _width(text: str) -> int:
    """Columns `text` takes in a terminal: East Asian wide characters take two."""
    return sum(2 if unicodedata.east_asian_width(ch) in "WF" else 1 for ch in text)


def _right(text: str, width: int) -> str:
    return " " * max(0, width - _width(text)) + text


def bucket_info(dataset: TrainDataset) -> dict[str, Any] | None:
    """sd-scripts' bucket_info: {"buckets": {index: {"resolution": [w, h], "count": images with
    repeats}}, "mean_img_ar_error": mean |aspect ratio error|}, buckets in resolution order
    (A1111 shows a LoRA's resolutions from it). None with one fixed bucket, as there: without
    enable_bucket, unless fine-tuning metadata recorded buckets (prepare_buckets_latents), which win."""
    if not dataset.spec.enable_bucket and not any(r.metadata_bucket for r in dataset.records):
        return None
    errors = [abs(r.ar_error) for r in dataset.records]
    return {
        "buckets": {
            i: {"resolution": row["resolution"], "count": row["count"]} for i, row in enumerate(bucket_table(dataset))
        },
        "mean_img_ar_error": sum(errors) / len(errors) if errors else 0.0,
    }


def _trained_records(dataset: TrainDataset) -> list[ImageRecord]:
    """The usable images of the dataset's scan that are trained on (not held out for validation)."""
    held_out = held_out_paths(dataset.scan.records, dataset.spec.validation_split, dataset.validation_seed)
    return [r for r in dataset.scan.records if r.path not in held_out]


def _used_subsets(dataset: TrainDataset) -> list[tuple[SubsetScan, int]]:
    """(subset scan, images trained on) for the subsets a run uses; folders without an image are
    left out, as sd-scripts leaves them out."""
    counts = [0] * len(dataset.scan.subsets)
    for record in _trained_records(dataset):
        counts[record.subset_index] += 1
    return [(scan, count) for scan, count in zip(dataset.scan.subsets, counts, strict=True)
            if count or scan.subset.metadata_file is not None]


def _subset_tags(dataset: TrainDataset, scan: SubsetScan) -> list[str]:
    """The captions sd-scripts counts tags of: a folder's captions (class tokens where there is no
    caption file); for fine-tuning metadata only the entries' "tags" (not their captions)."""
    subset = scan.subset
    if subset.metadata_file is None:
        index = next(i for i, s in enumerate(dataset.scan.subsets) if s is scan)
        return [r.caption for r in _trained_records(dataset) if r.subset_index == index]
    tags = [str(entry.get("tags") or "") for entry in _read_metadata(Path(subset.metadata_file)).values()]
    if subset.enable_wildcard:
        tags = [t.replace("\n", subset.caption_separator) for t in tags]
    return [t for t in tags if t]


def dataset_tag_frequency(dataset: TrainDataset) -> dict[str, dict[str, int]]:
    """{subset folder (or metadata file) name: {tag: count}}; repeats not counted."""
    frequency: dict[str, dict[str, int]] = {}
    for scan, _count in _used_subsets(dataset):
        counts = frequency.setdefault(scan.subset.name, {})
        for tag, n in count_tags(_subset_tags(dataset, scan)).items():
            counts[tag] = counts.get(tag, 0) + n
    return frequency


def tag_frequency(group: DatasetGroup) -> dict[str, dict[str, int]]:
    """ss_tag_frequency of all datasets: a folder used by several datasets is counted once (the first)."""
    merged: dict[str, dict[str, int]] = {}
    for dataset in group.datasets:
        for name, counts in dataset_tag_frequency(dataset).items():
            merged.setdefault(name, counts)
    return merged


def dataset_dirs(group: DatasetGroup, reg: bool = False) -> dict[str, dict[str, int]]:
    """ss_dataset_dirs (or ss_reg_dataset_dirs) without --dataset_config: {folder or metadata file
    name: {"n_repeats", "img_count"}}."""
    return {
        scan.subset.name: {"n_repeats": scan.subset.num_repeats, "img_count": count}
        for dataset in group.datasets
        for scan, count in _used_subsets(dataset)
        if scan.subset.is_reg == reg
    }


def _config_dataset_dirs(group: DatasetGroup) -> dict[str, dict[str, int]]:
    """ss_dataset_dirs with --dataset_config: training subsets of every dataset; a name seen before
    gets " (2)", " (3)", ... (the same folder may serve several datasets)."""
    dirs: dict[str, dict[str, int]] = {}
    for dataset in group.datasets:
        for scan, count in _used_subsets(dataset):
            if scan.subset.is_reg:
                continue
            name, n = scan.subset.name, 2
            while name in dirs:
                name, n = f"{scan.subset.name} ({n})", n + 1
            dirs[name] = {"n_repeats": scan.subset.num_repeats, "img_count": count}
    return dirs


def _is_dreambooth(dataset: TrainDataset) -> bool:
    return not all(s.metadata_file for s in dataset.subsets)


def _subset_record(scan: SubsetScan, count: int, dreambooth: bool) -> dict[str, Any]:
    s = scan.subset
    record: dict[str, Any] = {
        "img_count": count,
        "num_repeats": s.num_repeats,
        "color_aug": s.color_aug,
        "flip_aug": s.flip_aug,
        "random_crop": s.random_crop,
        "shuffle_caption": s.shuffle_caption,
        "keep_tokens": s.keep_tokens,
        "keep_tokens_separator": s.keep_tokens_separator,
        "secondary_separator": s.secondary_separator,
        "enable_wildcard": s.enable_wildcard,
        "caption_prefix": s.caption_prefix,
        "caption_suffix": s.caption_suffix,
        "resize_interpolation": s.resize_interpolation,
    }
    if s.image_dir:
        record["image_dir"] = Path(s.image_dir).name
    if dreambooth:
        record["class_tokens"] = s.class_tokens
        record["is_reg"] = s.is_reg
    else:
        record["metadata_file"] = Path(s.metadata_file or "").name
    return record


def dataset_record(dataset: TrainDataset) -> dict[str, Any]:
    """One entry of ss_datasets: the dataset's settings, tags, buckets and subsets."""
    spec = dataset.spec
    min_reso, max_reso = bucket_reso_range(spec)
    dreambooth = _is_dreambooth(dataset)
    return {
        "is_dreambooth": dreambooth,
        "batch_size_per_device": spec.batch_size,
        "num_train_images": dataset.num_train_images,
        "num_reg_images": dataset.num_reg_images,
        "resolution": list(spec.resolution),
        "enable_bucket": spec.enable_bucket,
        "min_bucket_reso": min_reso,
        "max_bucket_reso": max_reso,
        "tag_frequency": dataset_tag_frequency(dataset),
        "bucket_info": bucket_info(dataset),
        "resize_interpolation": spec.resize_interpolation,
        "subsets": [_subset_record(scan, count, dreambooth) for scan, count in _used_subsets(dataset)],
    }


def dataset_metadata(group: DatasetGroup, *, dataset_config: bool, total_batch_size: int) -> dict[str, str]:
    """The ss_* keys describing the datasets, in the shape sd-scripts uses for the run's mode."""
    if dataset_config:
        return {
            "ss_datasets": json.dumps([dataset_record(d) for d in group.datasets]),
            "ss_tag_frequency": json.dumps(tag_frequency(group)),
            "ss_dataset_dirs": json.dumps(_config_dataset_dirs(group)),
        }
    dataset = group.datasets[0]  # the folder convention and --in_json make one dataset
    spec, first = dataset.spec, dataset.subsets[0]
    min_reso, max_reso = bucket_reso_range(spec)
    values: dict[str, Any] = {
        "ss_batch_size_per_device": spec.batch_size,
        "ss_total_batch_size": total_batch_size,
        "ss_resolution": tuple(spec.resolution),
        "ss_color_aug": first.color_aug,
        "ss_flip_aug": first.flip_aug,
        "ss_random_crop": first.random_crop,
        "ss_shuffle_caption": first.shuffle_caption,
        "ss_enable_bucket": spec.enable_bucket,
        "ss_bucket_no_upscale": spec.enable_bucket and spec.bucket_no_upscale,
        "ss_min_bucket_reso": min_reso,
        "ss_max_bucket_reso": max_reso,
        "ss_keep_tokens": first.keep_tokens,
        "ss_dataset_dirs": json.dumps(dataset_dirs(group)),
        "ss_reg_dataset_dirs": json.dumps(dataset_dirs(group, reg=True)),
        "ss_tag_frequency": json.dumps(dataset_tag_frequency(dataset)),
        "ss_bucket_info": json.dumps(bucket_info(dataset)),
    }
    return {key: str(value) for key, value in values.items()}
