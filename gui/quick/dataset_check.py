"""The source folder checked as Quick LoRA sees it, without writing anything: its images (readable, not tiny, no
duplicates), those with and without captions, files it cannot use. Torch-free (PIL only).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path

from PIL import Image

from backend.tools.dataset.caption_files import (
    UNSUPPORTED_IMAGE_EXTENSIONS,
    caption_path,
    is_image,
    list_images,
    read_text,
)

# Caption files read from the source folder, in this order (the training folder gets `.txt`).
SOURCE_CAPTIONS = (".txt", ".caption")


@dataclass
class FolderCheck:
    images: list[Path] = field(default_factory=list)  # usable: readable, not duplicates
    unreadable: list[tuple[Path, str]] = field(default_factory=list)
    tiny: list[tuple[Path, tuple[int, int]]] = field(
        default_factory=list
    )  # usable but small for the resolution
    duplicates: list[tuple[Path, Path]] = field(default_factory=list)  # (left out, the same image kept)
    unsupported: list[Path] = field(default_factory=list)  # .gif, .tif, ...: not images the trainer reads
    captions: dict[Path, str] = field(default_factory=dict)  # usable image -> its source caption
    subfolders: int = 0  # not looked into

    @property
    def uncaptioned(self) -> list[Path]:
        return [image for image in self.images if image not in self.captions]


def source_caption(image: Path) -> str | None:
    """The image's caption in the source folder (`.txt`, else `.caption`); None when it has none or it is empty."""
    for extension in SOURCE_CAPTIONS:
        text = read_text(caption_path(image, extension))
        if text:
            return text
    return None


def _size(path: Path) -> tuple[int, int]:
    with Image.open(path) as image:
        size = image.size
        image.verify()  # the whole file's structure, without decoding every pixel
    return size


def check_folder(folder: Path, min_side: int) -> FolderCheck:
    """Every image of `folder` (not its subfolders); raises InputError (backend.tools.cli.light_cli) when there is
    no image at all. `min_side`: images with a shorter side are listed as tiny (they would be enlarged)."""
    check = FolderCheck()
    seen: dict[str, Path] = {}
    for path in list_images(folder):
        try:
            width, height = _size(path)
        except Exception as error:  # PIL raises many kinds for a damaged file
            check.unreadable.append((path, str(error) or type(error).__name__))
            continue
        digest = hashlib.sha1(path.read_bytes()).hexdigest()  # a byte-for-byte copy only: cheap and certain
        if digest in seen:
            check.duplicates.append((path, seen[digest]))
            continue
        seen[digest] = path
        check.images.append(path)
        if min(width, height) < min_side:
            check.tiny.append((path, (width, height)))
        caption = source_caption(path)
        if caption:
            check.captions[path] = caption
    for entry in sorted(folder.iterdir()):
        if entry.is_dir():
            check.subfolders += 1
        elif entry.suffix.lower() in UNSUPPORTED_IMAGE_EXTENSIONS and not is_image(entry):
            check.unsupported.append(entry)
    return check
