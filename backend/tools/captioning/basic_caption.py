"""Basic captioning and caption editing (kohya_ss' "Basic Captioning"), no model involved.

    python -m backend.tools.basic_caption DIR [--caption_text TEXT] [--overwrite] [--prefix P] [--postfix S]
        [--find TEXT --replace TEXT] [--add_tag TAG [--first]] [--remove_tag TAG] [--only_missing]
        [--caption_extension .txt] [--separator ", "] [--recursive] [--dry_run]

Images without a caption file get --caption_text (with --overwrite, captions that exist are
replaced by it as well); then find/replace (plain text) and prefix/postfix apply to every caption,
or only to the new ones with --only_missing. --add_tag/--remove_tag edit tag lists instead.
--dry_run prints `file: "before" -> "after"` for each file that would change and writes nothing.
Rules (no doubled prefixes, tag matching): backend/tools/captioning/caption_editing.py.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from backend.messages import msg
from backend.tools.captioning.caption_editing import (
    apply_changes,
    format_preview,
    list_captions,
    plan_add_tag,
    plan_basic_edit,
    plan_remove_tag,
)
from backend.tools.cli.light_cli import InputError, Summary, run_light_tool
from backend.tools.flags.captioning import BASIC_CAPTION
from backend.tools.flags.parser import build_parser as parser_of


def build_parser() -> argparse.ArgumentParser:
    return parser_of(BASIC_CAPTION)  # the flags: backend/tools/flags/captioning.py


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    basic = any([args.caption_text.strip(), args.prefix.strip(), args.postfix.strip(), args.find])
    if not basic and args.add_tag is None and args.remove_tag is None:
        raise InputError(msg("tool.basic_caption_nothing", "nothing to do: pass --caption_text, --prefix, --postfix, "
                             "--find, --add_tag or --remove_tag"))
    if basic and (args.add_tag is not None or args.remove_tag is not None):
        raise InputError(msg("tool.basic_caption_tags_and_text", "--add_tag/--remove_tag cannot be combined with "
                             "caption text edits: run them one after another"))
    entries = list_captions(args.images_dir, args.caption_extension, args.recursive)
    if args.add_tag is not None:
        changes = plan_add_tag(entries, args.add_tag, args.separator, args.first, include_missing=not args.only_missing)
    elif args.remove_tag is not None:
        changes = plan_remove_tag(entries, args.remove_tag, args.separator)
    else:
        changes = plan_basic_edit(
            entries, caption_text=args.caption_text, overwrite=args.overwrite, prefix=args.prefix,
            postfix=args.postfix, find=args.find, replace=args.replace, only_missing=args.only_missing,
            separator=args.separator,
        )
    summary = Summary()
    changed = {c.image for c in changes}
    for entry in entries:
        if entry.error is not None:
            summary.fail(entry.caption_file, entry.error)
        elif entry.image not in changed:
            summary.skip(entry.image, _why_unchanged(entry.text is None, args.only_missing))
    if args.dry_run:
        print(format_preview(changes) or msg("tool.basic_caption_no_change", "no caption would change"))
        summary.written = [str(c.caption_file) for c in changes]
        summary.print("would_write")
        return 0
    summary.written = [str(path) for path in apply_changes(changes)]
    summary.print()
    return 0


def _why_unchanged(missing: bool, only_missing: bool) -> str:
    if missing:
        return msg("tool.basic_caption_nothing_to_write", "no caption file and nothing to write")
    if only_missing:
        return msg("tool.basic_caption_has_caption", "has a caption (--only_missing)")
    return msg("tool.basic_caption_unchanged", "caption unchanged")


if __name__ == "__main__":
    sys.exit(run_light_tool(main))
