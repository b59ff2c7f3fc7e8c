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

from backend.messages import msg
from backend.tools.captioning.caption_runner import (
    CaptionBatch,
    caption_images,
    check_batch_size,
    check_max_length,
    check_model_id,
    check_workers,
    pick_device,
    plan,
)
from backend.tools.captioning.hub_models import resolve_pretrained
from backend.tools.cli.light_cli import InputError, run_light_tool
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


def load_git(model_id: str, device: str, max_length: int) -> CaptionBatch:
    # Resolved first: a model that is not available fails before transformers is imported.
    folder = resolve_pretrained(model_id, "GIT")
    from transformers import AutoModelForCausalLM, AutoProcessor

    try:
        processor = AutoProcessor.from_pretrained(folder)
        model = AutoModelForCausalLM.from_pretrained(folder).to(device).eval()
    except (OSError, ValueError, KeyError) as exc:  # incomplete or foreign folder
        raise InputError(msg("tool.captioner_unloadable", "cannot load the model in {folder}: {error}",
                             folder=folder, error=exc)) from None

    def caption(images: list) -> list[str]:
        import torch

        inputs = processor(images=images, return_tensors="pt").to(device)
        with torch.no_grad():
            ids = model.generate(pixel_values=inputs["pixel_values"], max_length=max_length)
        return processor.batch_decode(ids, skip_special_tokens=True)

    return caption


def check_args(args: argparse.Namespace) -> None:
    """The option checks, before any image or model is looked at (see `caption_runner`)."""
    check_batch_size(args)
    check_max_length(args)
    check_workers(args)
    check_model_id(args)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    check_args(args)
    images, summary, extension, mode = plan(args)
    if images:
        caption = load_git(args.model_id, pick_device(args.device), args.max_length)

        def run(batch: list) -> list[str]:
            captions = caption(batch)
            return [remove_text_phrases(c) for c in captions] if args.remove_words else captions

        caption_images(
            images, run, summary, extension=extension, mode=mode, batch_size=args.batch_size,
            workers=args.max_data_loader_n_workers, debug=args.debug, tool="make_captions_by_git",
            progress=not args.no_progress,
        )
    summary.print()
    return 0


if __name__ == "__main__":
    sys.exit(run_light_tool(main))
