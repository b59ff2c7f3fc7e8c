"""Images and their caption files on disk, for the captioners, the tagger and the caption editor.

Torch-free on purpose (the GUI imports it). `IMAGE_EXTENSIONS` repeats
`backend.data.discovery.IMAGE_EXTENSIONS` because importing anything from `backend.data` runs its
package `__init__`, which imports torch; a test keeps the two tuples equal.

A caption file is `<image stem><extension>` beside the image (sd-scripts' rule). Existing caption
files are never replaced unless the user asked for it: `WriteMode` is `skip` (default), `overwrite`
or `append`, and every write is atomic (`backend/atomic.py`), so a killed tool never leaves a
half-written caption.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Callable
from enum import Enum
from pathlib import Path

from backend.atomic import atomic_write
from backend.messages import msg
from backend.tools.cli.arg_checks import one_line_name, one_line_path
from backend.tools.cli.light_cli import InputError

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".webp", ".bmp")
UNSUPPORTED_IMAGE_EXTENSIONS = (".gif", ".tif", ".tiff", ".avif", ".heic", ".jxl", ".psd")
# Videos the video trainer reads (backend/data/video/sources.py, less .gif, which the image tools call an
# unsupported image): the caption editor lists them beside the images; their captions are `<stem>.txt` too.
VIDEO_EXTENSIONS = (".mp4", ".webm", ".mov", ".mkv", ".avi")


class WriteMode(str, Enum):
    SKIP = "skip"  # keep an existing caption file as it is
    OVERWRITE = "overwrite"
    APPEND = "append"  # keep the existing text and add the new text after it


def normalize_extension(extension: str) -> str:
    """'.txt' stays, 'txt' becomes '.txt' (sd-scripts appends the extension verbatim)."""
    one_line_name(extension.strip(), "--caption_extension")
    extension = extension.strip()
    if not extension:
        raise InputError(msg("tool.caption_extension_empty",
                             "the caption extension is empty: pass for example --caption_extension .txt"))
    return extension if extension.startswith(".") else "." + extension


def is_image(path: Path) -> bool:
    return path.suffix.lower() in IMAGE_EXTENSIONS and path.is_file() and not path.name.startswith(".")


def is_video(path: Path) -> bool:
    return path.suffix.lower() in VIDEO_EXTENSIONS and path.is_file() and not path.name.startswith(".")


def image_folder(folder: str | os.PathLike[str], what: str = "") -> Path:
    """`folder` as a Path when it is an existing folder, else an InputError saying what is wrong.
    `what`: the folder's name or role in messages (default: "image folder")."""
    what = what or msg("tool.what_image_folder", "image folder")
    one_line_path(folder, what)
    path = Path(folder).expanduser()
    if not path.exists():
        raise InputError(msg("tool.folder_missing", "{what} does not exist: {path}", what=what, path=path))
    if not path.is_dir():
        raise InputError(msg("tool.folder_is_file", "{what} must be a folder, but {path} is a file: pass the folder "
                             "that holds the images", what=what, path=path))
    return path


def list_images(
    folder: str | os.PathLike[str], recursive: bool = False, what: str = "", videos: bool = False
) -> list[Path]:
    """Images in `folder` (and below with `recursive`), sorted; an InputError when there are none.
    `videos`: videos (VIDEO_EXTENSIONS) count as well (the caption editor's media)."""
    what = what or msg("tool.what_image_folder", "image folder")
    path = image_folder(folder, what)
    candidates = path.rglob("*") if recursive else path.iterdir()
    images = sorted((p for p in candidates if is_image(p) or (videos and is_video(p))), key=lambda p: str(p))
    if not images and videos:
        raise InputError(msg(
            "tool.no_media", "no images (png, jpg, jpeg, webp, bmp) or videos (mp4, webm, mov, mkv, avi) in {what} "
            "{path}: {contents}", what=what, path=path, contents=describe_folder(path, recursive),
        ))  # fmt: skip
    if not images:
        raise InputError(msg("tool.no_images", "no images (png, jpg, jpeg, webp, bmp) in {what} {path}: {contents}",
                             what=what, path=path, contents=describe_folder(path, recursive)))
    return images


