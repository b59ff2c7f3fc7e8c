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
from backend.tools.cli.light_cli import InputError, run_light_tool, warn
from backend.tools.flags.captioning import MAKE_CAPTIONS
from backend.tools.flags.parser import build_parser as parser_of


def build_parser() -> argparse.ArgumentParser:
    return parser_of(MAKE_CAPTIONS)  # the flags: backend/tools/flags/captioning.py


def load_blip(model_id: str, device: str) -> CaptionBatch:
    """A function captioning a batch of PIL images; generation options are bound by the caller."""
    # Resolved first: a model that is not available fails before transformers is imported.
    folder = resolve_pretrained(model_id, "BLIP")
    from transformers import BlipForConditionalGeneration, BlipProcessor

    try:
        processor = BlipProcessor.from_pretrained(folder)
        model = BlipForConditionalGeneration.from_pretrained(folder).to(device).eval()
    except (OSError, ValueError, KeyError) as exc:  # incomplete or foreign folder
        raise InputError(msg("tool.captioner_unloadable", "cannot load the model in {folder}: {error}",
                             folder=folder, error=exc)) from None

    def caption(images: list, **generate: object) -> list[str]:
        import torch

        inputs = processor(images=images, return_tensors="pt").to(device)
        with torch.no_grad():
            ids = model.generate(pixel_values=inputs["pixel_values"], **generate)
        return processor.batch_decode(ids, skip_special_tokens=True)

    return caption


def check_args(args: argparse.Namespace) -> None:
    """The option checks, before any image or model is looked at. As sd-scripts' make_captions.py:
    --num_beams is used (and must be 1 or more) only with --beam_search, --top_p (0 to 1, the range
    transformers takes) only without it; see `caption_runner` for the rest."""
    check_batch_size(args)
    check_max_length(args)
    check_workers(args)
    check_model_id(args)
    if args.beam_search and args.num_beams < 1:
        raise InputError(msg("tool.num_beams_below_one", "--num_beams must be 1 or more with --beam_search, got "
                             "{value}", value=args.num_beams))
    if not args.beam_search and not 0.0 <= args.top_p <= 1.0:
        raise InputError(msg("tool.top_p_range", "--top_p must be between 0 and 1, got {value}", value=args.top_p))
    if args.min_length > args.max_length:
        warn(msg("tool.min_length_above_max", "--min_length {min_length} is above --max_length {max_length}: every "
                 "caption runs to {max_length} tokens", min_length=args.min_length, max_length=args.max_length))


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    check_args(args)
    images, summary, extension, mode = plan(args)
    if images:
        import torch

        device = pick_device(args.device)
        caption = load_blip(args.model_id, device)
        torch.manual_seed(args.seed)
        if args.beam_search:
            options = dict(do_sample=False, num_beams=args.num_beams, repetition_penalty=1.0)
        else:  # BLIP's own sampling settings
            options = dict(do_sample=True, top_p=args.top_p, repetition_penalty=1.1)
        options.update(max_length=args.max_length, min_length=args.min_length)
        caption_images(
            images, lambda batch: caption(batch, **options), summary, extension=extension, mode=mode,
            batch_size=args.batch_size, workers=args.max_data_loader_n_workers, debug=args.debug,
            tool="make_captions", progress=not args.no_progress,
        )
    summary.print()
    return 0


if __name__ == "__main__":
    sys.exit(run_light_tool(main))
