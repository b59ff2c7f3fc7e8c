"""Merge LoRAs into a checkpoint, or into one LoRA (sd-scripts' networks/merge_lora.py flags).

    python -m backend.tools.merge_lora --sd_model CKPT --models A B --ratios 0.7 0.3 --save_to OUT
        [--precision float|fp16|bf16] [--save_precision float|fp16|bf16] [--device cpu|cuda]
    python -m backend.tools.merge_lora --models A B --ratios 0.7 0.3 --save_to OUT.safetensors
        (--concat | [--new_rank R] [--new_conv_rank C]) [--save_precision ...] [--no_metadata]

With --sd_model (a diffusers folder or single file) the LoRAs (LoRA, LoCon, LoHa, LoKr) are baked
into its weights and saved through the family's spec: a single file in the original layout (FLUX.1:
the BFL transformer file, which holds no text encoders: their modules are reported as not merged), or
a diffusers folder when --save_to has no model suffix and the input was a folder. Without it the LoRAs are
merged into one LoRA: --concat stacks the ranks (exact), otherwise the summed deltas are
re-factorised by SVD to --new_rank (default: the largest input rank), as svd_merge_lora does.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

from backend.messages import msg
from backend.tools.cli.arg_checks import WEIGHT_SUFFIXES, input_file, input_model, output_file, output_folder
from backend.tools.flags.lora import MERGE_LORA
from backend.tools.flags.parser import build_parser as parser_of
from backend.tools.flags.parser import check_ranges
from backend.tools.lora.tool_cli import ToolError, run_tool


def build_parser() -> argparse.ArgumentParser:
    return parser_of(MERGE_LORA)  # the flags: backend/tools/flags/lora.py


def check_args(args: argparse.Namespace) -> list[float]:
    """Everything that can be checked without torch; returns one ratio per model.

    Stricter than sd-scripts' merge_lora.py/svd_merge_lora.py (which check only the number of ratios)
    where their result is broken: a NaN or infinite ratio makes every merged weight NaN or infinite,
    and a rank below 1 writes modules of rank 0 (alpha 0: loaders divide by it)."""
    ratios = args.ratios if args.ratios is not None else [1.0] * len(args.models)
    if len(ratios) != len(args.models):
        raise ToolError(msg("tool.merge_ratio_count", "{models} models but {ratios} ratios; give one ratio per model",
                            models=len(args.models), ratios=len(ratios)))
    check_ranges(args, MERGE_LORA)  # finite ratios, ranks of 1 or more
    if args.concat and args.new_rank:
        raise ToolError(msg("tool.merge_concat_new_rank",
                            "--concat and --new_rank exclude each other (concat keeps the sum of the ranks)"))
    inputs = [("--models", path) for path in args.models]
    for path in args.models:
        input_file(path, "--models", suffixes=WEIGHT_SUFFIXES, what=msg("tool.what_lora_file", "LoRA file"))
    if not args.sd_model:
        output_file(args.save_to, "--save_to", suffixes=WEIGHT_SUFFIXES, inputs=inputs)
        return ratios
    model = input_model(args.sd_model, "--sd_model")
    inputs.append(("--sd_model", args.sd_model))
    if Path(args.save_to).suffix.lower() in WEIGHT_SUFFIXES:
        output_file(args.save_to, "--save_to", inputs=inputs)
    elif not model.is_dir():
        raise ToolError(msg("tool.merge_single_file_to_folder", "--sd_model {model} is a single file: save the merged "
                            "model as .safetensors or .ckpt (--save_to {path} names a folder)",
                            model=args.sd_model, path=args.save_to))
    else:
        check_model_folder(output_folder(args.save_to, "--save_to", inputs=inputs), "--save_to")
    return ratios


def check_model_folder(folder: Path, flag: str) -> None:
    """A diffusers output replaces its folder: only a new or empty folder or an earlier model folder."""
    if folder.is_dir() and any(folder.iterdir()) and not (folder / "model_index.json").is_file():
        raise ToolError(msg("tool.merge_output_folder_not_model", "{flag} {folder} exists and holds other files than a "
                            "diffusers model; choose a new folder (it would be replaced as a whole)",
                            flag=flag, folder=folder))


def main(argv: Sequence[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    ratios = check_args(args)
    from backend.tools.lora.lora_merge import merge_files  # torch: only once the arguments are sound

    merge_files(args, ratios)


if __name__ == "__main__":
    raise SystemExit(run_tool(main))