def describe_folder(folder: Path, recursive: bool = False) -> str:
    """'it is empty' or 'it contains 3 .gif file(s), 1 folder(s)' with a hint for unsupported formats."""
    entries = list(folder.iterdir())
    if not entries:
        return msg("tool.folder_empty", "it is empty")
    files = [p for p in (folder.rglob("*") if recursive else entries) if p.is_file()]
    counts = Counter(p.suffix.lower() for p in files)
    parts = [
        msg("tool.folder_files_of_type", "{count} {extension} file(s)", count=n, extension=ext) if ext else
        msg("tool.folder_files_without_extension", "{count} file(s) without an extension", count=n)
        for ext, n in sorted(counts.items())
    ]
    folders = sum(p.is_dir() for p in entries)
    if folders and recursive:
        parts.append(msg("tool.folder_subfolders", "{count} folder(s)", count=folders))
    elif folders:
        parts.append(msg("tool.folder_subfolders_hint", "{count} folder(s) (add --recursive to look inside them)",
                         count=folders))
    unsupported = sorted(ext for ext in counts if ext in UNSUPPORTED_IMAGE_EXTENSIONS)
    if unsupported:
        return msg("tool.folder_contents_unsupported", "it contains {contents}; {extensions} images are not supported: "
                   "convert them to png, jpg, webp or bmp", contents=", ".join(parts), extensions=", ".join(unsupported))
    return msg("tool.folder_contents", "it contains {contents}", contents=", ".join(parts))


def caption_path(image: Path, extension: str) -> Path:
    return image.with_name(image.stem + extension)


def read_text(path: Path) -> str | None:
    """The caption file's text without surrounding whitespace, or None when there is none.

    UTF-8 with or without a BOM (Windows editors add one); other encodings raise an InputError
    naming the file, since guessing could garble the caption when it is written back.
    """
    if not path.is_file():
        return None
    try:
        return path.read_text(encoding="utf-8-sig").strip()
    except UnicodeDecodeError:
        raise InputError(msg("tool.caption_not_utf8", "caption file {path} is not UTF-8 text: re-save it as UTF-8",
                             path=path)) from None


def write_text(path: Path, text: str) -> None:
    """Atomically write one caption (one line, ending in a newline, as sd-scripts writes them)."""
    with atomic_write(path) as f:
        f.write(text.strip() + "\n")


def merged_caption(existing: str | None, new: str, mode: WriteMode, separator: str = ", ") -> str | None:
    """The text to write for `new` given the existing caption, or None to leave the file alone.

    `append` adds the new caption after the existing one (joined by `separator`) unless the
    existing text already contains it, so running a captioner twice does not double captions.
    """
    if existing is None or mode is WriteMode.OVERWRITE:
        return new
    if mode is WriteMode.SKIP:
        return None
    if not existing:
        return new
    if not new or new in existing:
        return existing
    return existing + separator + new


def split_tags(text: str, separator: str = ",") -> list[str]:
    """Tags of a caption: split at `separator` (surrounding spaces ignored), empty pieces dropped."""
    sep = separator.strip() or separator
    return [tag.strip() for tag in text.split(sep) if tag.strip()]


def images_to_write(
    folder: str | os.PathLike[str], recursive: bool, extension: str, mode: WriteMode, skip: Callable[[Path], None]
) -> list[Path]:
    """The folder's images that get a caption/tag file in `mode`; with SKIP, those that already have
    one are handed to `skip` (to be reported) instead."""
    todo: list[Path] = []
    for image in list_images(folder, recursive):
        if mode is WriteMode.SKIP and caption_path(image, extension).exists():
            skip(image)
        else:
            todo.append(image)
    return todo
