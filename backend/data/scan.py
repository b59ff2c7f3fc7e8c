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

from backend.data.captions import CaptionScan, fix_caption_encoding, read_subset_captions
from backend.data.discovery import IMAGE_EXTENSIONS, describe_non_images, list_images
from backend.data.errors import DatasetError
from backend.data.images import ImageProbe, probe_image
from backend.data.info_cache import read_info_cache, write_info_cache
from backend.data.masks import MaskMatch, match_masks
from backend.data.specs import DatasetSpec, SubsetSpec
from backend.messages import msg

logger = logging.getLogger(__name__)

UNREADABLE_IMAGE = "unreadable_image"  # the one kind of problem --skip_unreadable_images lets a run train without
MASK = "mask"  # a loss mask of --conditioning_data_dir: missing, unmatched, unreadable or of another size


@dataclass(frozen=True)
class ImageProblem:
    path: str
    problem: str
    fix: str
    kind: str = "file"  # UNREADABLE_IMAGE, "caption", "metadata", "mask" or "bucket"

    def as_dict(self) -> dict[str, str]:
        return {"path": self.path, "problem": self.problem, "fix": self.fix, "kind": self.kind}


def unreadable_image(path: str | Path, problem: str) -> ImageProblem:
    fix = msg(
        "dataset.image.fix_unreadable",
        "delete it or save it again as PNG or JPEG in an image editor, or train without it: --skip_unreadable_images",
    )
    return ImageProblem(str(path), problem, fix, UNREADABLE_IMAGE)


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
    lines = [msg(
        "dataset.image.training_without",
        "training without {count} image file(s) that cannot be read (--skip_unreadable_images):",
        count=len(skipped),
    )]  # fmt: skip
    lines += [f"  {p.path}: {p.problem}" for p in skipped[:limit]]
    if len(skipped) > limit:
        lines.append("  " + more_in_preflight(len(skipped) - limit))
    return "\n".join(lines)


def more_in_preflight(count: int) -> str:
    """The last line of a list cut short."""
    return msg("dataset.list.more", "... and {count} more (run with --preflight for the full list)", count=count)


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
    mask_path: str | None = None  # its loss mask from the subset's conditioning_data_dir


@dataclass
class SubsetScan:
    subset: SubsetSpec
    images: list[Path]
    captions: CaptionScan
    problems: list[ImageProblem] = field(default_factory=list)
    metadata_buckets: dict[Path, tuple[int, int]] = field(default_factory=dict)  # image -> train_resolution
    masks: MaskMatch | None = None  # with conditioning_data_dir


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
            source_name = subset.metadata_file or subset.image_dir
            if subset.num_repeats < 1:
                warn(msg("dataset.subset.no_repeats", "ignoring subset {source}: num_repeats is less than 1",
                         source=source_name))  # fmt: skip
            else:
                warn(msg("dataset.subset.listed_twice", "ignoring subset {source}: it is listed twice in the dataset",
                         source=source_name))  # fmt: skip
            continue
        seen.add(source)
        if subset.metadata_file is not None:
            subset_scans.append(_scan_metadata_subset(subset))
        else:
            subset_scans.append(_scan_folder_subset(subset, warn))
    if not any(s.images for s in subset_scans) and not any(s.problems for s in subset_scans):
        raise DatasetError(_no_images_message(spec))

    caches = {index: read_info_cache(scan.subset.image_dir, warn) for index, scan in enumerate(subset_scans)
              if scan.subset.cache_info and scan.subset.metadata_file is None and scan.subset.image_dir}
    stats = {image: image.stat() for index in caches for image in subset_scans[index].images}
    # Sizes cache_info recorded for unchanged files; every other image (and every loss mask) is opened.
    probes = {image: ImageProbe(image, size) for index, cache in caches.items()
              for image in subset_scans[index].images if (size := cache.size_of(image, stats[image])) is not None}
    to_probe = [image for s in subset_scans for image in s.images if image not in probes]
    to_probe += [mask for s in subset_scans if s.masks for mask in s.masks.masks.values()]
    with ThreadPoolExecutor(max_workers=max(1, threads)) as pool:
        probes.update(zip(to_probe, pool.map(probe_image, to_probe), strict=True))

    records: list[ImageRecord] = []
    problems: list[ImageProblem] = []
    for index, scan in enumerate(subset_scans):
        problems.extend(scan.problems)
        for image, caption in zip(scan.images, scan.captions.captions, strict=True):
            probe = probes[image]
            if probe.size is None:
                problem = unreadable_image(image, probe.problem or msg("dataset.image.unreadable", "cannot be read"))
                scan.problems.append(problem)
                problems.append(problem)
                continue
            mask = scan.masks.masks.get(image) if scan.masks else None
            if scan.masks is not None and mask is None:
                continue  # cannot train without its mask: already a problem of the subset (missing, several)
            mask_problem = None if mask is None else _mask_problem(image, probe, probes[mask])
            if mask_problem is not None:
                scan.problems.append(mask_problem)
                problems.append(mask_problem)
                continue
            stat = stats.get(image) or image.stat()
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
                    mask_path=None if mask is None else str(mask),
                )
            )
    for scan in subset_scans:
        if scan.subset.metadata_file is None:
            _warn_missing_captions(scan, warn)
    for index, cache in caches.items():
        scan = subset_scans[index]
        rows = [(image, caption, size, stats[image])
                for image, caption in zip(scan.images, scan.captions.captions, strict=True)
                if (size := probes[image].size) is not None]
        write_info_cache(cache, rows, warn)
    return DatasetScan(subset_scans, records, problems)


