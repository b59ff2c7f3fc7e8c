"""Clean captions and tags in fine-tuning metadata (sd-scripts' finetune/clean_captions_and_tags.py).

    python -m backend.tools.clean_captions_and_tags IN.json OUT.json [--debug]

The rules are the tables in backend/tools/metadata/metadata_clean.py: tag underscores become spaces, the
DeepDanbooru rating tag is removed, per-person tags that contradict each other when several people
are tagged are removed, a tag covered by a longer one (shirt / white shirt) is removed, and
caption variants (woman, lady, anime girl, ...) become girl/girls. Entries without tags or
caption are counted and kept as they are.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

from backend.messages import msg
from backend.tools.cli.arg_checks import output_file
from backend.tools.flags.metadata import CLEAN_METADATA
from backend.tools.flags.parser import build_parser as parser_of
from backend.tools.metadata.metadata_clean import clean_caption, clean_tags
from backend.tools.metadata.metadata_io import Metadata, read_metadata, run_metadata_tool, write_metadata

logger = logging.getLogger(__name__)


def clean_metadata(metadata: Metadata, debug: bool = False) -> dict[str, int]:
    """Clean every entry in place; returns counts of changed fields and of entries missing one."""
    counts = {"tags changed": 0, "captions changed": 0, "without tags": 0, "without caption": 0}
    for key, entry in metadata.items():
        for field, clean, label in (("tags", clean_tags, "tags"), ("caption", clean_caption, "captions")):
            value = entry.get(field)
            if not isinstance(value, str):
                counts[f"without {field}"] += 1
                continue
            cleaned = clean(value)
            if cleaned != value:
                counts[f"{label} changed"] += 1
                if debug:
                    logger.info("%s %s\n  from: %s\n  to:   %s", key, field, value, cleaned)
            entry[field] = cleaned
    return counts


def build_parser() -> argparse.ArgumentParser:
    return parser_of(CLEAN_METADATA)  # the flags: backend/tools/flags/metadata.py


def main(argv: Sequence[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    metadata = read_metadata(args.in_json)
    output_file(args.out_json, "out_json")  # may be in_json: cleaning in place is intended
    counts = clean_metadata(metadata, args.debug)
    logger.info(msg(
        "tool.clean_counts", "{tags_changed} tags changed, {captions_changed} captions changed, {without_tags} without "
        "tags, {without_caption} without caption", tags_changed=counts["tags changed"],
        captions_changed=counts["captions changed"], without_tags=counts["without tags"],
        without_caption=counts["without caption"],
    ))
    write_metadata(metadata, args.out_json)


if __name__ == "__main__":
    sys.exit(run_metadata_tool(main))
