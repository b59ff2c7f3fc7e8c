"""Merging caption or tag files into metadata (merge_captions_to_metadata, merge_dd_tags_to_metadata).

Both tools share sd-scripts' semantics: every image of the folder gets its text file's content
(stripped) under one field (`caption` or `tags`), existing entries keep their other fields, and
entries for images not in this folder are kept. Unlike sd-scripts, which stops with a traceback
on the first image without a text file, such images are listed and counted, and left as they were.
"""

from __future__ import annotations

import argparse
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from backend.tools.arg_checks import output_file
from backend.tools.metadata_io import (
    Metadata,
    MetadataError,
    existing_metadata,
    keyed_images,
    list_images,
    warn_foreign_stems,
    write_metadata,
)

logger = logging.getLogger(__name__)


@dataclass
class MergeReport:
    merged: int = 0
    new_entries: int = 0
    missing: list[Path] = field(default_factory=list)  # images without a text file


def merge_text_files(
    metadata: Metadata, keyed: dict[str, Path], field_name: str, extension: str, debug: bool = False
) -> MergeReport:
    """Put each image's `<stem><extension>` text into `metadata[key][field_name]` (in place)."""
    report = MergeReport()
    texts: dict[str, str] = {}
    not_utf8: list[Path] = []
    for key, image in keyed.items():
        text_path = image.with_name(image.stem + extension)
        if not text_path.is_file():
            report.missing.append(image)
            continue
        try:
            texts[key] = text_path.read_text(encoding="utf-8-sig").strip()  # -sig: Windows editors write a BOM
        except UnicodeDecodeError:
            not_utf8.append(text_path)  # all of them are listed, before anything is merged
    if not_utf8:
        listed = "\n  ".join(str(p) for p in not_utf8)
        raise MetadataError(
            f"{len(not_utf8)} text file(s) are not UTF-8 text; save them again as UTF-8, in Notepad with Save As "
            f"and Encoding UTF-8:\n  {listed}"
        )
    for key, text in texts.items():
        if key not in metadata:
            metadata[key] = {}
            report.new_entries += 1
        metadata[key][field_name] = text
        report.merged += 1
        if debug:
            logger.info("%s %s", key, text)
    return report


def build_parser(prog: str, description: str, default_extension: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=f"python -m backend.tools.{prog}", description=description)
    parser.add_argument("train_data_dir", help="folder with the images and their text files")
    parser.add_argument("out_json", help="metadata file to write")
    parser.add_argument("--in_json", help="metadata to start from (default: out_json when it exists, so runs add up)")
    parser.add_argument("--caption_extension", default=default_extension,
                        help=f"extension of the text files (default {default_extension})")
    parser.add_argument("--full_path", action="store_true",
                        help="key entries by the image's full path (needed for several folders in one file)")
    parser.add_argument("--recursive", action="store_true", help="also read subfolders (needs --full_path)")
    parser.add_argument("--debug", action="store_true", help="print every merged text")
    return parser


def run_merge(args: argparse.Namespace, field_name: str) -> MergeReport:
    extension = args.caption_extension
    if not extension.startswith("."):
        extension = "." + extension  # "txt" would otherwise look for "imgtxt"
    folder = Path(args.train_data_dir)
    images = list_images(folder, args.recursive)
    output_file(args.out_json, "out_json")  # before the work: a folder or a read-only place fails at the end
    keyed = keyed_images(images, args.full_path, args.recursive)
    metadata = existing_metadata(args.out_json, args.in_json)
    warn_foreign_stems(metadata, keyed, folder, args.full_path)
    logger.info("found %d images in %s", len(images), folder)
    report = merge_text_files(metadata, keyed, field_name, extension, args.debug)
    if report.missing:
        listed = ", ".join(p.name for p in report.missing[:10])
        more = f" and {len(report.missing) - 10} more" if len(report.missing) > 10 else ""
        logger.warning("%d of %d images have no '%s' file and got no %s: %s%s",
                       len(report.missing), len(images), extension, field_name, listed, more)
    write_metadata(metadata, args.out_json)
    logger.info("%s: %d merged (%d new entries), %d images without a '%s' file",
                field_name, report.merged, report.new_entries, len(report.missing), extension)
    return report


def merge_main(argv: Sequence[str] | None, prog: str, field_name: str, default_extension: str,
               description: str, legacy_alias: bool = False) -> None:
    parser = build_parser(prog, description, default_extension)
    if legacy_alias:  # sd-scripts' misspelled flag, still in old scripts
        parser.add_argument("--caption_extention", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if getattr(args, "caption_extention", None):
        args.caption_extension = args.caption_extention
    run_merge(args, field_name)
