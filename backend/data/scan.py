"""From a DatasetSpec to a list of usable images with captions and sizes, plus what is wrong.

`scan_dataset` never raises for a single bad file: it collects unreadable images, captions that
are not UTF-8 and metadata entries without an image as `ImageProblem`s (each with what to do),
so that the preflight report can list all of them at once. It raises `DatasetError` only when
there is nothing to train on at all.

Images that cannot be read stop the run, unless `--skip_unreadable_images` says to train without
them; `split_problems` and `skipped_images_message` give both cases the same words ("cannot be
read", "train without"), in the trainer, its preflight and the dataset tools.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from backend.data.captions import FIX_CAPTION_ENCODING, CaptionScan, read_subset_captions
from backend.data.discovery import IMAGE_EXTENSIONS, describe_non_images, list_images
from backend.data.errors import DatasetError
from backend.data.images import probe_image
from backend.data.specs import DatasetSpec, SubsetSpec

logger = logging.getLogger(__name__)

SKIP_OPTION = "--skip_unreadable_images"
FIX_BAD_IMAGE = (
    f"delete it or save it again as PNG or JPEG in an image editor, or train without it: {SKIP_OPTION}"
)
UNREADABLE_IMAGE = "unreadable_image"  # the one kind of problem SKIP_OPTION lets a run train without


@dataclass(frozen=True)
class ImageProblem:
    path: str
    problem: str
    fix: str
    kind: str = "file"  # UNREADABLE_IMAGE, "caption", "metadata" or "bucket"

    def as_dict(self) -> dict[str, str]:
        return {"path": self.path, "problem": self.problem, "fix": self.fix, "kind": self.kind}


def unreadable_image(path: str | Path, problem: str) -> ImageProblem:
    return ImageProblem(str(path), problem, FIX_BAD_IMAGE, UNREADABLE_IMAGE)


def split_problems(
    problems: list[ImageProblem], skip_unreadable: bool
) -> tuple[list[ImageProblem], list[ImageProblem]]:
    """(problems that stop the run, images the run trains without): with `skip_unreadable` the images that
    cannot be read are left out; every other problem (a caption that is not UTF-8, ...) still stops it."""
    if not skip_unreadable:
        return list(problems), []
    skipped = [p for p in problems if p.kind == UNREADABLE_IMAGE]
    return [p for p in problems if p.kind != UNREADABLE_IMAGE], skipped


def skipped_images_message(skipped: list[ImageProblem], limit: int = 20) -> str:
    """The warning for the images a run trains without; the same words as the error without the option."""
    lines = [f"training without {len(skipped)} image file(s) that cannot be read ({SKIP_OPTION}):"]
    lines += [f"  {p.path}: {p.problem}" for p in skipped[:limit]]
    if len(skipped) > limit:
        lines.append(f"  ... and {len(skipped) - limit} more (run with --preflight for the full list)")
    return "\n".join(lines)


@dataclass
class ImageRecord:
    """One image of a dataset; repeats say how often it appears per epoch."""

    path: str
    subset_index: int
    caption: str  # raw caption (caption file, metadata, or class tokens)
    is_reg: bool
    num_repeats: int
    image_size: tuple[int, int]  # (width, height) as the model sees it (EXIF applied)
    file_stat: tuple[int, int]  # (size in bytes, mtime in ns): latent cache validity
    bucket_reso: tuple[int, int] = (0, 0)
    resized_size: tuple[int, int] = (0, 0)
    ar_error: float = 0.0
    metadata_bucket: tuple[int, int] | None = None  # `train_resolution` from fine-tuning metadata


@dataclass
class SubsetScan:
    subset: SubsetSpec
    images: list[Path]
    captions: CaptionScan
    problems: list[ImageProblem] = field(default_factory=list)
    metadata_buckets: dict[Path, tuple[int, int]] = field(default_factory=dict)  # image -> train_resolution


@dataclass
class DatasetScan:
    subsets: list[SubsetScan]
    records: list[ImageRecord]
    problems: list[ImageProblem]


def scan_dataset(spec: DatasetSpec, warn: Callable[[str], None] = logger.warning, threads: int = 8) -> DatasetScan:
    subset_scans: list[SubsetScan] = []
    seen: set[tuple[str | None, str | None]] = set()
    for subset in spec.subsets:
        source = (subset.image_dir, subset.metadata_file)
        if subset.num_repeats < 1 or source in seen:
            # As sd-scripts: a subset with 0 repeats is switched off; a repeated folder counts once.
            reason = "num_repeats is less than 1" if subset.num_repeats < 1 else "it is listed twice in the dataset"
            warn(f"ignoring subset {subset.metadata_file or subset.image_dir}: {reason}")
            continue
        seen.add(source)
        if subset.metadata_file is not None:
            subset_scans.append(_scan_metadata_subset(subset))
        else:
            subset_scans.append(_scan_folder_subset(subset, warn))
    if not any(s.images for s in subset_scans) and not any(s.problems for s in subset_scans):
        raise DatasetError(_no_images_message(spec))

    all_images = [image for s in subset_scans for image in s.images]
    with ThreadPoolExecutor(max_workers=max(1, threads)) as pool:
        probes = dict(zip(all_images, pool.map(probe_image, all_images), strict=True))

    records: list[ImageRecord] = []
    problems: list[ImageProblem] = []
    for index, scan in enumerate(subset_scans):
        problems.extend(scan.problems)
        for image, caption in zip(scan.images, scan.captions.captions, strict=True):
            probe = probes[image]
            if probe.size is None:
                problem = unreadable_image(image, probe.problem or "cannot be read")
                scan.problems.append(problem)
                problems.append(problem)
                continue
            stat = image.stat()
            records.append(
                ImageRecord(
                    path=str(image),
                    subset_index=index,
                    caption=caption,
                    is_reg=scan.subset.is_reg,
                    num_repeats=scan.subset.num_repeats,
                    image_size=probe.size,
                    file_stat=(stat.st_size, stat.st_mtime_ns),
                    metadata_bucket=scan.metadata_buckets.get(image),
                )
            )
    return DatasetScan(subset_scans, records, problems)


def _scan_folder_subset(subset: SubsetSpec, warn: Callable[[str], None]) -> SubsetScan:
    assert subset.image_dir is not None
    directory = Path(subset.image_dir)
    if not directory.is_dir():
        raise DatasetError(f"image_dir does not exist or is not a folder: {directory}")
    images = list_images(directory)
    if not images:
        other = describe_non_images(directory)
        warn(f"no images in {directory}" + (f" (it contains {other})" if other else " (it is empty)"))
    captions = read_subset_captions(subset, images)
    # Every caption file that is not UTF-8, at once (not the first of them per run).
    problems = [
        ImageProblem(str(path), f"caption file is {reason}", FIX_CAPTION_ENCODING, "caption")
        for path, reason in captions.unreadable
    ]
    if captions.missing:
        fallback = f"the class tokens {subset.class_tokens!r}" if subset.class_tokens else "an empty caption"
        warn(
            f"{len(captions.missing)} of {len(images)} image(s) in {directory} have no '{subset.caption_extension}' "
            f"caption file; they train with {fallback}"
        )
        hint = captions.hint(subset)
        if hint:
            warn(hint)
    return SubsetScan(subset, images, captions, problems)


def _scan_metadata_subset(subset: SubsetSpec) -> SubsetScan:
    """Fine-tuning metadata (sd-scripts' in_json): {image key: {"caption": ..., "tags": ...}}."""
    assert subset.metadata_file is not None
    metadata = _read_metadata(Path(subset.metadata_file))
    images: list[Path] = []
    captions: list[str] = []
    problems: list[ImageProblem] = []
    buckets: dict[Path, tuple[int, int]] = {}
    for key in sorted(metadata):
        entry = metadata[key] or {}
        path = _resolve_image(key, subset.image_dir)
        if path is None:
            problems.append(
                ImageProblem(key, f"listed in {subset.metadata_file} but no such image was found",
                             "set train_data_dir/image_dir to the folder holding the images, or remove the entry",
                             "metadata")
            )
            continue
        if entry.get("train_resolution") is not None:
            bucket = _train_resolution(entry["train_resolution"])
            if bucket is None:
                problems.append(
                    ImageProblem(key, f"train_resolution {entry['train_resolution']!r} in {subset.metadata_file} "
                                 "is not [width, height] in positive multiples of 8",
                                 "run prepare_buckets_latents again, or remove train_resolution from the entry",
                                 "metadata")
                )
                continue
            buckets[path] = bucket
        caption = entry.get("caption") or ""
        tags = entry.get("tags") or ""
        if tags:
            caption = caption + subset.caption_separator + tags if caption else tags
        images.append(path)
        captions.append(caption)
    return SubsetScan(subset, images, CaptionScan(captions), problems, buckets)


def _train_resolution(value: object) -> tuple[int, int] | None:
    """prepare_buckets_latents' bucket ([w, h], multiples of 8: one latent pixel is 8 image pixels)."""
    if not isinstance(value, (list, tuple)) or len(value) != 2:
        return None
    if not all(isinstance(v, int) and not isinstance(v, bool) and v > 0 and v % 8 == 0 for v in value):
        return None
    return value[0], value[1]


def _read_metadata(path: Path) -> dict[str, dict]:
    if not path.is_file():
        raise DatasetError(f"metadata file (in_json) not found: {path}")
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError:
        raise DatasetError(f"metadata file {path} is not UTF-8 text: {FIX_CAPTION_ENCODING}") from None
    try:
        if path.suffix.lower() == ".jsonl":
            rows = [json.loads(line) for line in text.splitlines() if line.strip()]
            return {row["image_path"]: row for row in rows}
        data = json.loads(text)
    except (json.JSONDecodeError, KeyError) as exc:
        raise DatasetError(f"metadata file {path} is not valid: {exc}") from None
    if not isinstance(data, dict):
        raise DatasetError(f"metadata file {path} must hold an object keyed by image path")
    return data


def _resolve_image(key: str, image_dir: str | None) -> Path | None:
    base = Path(key) if os.path.isabs(key) or image_dir is None else Path(image_dir) / key
    if base.is_file():
        return base
    # Older metadata stores keys without extension.
    for ext in IMAGE_EXTENSIONS + tuple(e.upper() for e in IMAGE_EXTENSIONS):
        candidate = base.with_name(base.name + ext)
        if candidate.is_file():
            return candidate
    return None


def _no_images_message(spec: DatasetSpec) -> str:
    lines = ["No images found in any subset of the dataset (png, jpg, jpeg, webp and bmp are read):"]
    for subset in spec.subsets:
        if subset.image_dir and Path(subset.image_dir).is_dir():
            other = describe_non_images(Path(subset.image_dir))
            lines.append(f"  {subset.image_dir}: " + (f"contains {other}" if other else "empty"))
        else:
            lines.append(f"  {subset.metadata_file or subset.image_dir}: no usable entries")
    return "\n".join(lines)
