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
from backend.tools.caption_files import IMAGE_EXTENSIONS  # torch-free (backend.data's package imports torch)
from backend.tools.light_cli import InputError, run_light_tool

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
        raise MetadataError(f"--max_resolution must be 'width,height' in pixels, e.g. 512,512; got {text!r}")
    return int(parts[0]), int(parts[1])


def read_metadata(path: str | Path) -> Metadata:
    """The metadata in `path`: a JSON object whose values are objects, else a MetadataError naming the file."""
    path = Path(path)
    if not path.is_file():
        raise MetadataError(f"metadata file not found: {path}")
    expected = 'expected a JSON object of objects such as {"img1": {"caption": "..."}}'
    try:
        data = json.loads(path.read_text(encoding="utf-8-sig"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise MetadataError(f"{path} is not a metadata file: it is not valid UTF-8 JSON ({exc}); {expected}") from None
    if not isinstance(data, dict):
        raise MetadataError(f"{path} is not a metadata file: it holds a JSON {type(data).__name__}; {expected}")
    bad = [key for key, value in data.items() if not isinstance(value, dict)]
    if bad:
        raise MetadataError(
            f"{path} is not a metadata file: the entry {bad[0]!r} is a {type(data[bad[0]]).__name__}"
            f"{f' (and {len(bad) - 1} more entries are not objects)' if len(bad) > 1 else ''}; {expected}"
        )
    return data


def write_metadata(metadata: Metadata, path: str | Path) -> None:
    atomic_write_json(metadata, path)
    logger.info("wrote %d entries to %s", len(metadata), path)


def existing_metadata(out_json: str | Path, in_json: str | Path | None) -> Metadata:
    """sd-scripts' accumulation rule: read --in_json, else OUT.json when it exists, else start empty."""
    source = in_json if in_json is not None else (out_json if Path(out_json).is_file() else None)
    if source is None:
        logger.info("creating new metadata")
        return {}
    metadata = read_metadata(source)
    logger.info("read %d entries from %s", len(metadata), source)
    return metadata


def list_images(directory: str | Path, recursive: bool = False) -> list[Path]:
    """Images in `directory` (and its subfolders with `recursive`), sorted; a missing folder is an error."""
    directory = Path(directory)
    if not directory.is_dir():
        raise MetadataError(f"image folder not found: {directory}")
    candidates = directory.rglob("*") if recursive else directory.iterdir()
    return sorted(p for p in candidates if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS)


def image_key(image: Path, full_path: bool) -> str:
    # Absolute (not as typed): the trainer resolves relative keys against --train_data_dir.
    return os.path.abspath(image) if full_path else image.stem


def keyed_images(images: list[Path], full_path: bool, recursive: bool) -> dict[str, Path]:
    """{key: image}; stems that collide (img.png and img.jpg) are an error that says to use --full_path."""
    if recursive and not full_path:
        raise MetadataError("--recursive needs --full_path: images in different folders may share a file name")
    keyed: dict[str, Path] = {}
    collisions: list[str] = []
    for image in images:
        key = image_key(image, full_path)
        if key in keyed:
            collisions.append(f"{keyed[key].name} and {image.name} -> {key!r}")
        keyed[key] = image
    if collisions:
        raise MetadataError(
            f"{len(collisions)} image key(s) collide because keys are file names without extension: "
            f"{'; '.join(collisions[:5])}; rename the images or use --full_path"
        )
    return keyed


def warn_foreign_stems(metadata: Metadata, keyed: dict[str, Path], folder: Path, full_path: bool) -> None:
    """Stem keys already in the metadata with no image in this folder came from another folder; the
    trainer looks for stems in one --train_data_dir only, so several folders need --full_path."""
    if full_path:
        return
    foreign = [k for k in metadata if not os.path.isabs(k) and k not in keyed]
    if foreign:
        logger.warning(
            "%d entries of the metadata (e.g. %r) have no image in %s; if they come from another folder, "
            "the trainer will not find them: with several folders, run every tool with --full_path",
            len(foreign), foreign[0], folder,
        )
