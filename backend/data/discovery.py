"""Finding images: the sd-scripts folder convention and plain image listing.

`--train_data_dir` must be the *parent* of folders named `<repeats>_<class tokens>` (e.g.
`10_sks dog`); `--reg_data_dir` follows the same convention for regularization images. The most
common beginner mistake is pointing train_data_dir at the image folder itself, so the "no data"
error looks at what is there (loose images, folders without a number, unsupported files) and
says exactly what to move or rename.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from backend.data.errors import DatasetError
from backend.data.specs import SubsetSpec
from backend.messages import msg

logger = logging.getLogger(__name__)

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".webp", ".bmp")
# Extensions people commonly have that we do not read; named in the "no images" error.
_UNSUPPORTED_IMAGE_EXTENSIONS = (".gif", ".tif", ".tiff", ".avif", ".heic", ".jxl", ".psd")


def is_image_file(path: Path) -> bool:
    return path.is_file() and path.suffix.lower() in IMAGE_EXTENSIONS


def list_images(directory: str | Path) -> list[Path]:
    """Images directly in `directory` (not recursive, like sd-scripts), sorted by name."""
    directory = Path(directory)
    if not directory.is_dir():
        return []
    return sorted((p for p in directory.iterdir() if is_image_file(p)), key=lambda p: p.name)


def parse_folder_name(name: str) -> tuple[int, str] | None:
    """'10_sks dog' -> (10, 'sks dog'); None when the part before the first '_' is not a number."""
    head, _, tokens = name.partition("_")
    try:
        return int(head), tokens
    except ValueError:
        return None


@dataclass
class FolderScan:
    """What one train/reg root holds, including what we will not use and why."""

    root: Path
    subsets: list[tuple[Path, int, str]] = field(default_factory=list)  # (folder, repeats, tokens)
    skipped: list[str] = field(default_factory=list)  # folder names without a number prefix
    zero_repeats: list[str] = field(default_factory=list)
    loose_images: int = 0


def scan_root(root: str | Path) -> FolderScan:
    root = Path(root)
    scan = FolderScan(root)
    for child in sorted(root.iterdir(), key=lambda p: p.name):
        if child.is_dir():
            parsed = parse_folder_name(child.name)
            if parsed is None:
                scan.skipped.append(child.name)
            elif parsed[0] < 1:
                scan.zero_repeats.append(child.name)
            else:
                scan.subsets.append((child, parsed[0], parsed[1]))
        elif is_image_file(child):
            scan.loose_images += 1
    return scan


def subsets_from_folders(
    train_data_dir: str | Path,
    reg_data_dir: str | Path | None = None,
    warn: Callable[[str], None] = logger.warning,
    conditioning_data_dir: str | Path | None = None,
    **subset_settings: object,
) -> list[SubsetSpec]:
    """SubsetSpecs for the folder convention; `subset_settings` are SubsetSpec fields shared by all.

    `conditioning_data_dir` mirrors train_data_dir: the masks of `train/10_x/a.png` are in
    `<conditioning_data_dir>/10_x/`; regularization images have none."""
    subsets: list[SubsetSpec] = []
    for root, is_reg in ((train_data_dir, False), (reg_data_dir, True)):
        if root is None:
            continue
        flag = "reg_data_dir" if is_reg else "train_data_dir"
        scan = _scan_checked(root, flag)
        if scan.skipped:
            warn(msg(
                "dataset.folders.no_repeat_prefix",
                "{flag}: ignoring {count} folder(s) without a repeat count prefix: {names}; rename them like "
                "'10_{first}' to train on them",
                flag=flag, count=len(scan.skipped), names=_names(scan.skipped), first=scan.skipped[0],
            ))  # fmt: skip
        if scan.zero_repeats:
            warn(msg("dataset.folders.zero_repeats", "{flag}: ignoring folder(s) with 0 repeats: {names}",
                     flag=flag, names=_names(scan.zero_repeats)))  # fmt: skip
        if scan.loose_images and scan.subsets:
            warn(msg(
                "dataset.folders.loose_images",
                "{flag}: {count} image(s) directly in {folder} are not used; only images in '<repeats>_<tokens>' "
                "subfolders are",
                flag=flag, count=scan.loose_images, folder=root,
            ))  # fmt: skip
        if not scan.subsets:
            if is_reg:
                warn(msg(
                    "dataset.folders.no_reg_folders",
                    "reg_data_dir {folder} has no '<repeats>_<tokens>' folders; training without regularization",
                    folder=root,
                ))  # fmt: skip
                continue
            raise DatasetError(_no_data_message(scan, flag))
        for folder, repeats, tokens in scan.subsets:
            masks = None if is_reg or conditioning_data_dir is None else str(Path(conditioning_data_dir) / folder.name)
            subsets.append(
                SubsetSpec(
                    image_dir=str(folder), num_repeats=repeats, class_tokens=tokens, is_reg=is_reg,
                    conditioning_data_dir=masks, **subset_settings,
                )
            )
    return subsets


def _scan_checked(root: str | Path, flag: str) -> FolderScan:
    path = Path(root)
    if not path.exists():
        raise DatasetError(msg("dataset.folders.not_found", "{flag} does not exist: {path}", flag=flag, path=path))
    if not path.is_dir():
        raise DatasetError(msg(
            "dataset.folders.is_a_file", "{flag} must be a folder, but {path} is a file", flag=flag, path=path
        ))  # fmt: skip
    return scan_root(path)


def _no_data_message(scan: FolderScan, flag: str) -> str:
    """What the folder should hold, then each thing found instead (one whole clause each)."""
    head = msg(
        "dataset.folders.no_data",
        "No data found in {flag} {folder}: {flag} must be the parent of folders named like '10_name' (10 = repeats "
        "per epoch, 'name' = class tokens used when an image has no caption)",
        flag=flag, folder=scan.root,
    )  # fmt: skip
    found: list[str] = []
    if scan.loose_images:
        found.append(msg(
            "dataset.folders.found_loose_images",
            "found {count} image(s) directly in it: move them into a subfolder such as '{example}' and keep {flag} "
            "pointing at {folder}",
            count=scan.loose_images, example=scan.root / "10_<token>", flag=flag, folder=scan.root,
        ))  # fmt: skip
    if scan.skipped:
        found.append(msg(
            "dataset.folders.found_no_repeat_prefix",
            "found folder(s) without a repeat count: {names}: rename them like '10_{first}'",
            names=_names(scan.skipped), first=scan.skipped[0],
        ))  # fmt: skip
    if scan.zero_repeats:
        found.append(msg("dataset.folders.found_zero_repeats", "found folder(s) with 0 repeats: {names}",
                         names=_names(scan.zero_repeats)))  # fmt: skip
    if not found:
        other = describe_non_images(scan.root)
        if other:
            found.append(msg("dataset.folders.found_other_files", "it contains {files}", files=other))
        else:
            found.append(msg("dataset.folders.found_nothing", "it is empty"))
    return "; ".join([head, *found])


def describe_non_images(directory: Path) -> str:
    """'3 .gif file(s), 2 .txt file(s)' for the files in `directory` that are not images we read."""
    counts = Counter(p.suffix.lower() for p in directory.iterdir() if p.is_file())
    parts = [
        msg("dataset.files.count", "{count} {ext} file(s)", count=n, ext=ext)
        if ext
        else msg("dataset.files.count_no_extension", "{count} file(s) without extension", count=n)
        for ext, n in sorted(counts.items())
    ]
    unsupported = [ext for ext in counts if ext in _UNSUPPORTED_IMAGE_EXTENSIONS]
    text = ", ".join(parts)
    if unsupported:
        return msg(
            "dataset.files.unsupported_images",
            "{files} ({extensions} images are not supported: convert them to png, jpg, webp or bmp)",
            files=text, extensions=", ".join(unsupported),
        )  # fmt: skip
    return text


def _names(names: list[str], limit: int = 5) -> str:
    shown = ", ".join(repr(n) for n in names[:limit])
    if len(names) > limit:
        return msg("dataset.list.names_and_more", "{names} and {count} more", names=shown, count=len(names) - limit)
    return shown
