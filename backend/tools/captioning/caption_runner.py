"""The loop shared by the captioners (BLIP, GIT): list, skip, load, caption in batches, write, report.

Order matters for the user: the folder and the existing caption files are checked before any
model is loaded, so a wrong folder or a folder that is already fully captioned answers in a
second instead of after a multi-gigabyte download. Images whose caption file exists are skipped
unless `--overwrite` or `--append` is given (sd-scripts always overwrites). Unreadable images are
reported in the summary and skipped; they never stop the run.

The command line both captioners share is declared in backend/tools/flags/captioning.py.
Option ranges follow sd-scripts' captioners (finetune/make_captions.py, make_captions_by_git.py),
which have none of their own: a value they take is taken here too (`check_batch_size`: below 1 acts
as 1 there, so here, with a warning), and a value refused here says why (`MIN_MAX_LENGTH`).
"""

from __future__ import annotations

import argparse
import logging
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from PIL import Image

from backend.messages import msg
from backend.tools.captioning.tool_images import UnreadableImage, load_rgb
from backend.tools.cli.arg_checks import one_line_path
from backend.tools.cli.light_cli import InputError, ItemProgress, Summary, warn
from backend.tools.dataset.caption_files import (
    WriteMode,
    caption_path,
    images_to_write,
    merged_caption,
    normalize_extension,
    read_text,
    write_text,
)

logger = logging.getLogger(__name__)

CaptionBatch = Callable[[list[Image.Image]], list[str]]
# transformers' generate refuses a max_length at or below the length of the prompt it starts from
# (BLIP's and GIT's start token): sd-scripts' older transformers wrote empty captions instead.
MIN_MAX_LENGTH = 2


def exists() -> str:
    """Why an image with a caption file is skipped."""
    return msg("tool.caption_exists", "caption file exists (pass --overwrite to replace it or --append to add to it)")


def write_mode(args: argparse.Namespace) -> WriteMode:
    if getattr(args, "overwrite", False):
        return WriteMode.OVERWRITE
    if getattr(args, "append", False):
        return WriteMode.APPEND
    return WriteMode.SKIP


def check_batch_size(args: argparse.Namespace) -> None:
    """sd-scripts' captioners and tagger take any --batch_size; below 1 they caption one image at a time."""
    if args.batch_size < 1:
        warn(msg("tool.batch_size_below_one", "--batch_size {value} is taken as 1 (one image per model call), as "
                 "sd-scripts does", value=args.batch_size))
        args.batch_size = 1


def check_max_length(args: argparse.Namespace) -> None:
    if args.max_length < MIN_MAX_LENGTH:
        raise InputError(msg(
            "tool.max_length_too_small", "--max_length must be {minimum} or more, got {value}: the caption starts with "
            "one token, so a shorter maximum leaves no room for a word", minimum=MIN_MAX_LENGTH, value=args.max_length,
        ))


def check_model_id(args: argparse.Namespace) -> None:
    """A local model folder's path is one line of text (checked here: the model is looked for after torch loads)."""
    one_line_path(args.model_id, "--model_id")


def check_workers(args: argparse.Namespace) -> None:
    # As sd-scripts, whose DataLoader refuses a negative number of workers.
    workers = args.max_data_loader_n_workers
    if workers is not None and workers < 0:
        raise InputError(msg("tool.workers_negative", "--max_data_loader_n_workers must be 0 or more, got {value}",
                             value=workers))


def pick_device(requested: str | None) -> str:
    import torch

    if requested is None:
        return "cuda" if torch.cuda.is_available() else "cpu"
    try:
        device = torch.device(requested)
    except (RuntimeError, ValueError):
        raise InputError(msg("tool.caption_device_unknown", "--device {name} is not a torch device: use cuda, cuda:N, "
                             "mps or cpu", name=repr(requested))) from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise InputError(msg("tool.caption_device_no_cuda", "--device {name} was requested but torch sees no CUDA GPU: "
                             "use --device cpu", name=requested))
    return requested


def plan(args: argparse.Namespace) -> tuple[list[Path], Summary, str, WriteMode]:
    """(images to caption, summary with the skipped ones, caption extension, write mode), no model needed."""
    extension = normalize_extension(args.caption_extension)
    check_workers(args)
    mode = write_mode(args)
    summary = Summary()
    todo = images_to_write(args.train_data_dir, args.recursive, extension, mode,
                           lambda image: summary.skip(image, exists()))
    return todo, summary, extension, mode


def _loaded(images: list[Path], workers: int | None) -> Iterator[tuple[Path, Image.Image | str]]:
    def load(path: Path) -> Image.Image | str:
        try:
            return load_rgb(path)
        except UnreadableImage as exc:
            return str(exc)

    if not workers:
        yield from ((path, load(path)) for path in images)
        return
    with ThreadPoolExecutor(max_workers=workers) as pool:
        yield from zip(images, pool.map(load, images), strict=True)


def caption_images(
    images: Sequence[Path], caption_batch: CaptionBatch, summary: Summary, *, extension: str, mode: WriteMode,
    batch_size: int, workers: int | None, debug: bool, tool: str, progress: bool = True,
) -> Summary:
    """Caption `images` in batches and write the caption files; `summary` collects the outcome."""
    reporter = ItemProgress(len(images), tool, enabled=progress)
    batch: list[tuple[Path, Image.Image]] = []

    def flush() -> None:
        captions = caption_batch([image for _, image in batch])
        for (path, _), caption in zip(batch, captions, strict=True):
            _write(path, caption.strip(), summary, extension, mode, debug)
            reporter.advance(path)
        batch.clear()

    for path, loaded in _loaded(list(images), workers):
        if isinstance(loaded, str):
            summary.fail(path, loaded)
            reporter.advance(path)
            continue
        batch.append((path, loaded))
        if len(batch) >= batch_size:
            flush()
    if batch:
        flush()
    reporter.end()
    return summary


def _write(image: Path, caption: str, summary: Summary, extension: str, mode: WriteMode, debug: bool) -> None:
    target = caption_path(image, extension)
    if not caption:
        summary.fail(image, msg("tool.caption_empty", "the model produced an empty caption; nothing written"))
        return
    try:
        text = merged_caption(read_text(target), caption, mode)
    except InputError as exc:  # an existing caption that is not UTF-8: leave it alone
        summary.fail(target, str(exc))
        return
    if text is None:
        summary.skip(image, exists())
        return
    write_text(target, text)
    summary.written.append(str(target))
    if debug:
        print(f"{image}: {text}", flush=True)
