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

from backend.messages import msg
from backend.tools.cli.arg_checks import one_line_name, output_file
from backend.tools.flags.parser import build_parser
from backend.tools.flags.spec import ToolFlags
from backend.tools.metadata.metadata_io import (
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
        raise MetadataError(msg(
            "tool.text_files_not_utf8", "{count} text file(s) are not UTF-8 text; save them again as UTF-8, in Notepad "
            "with Save As and Encoding UTF-8:\n  {files}", count=len(not_utf8),
            files="\n  ".join(str(p) for p in not_utf8),
        ))
    for key, text in texts.items():
        if key not in metadata:
            metadata[key] = {}
            report.new_entries += 1
        metadata[key][field_name] = text
        report.merged += 1
        if debug:
            logger.info("%s %s", key, text)  # data, as the user wrote it
    return report


def run_merge(args: argparse.Namespace, field_name: str) -> MergeReport:
    extension = args.caption_extension
    one_line_name(extension, "--caption_extension")
    if not extension.startswith("."):
        extension = "." + extension  # "txt" would otherwise look for "imgtxt"
    folder = Path(args.train_data_dir)
    images = list_images(folder, args.recursive)
    output_file(args.out_json, "out_json")  # before the work: a folder or a read-only place fails at the end
    keyed = keyed_images(images, args.full_path, args.recursive)
    metadata = existing_metadata(args.out_json, args.in_json)
    warn_foreign_stems(metadata, keyed, folder, args.full_path)
    logger.info(msg("tool.images_found", "found {count} images in {folder}", count=len(images), folder=folder))
    report = merge_text_files(metadata, keyed, field_name, extension, args.debug)
    if report.missing:
        listed = ", ".join(p.name for p in report.missing[:10])
        if len(report.missing) > 10:
            listed = msg("tool.names_and_more", "{names} and {count} more", names=listed, count=len(report.missing) - 10)
        counts = {"count": len(report.missing), "total": len(images), "extension": extension, "names": listed}
        if field_name == "caption":
            logger.warning(msg("tool.merge_missing_captions", "{count} of {total} images have no '{extension}' file and "
                               "got no caption: {names}", **counts))
        else:
            logger.warning(msg("tool.merge_missing_tags", "{count} of {total} images have no '{extension}' file and got "
                               "no tags: {names}", **counts))
    write_metadata(metadata, args.out_json)
    logger.info(msg("tool.merge_result", "{field}: {merged} merged ({new} new entries), {missing} images without a "
                    "'{extension}' file", field=field_name, merged=report.merged, new=report.new_entries,
                    missing=len(report.missing), extension=extension))
    return report


def merge_main(argv: Sequence[str] | None, tool: ToolFlags, field_name: str) -> None:
    """Run merge_captions_to_metadata or merge_dd_tags_to_metadata (flags: backend/tools/flags/metadata.py)."""
    run_merge(build_parser(tool).parse_args(argv), field_name)
