"""Caption images with GIT (sd-scripts' finetune/make_captions_by_git.py).

    python -m backend.tools.make_captions_by_git DIR [--model_id microsoft/git-large-textcaps]
        [--batch_size 1] [--max_length 50] [--remove_words] [--caption_extension .caption]
        [--recursive] [--overwrite | --append] [--device cuda] [--debug]

GIT-TextCaps likes to read (often imagined) text in images: "a sign that says ...".
--remove_words drops those phrases (`remove_text_phrases`), as sd-scripts' option does.
Generation is greedy, as in sd-scripts. Existing caption files are kept unless --overwrite or
--append is given.
"""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Sequence

from backend.tools.captioning.caption_runner import CaptionBatch
from backend.tools.captioning.hf_captioner import check_common_args, load_captioner, run_captioner
from backend.tools.cli.light_cli import run_light_tool
from backend.tools.flags.captioning import MAKE_CAPTIONS_BY_GIT
from backend.tools.flags.parser import build_parser as parser_of

# Phrases about text in the image, which GIT-TextCaps often hallucinates: "with the words ...",
# "a sign that says ...", "with the number 3 on it". A quoted text may be cut off by max_length.
_TEXT = r"""(?:"[^"]*"?|'[^']*'?|\w+)"""
TEXT_PHRASES = [
    re.compile(rf"\b(?:has|with|and) the (?:words?|letters?|name) {_TEXT}"
               r"(?: (?:is )?(?:on|in) (?:the |her |his |their |him |it )?\w+)?"),
    re.compile(rf"\b(?:with a sign )?that says ?(?:the word )?{_TEXT}(?: on it)?"),
    re.compile(r"\bwith the number \d+ on (?:it|\w+ \w+)"),
    re.compile(r"\bword \w+ on it"),
]


def remove_text_phrases(caption: str) -> str:
    for pattern in TEXT_PHRASES:
        caption = pattern.sub("", caption)
    return " ".join(caption.split()).strip(" ,")


def build_parser() -> argparse.ArgumentParser:
    return parser_of(MAKE_CAPTIONS_BY_GIT)  # the flags: backend/tools/flags/captioning.py


def load_git(args: argparse.Namespace, device: str) -> CaptionBatch:
    """Greedy captions (sd-scripts' generation), without the text phrases with --remove_words."""
    caption = load_captioner(args.model_id, "GIT", "AutoModelForCausalLM", "AutoProcessor", device)

    def run(batch: list) -> list[str]:
        captions = caption(batch, max_length=args.max_length)
        return [remove_text_phrases(c) for c in captions] if args.remove_words else captions

    return run


def check_args(args: argparse.Namespace) -> None:
    """The option checks, before any image or model is looked at (see `hf_captioner`)."""
    check_common_args(args)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    check_args(args)
    return run_captioner(args, "make_captions_by_git", lambda device: load_git(args, device))


if __name__ == "__main__":
    sys.exit(run_light_tool(main))