def _scan_folder_subset(subset: SubsetSpec, warn: Callable[[str], None]) -> SubsetScan:
    assert subset.image_dir is not None
    directory = Path(subset.image_dir)
    if not directory.is_dir():
        raise DatasetError(msg(
            "dataset.image_dir.not_a_folder", "image_dir does not exist or is not a folder: {folder}", folder=directory
        ))  # fmt: skip
    images = list_images(directory)
    if not images:
        other = describe_non_images(directory)
        if other:
            warn(msg("dataset.image_dir.no_images_but", "no images in {folder} (it contains {files})",
                     folder=directory, files=other))  # fmt: skip
        else:
            warn(msg("dataset.image_dir.empty", "no images in {folder} (it is empty)", folder=directory))
    captions = read_subset_captions(subset, images)
    # Every caption file that is not UTF-8, at once (not the first of them per run).
    problems = [
        ImageProblem(
            str(path), msg("dataset.caption.problem_not_utf8", "caption file is {reason}", reason=reason),
            fix_caption_encoding(), "caption",
        )  # fmt: skip
        for path, reason in captions.unreadable
    ]
    masks = None
    if subset.conditioning_data_dir is not None:
        masks = match_masks(subset.conditioning_data_dir, images)
        problems += _unmatched_masks(masks, subset)
    return SubsetScan(subset, images, captions, problems, masks=masks)


def _unmatched_masks(masks: MaskMatch, subset: SubsetSpec) -> list[ImageProblem]:
    """Images without a mask, masks without an image, images with several masks (sd-scripts refuses the first
    two; the third it resolves by whichever file its glob lists first)."""
    folder = subset.conditioning_data_dir
    problems = [ImageProblem(
        str(image),
        msg("dataset.mask.missing", "no mask named {stem}.* in {folder} (--masked_loss needs one per image)",
            stem=image.stem, folder=folder),
        msg("dataset.mask.fix_missing", "add a mask image with the same name (white = learned, black = ignored), "
            "or move the image out of {image_dir}", image_dir=subset.image_dir),
        MASK,
    ) for image in masks.missing]  # fmt: skip
    problems += [ImageProblem(
        str(mask),
        msg("dataset.mask.extra", "mask without an image of the same name in {image_dir}", image_dir=subset.image_dir),
        msg("dataset.mask.fix_extra", "rename it to its image's name (only the extension may differ) or remove it"),
        MASK,
    ) for mask in masks.extra]  # fmt: skip
    problems += [ImageProblem(
        str(image),
        msg("dataset.mask.ambiguous", "several masks of the same name: {masks}",
            masks=", ".join(m.name for m in found)),
        msg("dataset.mask.fix_ambiguous", "keep one of them in {folder}", folder=folder),
        MASK,
    ) for image, found in masks.ambiguous.items()]  # fmt: skip
    return problems


def _mask_problem(image: Path, probe: ImageProbe, mask_probe: ImageProbe) -> ImageProblem | None:
    """Why `image` cannot train with its mask (unreadable, another size), or None."""
    if mask_probe.size is None:
        return ImageProblem(
            str(mask_probe.path), msg("dataset.mask.unreadable", "mask cannot be read: {problem}",
                                      problem=mask_probe.problem),
            msg("dataset.mask.fix_unreadable", "save it again as PNG (white = learned, black = ignored)"), MASK,
        )  # fmt: skip
    if probe.size is not None and mask_probe.size != probe.size:
        return ImageProblem(
            str(mask_probe.path),
            msg("dataset.mask.size", "mask is {mask_w}x{mask_h} but its image {image} is {image_w}x{image_h}",
                mask_w=mask_probe.size[0], mask_h=mask_probe.size[1], image=image,
                image_w=probe.size[0], image_h=probe.size[1]),
            msg("dataset.mask.fix_size", "save the mask at its image's size: it is resized and cropped with the "
                "image, pixel for pixel (sd-scripts refuses other sizes too)"),
            MASK,
        )  # fmt: skip
    return None


