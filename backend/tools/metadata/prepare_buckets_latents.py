"""Bucket images and cache their latents for fine-tuning (sd-scripts' finetune/prepare_buckets_latents.py).

    python -m backend.tools.prepare_buckets_latents DIR IN.json OUT.json MODEL --batch_size N
        --max_resolution W,H --mixed_precision no|fp16|bf16 [--min_bucket_reso 256]
        [--max_bucket_reso 1024] [--bucket_reso_steps 64] [--bucket_no_upscale] [--flip_aug]
        [--full_path] [--v2] [--skip_existing] [--recursive] [--tokenizer_cache_dir DIR]

Every image of DIR gets `train_resolution: [w, h]` (its bucket) in OUT.json and its latents in
`<stem>_sd.npz` (`_sdxl.npz` for SDXL) beside it, with the flipped latents in the same file for
--flip_aug. Training with `--in_json OUT.json --train_data_dir DIR --cache_latents_to_disk` and
the same MODEL uses these buckets and files as they are.

As in sd-scripts, --batch_size must be 1 or more: its loop caches every bucket holding at least
--batch_size images, so 0 or less makes it stack an empty bucket and fail after loading the VAE.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from backend.families import declaration
from backend.messages import msg
from backend.tools.cli.arg_checks import input_folder, input_model, output_file
from backend.tools.flags.metadata import PREPARE_LATENTS
from backend.tools.flags.parser import build_parser as parser_of
from backend.tools.flags.parser import check_ranges
from backend.tools.metadata.metadata_io import (
    MetadataError,
    keyed_images,
    list_images,
    parse_max_resolution,
    read_metadata,
    run_metadata_tool,
    warn_foreign_stems,
    write_metadata,
)

logger = logging.getLogger(__name__)


def build_parser() -> argparse.ArgumentParser:
    return parser_of(PREPARE_LATENTS)  # the flags: backend/tools/flags/metadata.py


def check_model(path: str, v2: bool) -> str:
    """The model's family, after the same --v2 check the trainer makes."""
    from backend.models.detect import ModelMismatchError, check_model_flags, detect_model

    try:
        info = detect_model(path)
        check_model_flags(info, command=declaration(info.family).commands["finetune"], v2=v2, v_parameterization=False)
    except (ModelMismatchError, FileNotFoundError) as exc:
        raise MetadataError(str(exc)) from None
    return info.family


def check_numbers(args: argparse.Namespace) -> tuple[int, int]:
    """--batch_size (see the module docstring) and --max_resolution; returns the resolution."""
    check_ranges(args, PREPARE_LATENTS)  # --batch_size 1 or more
    return parse_max_resolution(args.max_resolution)


def main(argv: Sequence[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    # Everything that can be checked without torch first (and without reading any image).
    max_reso = check_numbers(args)
    folder = Path(args.train_data_dir)
    images = list_images(folder, args.recursive)
    if not images:
        raise MetadataError(msg("tool.no_images_in", "no images (png, jpg, jpeg, webp, bmp) in {folder}", folder=folder))
    keyed = keyed_images(images, args.full_path, args.recursive)
    metadata = read_metadata(args.in_json)
    input_model(args.model_name_or_path, "model_name_or_path")
    if args.tokenizer_cache_dir is not None:
        input_folder(args.tokenizer_cache_dir, "--tokenizer_cache_dir")
    # out_json may be in_json (the metadata is updated in place), never the model.
    output_file(args.out_json, "out_json", inputs=[("model_name_or_path", args.model_name_or_path)])
    warn_foreign_stems(metadata, keyed, folder, args.full_path)
    prepare(args, folder, images, keyed, metadata, max_reso)


def prepare(args: argparse.Namespace, folder: Path, images: list[Path], keyed: dict[str, Path],
            metadata: dict, max_reso: tuple[int, int]) -> None:
    """Bucket the checked images, write the metadata and encode the latents (the heavy part)."""
    import torch

    from backend.data.errors import DatasetError
    from backend.data.specs import DatasetSpec, SubsetSpec
    from backend.data.summary import format_bucket_table
    from backend.tools.metadata.metadata_latents import dataset_for, encode_latents, record_buckets

    family = check_model(args.model_name_or_path, args.v2)
    try:
        subset = SubsetSpec(image_dir=str(folder), metadata_file=args.out_json, flip_aug=args.flip_aug)
        spec = DatasetSpec(
            subsets=(subset,), resolution=max_reso, batch_size=args.batch_size, enable_bucket=True,
            min_bucket_reso=args.min_bucket_reso, max_bucket_reso=args.max_bucket_reso,
            bucket_reso_steps=args.bucket_reso_steps, bucket_no_upscale=args.bucket_no_upscale,
        )
    except DatasetError as exc:
        raise MetadataError(str(exc)) from None

    logger.info(msg("tool.images_found", "found {count} images in {folder}", count=len(images), folder=folder))
    report = record_buckets(metadata, keyed, spec)
    for problem in report.skipped:
        logger.warning(msg("tool.no_bucket", "no bucket (left out): {problem}", problem=problem))
    if not report.bucketed:
        raise MetadataError(msg("tool.nothing_bucketed", "none of the {count} images in {folder} could be bucketed "
                                "(see above)", count=len(images), folder=folder))
    write_metadata(metadata, args.out_json)

    dataset = dataset_for(spec, report.bucketed)
    print(format_bucket_table(dataset), flush=True)
    dtype = {"no": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}[args.mixed_precision]
    encode_latents(dataset, args.model_name_or_path, args.batch_size, dtype, args.tokenizer_cache_dir, family)
    if report.skipped:
        logger.warning(msg("tool.images_left_out", "{count} of {total} images were left out (see above)",
                           count=len(report.skipped), total=len(images)))


if __name__ == "__main__":
    sys.exit(run_metadata_tool(main))
