"""What the transformers captioners (BLIP, GIT) share around the model: checks, loading, the run.

Each captioner keeps only what differs: its transformers classes, its generation options and what
it does to a caption afterwards. Loading here resolves the model first (`hub_models`: a local
folder, the cache or a download, with a clear error offline), so a missing model fails before
transformers is imported; a folder transformers cannot read is an `InputError`, not a traceback.
The listing, batching, writing and progress are `caption_runner`'s.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable

from PIL import Image

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
from backend.tools.cli.light_cli import InputError

# A loaded captioner: PIL images and transformers' generate options in, one caption per image out.
GenerateBatch = Callable[..., list[str]]


def check_common_args(args: argparse.Namespace) -> None:
    """The option checks both captioners make, before any image or model is looked at (see `caption_runner`)."""
    check_batch_size(args)
    check_max_length(args)
    check_workers(args)
    check_model_id(args)


def load_captioner(model_id: str, what: str, model_class: str, processor_class: str, device: str) -> GenerateBatch:
    """The model `model_id` (`what`: its name in messages, BLIP or GIT) with its processor, on `device`.

    `model_class` and `processor_class` are names in `transformers`, looked up only once the model
    is found, so that a model that is not available fails before transformers is imported.
    """
    folder = resolve_pretrained(model_id, what)
    import transformers

    try:
        processor = getattr(transformers, processor_class).from_pretrained(folder)
        model = getattr(transformers, model_class).from_pretrained(folder).to(device).eval()
    except (OSError, ValueError, KeyError) as exc:  # incomplete or foreign folder
        raise InputError(msg("tool.captioner_unloadable", "cannot load the model in {folder}: {error}",
                             folder=folder, error=exc)) from None

    def caption(images: list[Image.Image], **generate: object) -> list[str]:
        import torch

        inputs = processor(images=images, return_tensors="pt").to(device)
        with torch.no_grad():
            ids = model.generate(pixel_values=inputs["pixel_values"], **generate)
        return processor.batch_decode(ids, skip_special_tokens=True)

    return caption


def run_captioner(args: argparse.Namespace, tool: str, load: Callable[[str], CaptionBatch]) -> int:
    """List the images to caption and, when there are any, `load(device)` the model and caption them.

    The folder and the existing caption files are checked before `load` is called (`plan`), so a
    fully captioned folder never loads a model. The summary is printed either way.
    """
    images, summary, extension, mode = plan(args)
    if images:
        caption_images(
            images, load(pick_device(args.device)), summary, extension=extension, mode=mode,
            batch_size=args.batch_size, workers=args.max_data_loader_n_workers, debug=args.debug, tool=tool,
            progress=not args.no_progress,
        )
    summary.print()
    return 0
