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

from backend.tools.caption_runner import (
    CaptionBatch,
    add_common_arguments,
    caption_images,
    check_positive,
    pick_device,
    plan,
)
from backend.tools.hub_models import resolve_pretrained
from backend.tools.light_cli import InputError, run_light_tool

DEFAULT_MODEL = "Salesforce/blip-image-captioning-large"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m backend.tools.make_captions",
                                     description="Caption images with BLIP.")
    add_common_arguments(parser, DEFAULT_MODEL, default_max_length=75)
    parser.add_argument("--beam_search", action="store_true", help="beam search (default: nucleus sampling)")
    parser.add_argument("--num_beams", type=int, default=1, help="beams for --beam_search")
    parser.add_argument("--top_p", type=float, default=0.9, help="top_p of nucleus sampling")
    parser.add_argument("--min_length", type=int, default=5, help="shortest caption, in tokens")
    parser.add_argument("--seed", type=int, default=42, help="seed for sampling")
    return parser


def load_blip(model_id: str, device: str) -> CaptionBatch:
    """A function captioning a batch of PIL images; generation options are bound by the caller."""
    # Resolved first: a model that is not available fails before transformers is imported.
    folder = resolve_pretrained(model_id, "BLIP captioning")
    from transformers import BlipForConditionalGeneration, BlipProcessor

    try:
        processor = BlipProcessor.from_pretrained(folder)
        model = BlipForConditionalGeneration.from_pretrained(folder).to(device).eval()
    except (OSError, ValueError, KeyError) as exc:  # incomplete or foreign folder
        raise InputError(f"cannot load the model in {folder}: {exc}") from None

    def caption(images: list, **generate: object) -> list[str]:
        import torch

        inputs = processor(images=images, return_tensors="pt").to(device)
        with torch.no_grad():
            ids = model.generate(pixel_values=inputs["pixel_values"], **generate)
        return processor.batch_decode(ids, skip_special_tokens=True)

    return caption


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    check_positive(args, "batch_size", "num_beams", "max_length")
    if not 0.0 < args.top_p <= 1.0:
        raise InputError(f"--top_p must be above 0 and at most 1, got {args.top_p}")
    if args.min_length < 0 or args.min_length > args.max_length:
        raise InputError(f"--min_length must be between 0 and --max_length ({args.max_length}), got {args.min_length}")
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
