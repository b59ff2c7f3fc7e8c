"""Fine-tuning metadata files (sd-scripts' `--in_json`): reading, writing, image listing and keys.

A metadata file is one JSON object keyed by image: `{image_key: {"caption": ..., "tags": ...,
"train_resolution": [w, h]}}`. The key is the image's stem, or its full path with --full_path
(needed when images come from several folders: the trainer resolves stems in one
--train_data_dir only).
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from backend.atomic import atomic_write_json
from backend.messages import msg
from backend.tools.cli.arg_checks import one_line_path
from backend.tools.cli.light_cli import InputError, run_light_tool
from backend.tools.dataset.caption_files import (
    IMAGE_EXTENSIONS,  # torch-free (backend.data's package imports torch)
)

logger = logging.getLogger(__name__)

Metadata = dict[str, dict[str, Any]]
LATENT_STRIDE = 8  # sd-scripts records train_resolution in whole latent pixels


class MetadataError(InputError):
    """Bad input (missing folder, not a metadata file, bad flag value): one `error:` line, exit status 2."""


def run_metadata_tool(main: Callable[[Sequence[str] | None], int | None], argv: Sequence[str] | None = None) -> int:
    """Run a tool's `main` (see `light_cli.run_light_tool`): bad input prints one `error:` line
    instead of a traceback and returns 2, a failure returns 1."""
    return run_light_tool(main, argv)


def parse_max_resolution(text: str) -> tuple[int, int]:
    parts = [p.strip() for p in text.split(",")]
    if len(parts) != 2 or not all(p.isdigit() and int(p) >= LATENT_STRIDE for p in parts):
        raise MetadataError(msg("tool.max_resolution_format", "--max_resolution must be 'width,height' in pixels, "
                                "e.g. 512,512; got {value}", value=repr(text)))
    return int(parts[0]), int(parts[1])


def read_metadata(path: str | Path) -> Metadata:
    """The metadata in `path`: a JSON object whose values are objects, else a MetadataError naming the file."""
    one_line_path(path, msg("tool.what_metadata_file", "metadata file"))
    path = Path(path)
    if not path.is_file():
        raise MetadataError(msg("tool.metadata_not_found", "metadata file not found: {path}", path=path))
    example = '{"img1": {"caption": "..."}}'
    try:
        data = json.loads(path.read_text(encoding="utf-8-sig"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise MetadataError(msg(
            "tool.metadata_not_json", "{path} is not a metadata file: it is not valid UTF-8 JSON ({error}); expected a "
            "JSON object of objects such as {example}", path=path, error=exc, example=example,
        )) from None
    if not isinstance(data, dict):
        raise MetadataError(msg(
            "tool.metadata_not_object", "{path} is not a metadata file: it holds a JSON {type}; expected a JSON object "
            "of objects such as {example}", path=path, type=type(data).__name__, example=example,
        ))
    bad = [key for key, value in data.items() if not isinstance(value, dict)]
    if len(bad) > 1:
        raise MetadataError(msg(
            "tool.metadata_entries_not_objects", "{path} is not a metadata file: the entry {key} is a {type} (and "
            "{more} more entries are not objects); expected a JSON object of objects such as {example}",
            path=path, key=repr(bad[0]), type=type(data[bad[0]]).__name__, more=len(bad) - 1, example=example,
        ))
    if bad:
        raise MetadataError(msg(
            "tool.metadata_entry_not_object", "{path} is not a metadata file: the entry {key} is a {type}; expected a "
            "JSON object of objects such as {example}", path=path, key=repr(bad[0]), type=type(data[bad[0]]).__name__,
            example=example,
        ))
    return data


def write_metadata(metadata: Metadata, path: str | Path) -> None:
    atomic_write_json(metadata, path)
    logger.info(msg("tool.metadata_written", "wrote {count} entries to {path}", count=len(metadata), path=path))


def existing_metadata(out_json: str | Path, in_json: str | Path | None) -> Metadata:
    """sd-scripts' accumulation rule: read --in_json, else OUT.json when it exists, else start empty."""
    source = in_json if in_json is not None else (out_json if Path(out_json).is_file() else None)
    if source is None:
        logger.info(msg("tool.metadata_new", "creating new metadata"))
        return {}
    metadata = read_metadata(source)
    logger.info(msg("tool.metadata_read", "read {count} entries from {path}", count=len(metadata), path=source))
    return metadata


def list_images(directory: str | Path, recursive: bool = False) -> list[Path]:
    """Images in `directory` (and its subfolders with `recursive`), sorted; a missing folder is an error."""
    one_line_path(directory, msg("tool.what_image_folder", "image folder"))
    directory = Path(directory)
    if not directory.is_dir():
        raise MetadataError(msg("tool.image_folder_not_found", "image folder not found: {path}", path=directory))
    candidates = directory.rglob("*") if recursive else directory.iterdir()
    return sorted(p for p in candidates if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS)


def image_key(image: Path, full_path: bool) -> str:
    # Absolute (not as typed): the trainer resolves relative keys against --train_data_dir.
    return os.path.abspath(image) if full_path else image.stem


def keyed_images(images: list[Path], full_path: bool, recursive: bool) -> dict[str, Path]:
    """{key: image}; stems that collide (img.png and img.jpg) are an error that says to use --full_path."""
    if recursive and not full_path:
        raise MetadataError(msg("tool.recursive_needs_full_path",
                                "--recursive needs --full_path: images in different folders may share a file name"))
    keyed: dict[str, Path] = {}
    collisions: list[str] = []
    for image in images:
        key = image_key(image, full_path)
        if key in keyed:
            collisions.append(msg("tool.key_collision", "{first} and {second} -> {key}",
                                  first=keyed[key].name, second=image.name, key=repr(key)))
        keyed[key] = image
    if collisions:
        raise MetadataError(msg(
            "tool.key_collisions", "{count} image key(s) collide because keys are file names without extension: "
            "{collisions}; rename the images or use --full_path", count=len(collisions),
            collisions="; ".join(collisions[:5]),
        ))
    return keyed


def warn_foreign_stems(metadata: Metadata, keyed: dict[str, Path], folder: Path, full_path: bool) -> None:
    """Stem keys already in the metadata with no image in this folder came from another folder; the
    trainer looks for stems in one --train_data_dir only, so several folders need --full_path."""
    if full_path:
        return
    foreign = [k for k in metadata if not os.path.isabs(k) and k not in keyed]
    if foreign:
        logger.warning(msg(
            "tool.metadata_foreign_stems", "{count} entries of the metadata (e.g. {example}) have no image in {folder}; "
            "if they come from another folder, the trainer will not find them: with several folders, run every tool "
            "with --full_path", count=len(foreign), example=repr(foreign[0]), folder=folder,
        ))
