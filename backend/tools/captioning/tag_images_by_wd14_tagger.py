"""Tag images with a WD14 tagger (sd-scripts' finetune/tag_images_by_wd14_tagger.py), always through ONNX.

    python -m backend.tools.tag_images_by_wd14_tagger DIR [--repo_id SmilingWolf/wd-v1-4-convnext-tagger-v2]
        [--model_dir wd14_tagger_model] [--force_download] [--thresh 0.35] [--general_threshold T]
        [--character_threshold T] [--batch_size 1] [--caption_extension .txt] [--caption_separator ", "]
        [--undesired_tags a,b] [--always_first_tags 1girl,1boy] [--remove_underscore]
        [--character_tags_first] [--use_rating_tags | --use_rating_tags_as_last_tag]
        [--overwrite | --append_tags] [--frequency_tags] [--recursive] [--debug] [--onnx]

The model (model.onnx and selected_tags.csv) is downloaded once into
`<model_dir>/<owner>_<name>` and reused; a --model_dir that holds both files is used directly
(backend/tools/captioning/hub_models.py). Unlike sd-scripts, an existing tag file is kept unless --overwrite
(replace it) or --append_tags (add the new tags that are not in it yet) is given. --onnx is
accepted for sd-scripts command lines; the TensorFlow path does not exist here. As in sd-scripts,
any --batch_size is taken (below 1: one image at a time, with a warning) and any threshold (below 0:
every tag of that kind).
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from backend.messages import msg
from backend.tools.captioning.caption_runner import check_batch_size
from backend.tools.captioning.hub_models import tagger_folder
from backend.tools.captioning.tool_images import UnreadableImage, load_rgb
from backend.tools.captioning.wd14_tagger import (
    TaggerModel,
    TagOptions,
    TagTable,
    choose_tags,
    preprocess,
    read_tag_table,
    split_tag_list,
    undesired_set,
)
from backend.tools.cli.light_cli import InputError, ItemProgress, Summary, run_light_tool
from backend.tools.dataset.caption_files import (
    WriteMode,
    caption_path,
    images_to_write,
    normalize_extension,
    read_text,
    write_text,
)
from backend.tools.flags.captioning import TAG_IMAGES
from backend.tools.flags.parser import build_parser as parser_of

logger = logging.getLogger(__name__)

def exists() -> str:
    """Why an image with a tag file is skipped."""
    return msg("tool.tag_file_exists", "tag file exists (pass --overwrite to replace it or --append_tags to add to it)")


def build_parser() -> argparse.ArgumentParser:
    return parser_of(TAG_IMAGES)  # the flags: backend/tools/flags/captioning.py


def check_args(args: argparse.Namespace) -> TagOptions:
    """The option checks, before any image or model is looked at; returns the tag choice options."""
    check_batch_size(args)
    return tag_options(args)


def tag_options(args: argparse.Namespace) -> TagOptions:
    general = args.thresh if args.general_threshold is None else args.general_threshold
    character = args.thresh if args.character_threshold is None else args.character_threshold
    rating = "first" if args.use_rating_tags else "last" if args.use_rating_tags_as_last_tag else None
    return TagOptions(
        general_threshold=general,
        character_threshold=character,
        undesired=undesired_set(split_tag_list(args.undesired_tags, args.caption_separator)),
        always_first=tuple(split_tag_list(args.always_first_tags, args.caption_separator)),
        remove_underscore=args.remove_underscore,
        character_tags_first=args.character_tags_first,
        rating=rating,
    )


def merged_tags(existing: str | None, new: list[str], mode: WriteMode, separator: str) -> list[str] | None:
    """Tags to write given an existing tag file's text, or None to leave it alone."""
    if existing is None or mode is WriteMode.OVERWRITE:
        return new
    if mode is WriteMode.SKIP:
        return None
    old = split_tag_list(existing, separator)
    return old + [t for t in new if t not in old]


class TagRun:
    def __init__(self, args: argparse.Namespace, extension: str, mode: WriteMode, summary: Summary) -> None:
        self.args, self.extension, self.mode, self.summary = args, extension, mode, summary
        self.options = tag_options(args)
        self.frequency: Counter[str] = Counter()

    def load(self) -> tuple[TaggerModel, TagTable]:
        folder = tagger_folder(self.args.repo_id, self.args.model_dir, self.args.force_download)
        table = read_tag_table(folder / "selected_tags.csv")
        model = TaggerModel(folder / "model.onnx")
        if model.num_outputs != len(table):
            raise InputError(msg(
                "tool.tagger_outputs_mismatch", "the tagger in {folder} has {outputs} outputs but its selected_tags.csv "
                "lists {tags} tags: download it again with --force_download", folder=folder,
                outputs=model.num_outputs, tags=len(table),
            ))
        return model, table

    def run(self, images: list[Path]) -> None:
        model, table = self.load()
        batch_size = self.args.batch_size
        if model.fixed_batch is not None and model.fixed_batch != batch_size:
            logger.warning(msg("tool.tagger_fixed_batch", "the tagger takes batches of exactly {size} images: using "
                               "--batch_size {size}", size=model.fixed_batch))
            batch_size = model.fixed_batch
        progress = ItemProgress(len(images), "tag_images_by_wd14_tagger", enabled=not self.args.no_progress)
        batch: list[tuple[Path, np.ndarray]] = []
        for path in images:
            try:
                batch.append((path, preprocess(load_rgb(path), model.size)))
            except UnreadableImage as exc:
                self.summary.fail(path, str(exc))
                progress.advance(path)
            if len(batch) >= batch_size:
                self._tag_batch(model, table, batch, progress)
        if batch:
            self._tag_batch(model, table, batch, progress)
        progress.end()

    def _tag_batch(self, model: TaggerModel, table: TagTable, batch: list[tuple[Path, np.ndarray]],
                   progress: ItemProgress) -> None:
        probs = model.predict(np.stack([array for _, array in batch]))
        for (path, _), image_probs in zip(batch, probs, strict=True):
            self._write(path, choose_tags(image_probs, table, self.options).tags)
            progress.advance(path)
        batch.clear()

    def _write(self, image: Path, tags: list[str]) -> None:
        target = caption_path(image, self.extension)
        try:
            existing = read_text(target)
        except InputError as exc:
            self.summary.fail(target, str(exc))
            return
        final = merged_tags(existing, tags, self.mode, self.args.caption_separator)
        if final is None:
            self.summary.skip(image, exists())
            return
        write_text(target, self.args.caption_separator.join(final))
        self.summary.written.append(str(target))
        self.frequency.update(tags)
        if self.args.debug:
            print(f"{image}: {self.args.caption_separator.join(tags)}", flush=True)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    check_args(args)
    extension = normalize_extension(args.caption_extension)
    mode = WriteMode.OVERWRITE if args.overwrite else WriteMode.APPEND if args.append_tags else WriteMode.SKIP
    summary = Summary()
    run = TagRun(args, extension, mode, summary)  # checks the options before anything is loaded
    todo = images_to_write(args.train_data_dir, args.recursive, extension, mode,
                           lambda image: summary.skip(image, exists()))
    if todo:
        run.run(todo)
    if args.frequency_tags:
        print(msg("tool.tag_frequencies", "Tag frequencies:"))
        for tag, count in run.frequency.most_common():
            print(f"{tag}: {count}")
    summary.print()
    return 0


if __name__ == "__main__":
    sys.exit(run_light_tool(main))
