"""Caption images with BLIP (sd-scripts' finetune/make_captions.py, through transformers).

    python -m backend.tools.make_captions DIR [--model_id Salesforce/blip-image-captioning-large]
        [--batch_size 1] [--beam_search --num_beams 1] [--top_p 0.9] [--max_length 75] [--min_length 5]
        [--caption_extension .caption] [--seed 42] [--recursive] [--overwrite | --append] [--device cuda]

Writes `<image stem><caption_extension>` beside each image. sd-scripts loads Salesforce's original
BLIP checkpoint with its own copy of the BLIP code; we load the same weights as published for
transformers (`BlipForConditionalGeneration`, default the large captioning model kohya_ss uses),
so no model code is vendored. Without --beam_search captions are sampled (nucleus sampling with
--top_p), as in sd-scripts; --seed makes them repeatable. Existing caption files are kept unless
--overwrite or --append is given.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from backend.messages import msg
from backend.tools.captioning.caption_runner import CaptionBatch
from backend.tools.captioning.hf_captioner import check_common_args, load_captioner, run_captioner
from backend.tools.cli.light_cli import InputError, run_light_tool, warn
from backend.tools.flags.captioning import MAKE_CAPTIONS
from backend.tools.flags.parser import build_parser as parser_of


def build_parser() -> argparse.ArgumentParser:
    return parser_of(MAKE_CAPTIONS)  # the flags: backend/tools/flags/captioning.py


def check_args(args: argparse.Namespace) -> None:
    """The option checks, before any image or model is looked at. As sd-scripts' make_captions.py:
    --num_beams is used (and must be 1 or more) only with --beam_search, --top_p (0 to 1, the range
    transformers takes) only without it; see `hf_captioner` for the rest."""
    check_common_args(args)
    if args.beam_search and args.num_beams < 1:
        raise InputError(msg("tool.num_beams_below_one", "--num_beams must be 1 or more with --beam_search, got "
                             "{value}", value=args.num_beams))
    if not args.beam_search and not 0.0 <= args.top_p <= 1.0:
        raise InputError(msg("tool.top_p_range", "--top_p must be between 0 and 1, got {value}", value=args.top_p))
    if args.min_length > args.max_length:
        warn(msg("tool.min_length_above_max", "--min_length {min_length} is above --max_length {max_length}: every "
                 "caption runs to {max_length} tokens", min_length=args.min_length, max_length=args.max_length))


def generate_options(args: argparse.Namespace) -> dict[str, object]:
    """transformers' generate options for the chosen decoding, as sd-scripts' make_captions.py sets them."""
    if args.beam_search:
        options: dict[str, object] = dict(do_sample=False, num_beams=args.num_beams, repetition_penalty=1.0)
    else:  # BLIP's own sampling settings
        options = dict(do_sample=True, top_p=args.top_p, repetition_penalty=1.1)
    options.update(max_length=args.max_length, min_length=args.min_length)
    return options


def load_blip(args: argparse.Namespace, device: str) -> CaptionBatch:
    caption = load_captioner(args.model_id, "BLIP", "BlipForConditionalGeneration", "BlipProcessor", device)
    import torch

    torch.manual_seed(args.seed)  # after loading, as before: sampled captions repeat for a given --seed
    options = generate_options(args)
    return lambda batch: caption(batch, **options)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    check_args(args)
    return run_captioner(args, "make_captions", lambda device: load_blip(args, device))


if __name__ == "__main__":
    sys.exit(run_light_tool(main))