def _warn_missing_captions(scan: SubsetScan, warn: Callable[[str], None]) -> None:
    """Images without a caption file, and the caption_extension they may mean. Counted among the images that
    can be read: the others stop the run, or are left out with --skip_unreadable_images."""
    subset = scan.subset
    unreadable = {p.path for p in scan.problems if p.kind == UNREADABLE_IMAGE}
    images = [image for image in scan.images if str(image) not in unreadable]
    missing = [image for image in scan.captions.missing if str(image) not in unreadable]
    if not missing:
        return
    given = {"missing": len(missing), "images": len(images), "folder": subset.image_dir,
             "ext": subset.caption_extension}  # fmt: skip
    if subset.class_tokens:
        warn(msg(
            "dataset.caption.missing_class_tokens",
            "{missing} of {images} image(s) in {folder} have no '{ext}' caption file; they train with the class "
            "tokens {tokens}",
            tokens=repr(subset.class_tokens), **given,
        ))  # fmt: skip
    else:
        warn(msg(
            "dataset.caption.missing_empty",
            "{missing} of {images} image(s) in {folder} have no '{ext}' caption file; they train with an empty "
            "caption",
            **given,
        ))  # fmt: skip
    hint = scan.captions.hint(subset, unreadable)
    if hint:
        warn(hint)


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
            problems.append(ImageProblem(
                key,
                msg("dataset.metadata.no_image", "listed in {file} but no such image was found",
                    file=subset.metadata_file),
                msg("dataset.metadata.fix_no_image",
                    "set train_data_dir/image_dir to the folder holding the images, or remove the entry"),
                "metadata",
            ))  # fmt: skip
            continue
        if entry.get("train_resolution") is not None:
            bucket = _train_resolution(entry["train_resolution"])
            if bucket is None:
                problems.append(ImageProblem(
                    key,
                    msg("dataset.metadata.bad_train_resolution",
                        "train_resolution {value} in {file} is not [width, height] in positive multiples of 8",
                        value=repr(entry["train_resolution"]), file=subset.metadata_file),
                    msg("dataset.metadata.fix_train_resolution",
                        "run prepare_buckets_latents again, or remove train_resolution from the entry"),
                    "metadata",
                ))  # fmt: skip
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
        raise DatasetError(msg("dataset.metadata.not_found", "metadata file (in_json) not found: {path}", path=path))
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError:
        raise DatasetError(msg(
            "dataset.metadata.not_utf8", "metadata file {path} is not UTF-8 text: {fix}", path=path,
            fix=fix_caption_encoding(),
        )) from None  # fmt: skip
    try:
        if path.suffix.lower() == ".jsonl":
            rows = [json.loads(line) for line in text.splitlines() if line.strip()]
            return {row["image_path"]: row for row in rows}
        data = json.loads(text)
    except json.JSONDecodeError as exc:  # exc: the json module's English words, with line and column
        raise DatasetError(msg("dataset.metadata.invalid", "metadata file {path} is not valid: {error}",
                               path=path, error=exc)) from None  # fmt: skip
    except KeyError:
        raise DatasetError(msg(
            "dataset.metadata.no_image_path", 'metadata file {path} has a line without "image_path"', path=path
        )) from None  # fmt: skip
    if not isinstance(data, dict):
        raise DatasetError(msg(
            "dataset.metadata.not_an_object", "metadata file {path} must hold an object keyed by image path", path=path
        ))  # fmt: skip
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
    lines = [msg(
        "dataset.no_images", "No images found in any subset of the dataset (png, jpg, jpeg, webp and bmp are read):"
    )]  # fmt: skip
    for subset in spec.subsets:
        if subset.image_dir and Path(subset.image_dir).is_dir():
            other = describe_non_images(Path(subset.image_dir))
            if other:
                line = msg("dataset.no_images.contains", "{folder}: contains {files}", folder=subset.image_dir, files=other)
            else:
                line = msg("dataset.no_images.empty", "{folder}: empty", folder=subset.image_dir)
        else:
            line = msg("dataset.no_images.no_entries", "{source}: no usable entries",
                       source=subset.metadata_file or subset.image_dir)  # fmt: skip
        lines.append("  " + line)
    return "\n".join(lines)
