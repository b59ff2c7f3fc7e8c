"""Merge LoRAs into a checkpoint, or into one LoRA (sd-scripts' networks/merge_lora.py flags).

    python -m backend.tools.merge_lora --sd_model CKPT --models A B --ratios 0.7 0.3 --save_to OUT
        [--precision float|fp16|bf16] [--save_precision float|fp16|bf16] [--device cpu|cuda]
    python -m backend.tools.merge_lora --models A B --ratios 0.7 0.3 --save_to OUT.safetensors
        (--concat | [--new_rank R] [--new_conv_rank C]) [--save_precision ...] [--no_metadata]

With --sd_model (SD 1.x/2.x/SDXL, diffusers folder or single file) the LoRAs (LoRA, LoCon, LoHa,
LoKr) are baked into its weights and saved as a single file in the original layout (or a diffusers
folder when --save_to has no model suffix and the input was a folder). Without it the LoRAs are
merged into one LoRA: --concat stacks the ranks (exact), otherwise the summed deltas are
re-factorised by SVD to --new_rank (default: the largest input rank), as svd_merge_lora does.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from pathlib import Path

import torch

from backend.models.registry import get_spec
from backend.models.spec import ModelSpecification
from backend.tools.lora_files import LoraFile, load_lora, save_lora
from backend.tools.merge_into_model import check_family, detect_checkpoint, load_for_merge, merge_into
from backend.tools.merge_loras import check_mergeable, concat_loras, default_rank, svd_merge_loras
from backend.tools.tool_cli import PRECISIONS, ToolError, dtype_of, run_tool
from backend.training.metadata import minimum_metadata


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m backend.tools.merge_lora", description=__doc__.split("\n")[0])
    parser.add_argument("--sd_model", default=None, help="checkpoint to bake the LoRAs into (omit to merge LoRAs)")
    parser.add_argument("--models", nargs="+", required=True, help="LoRA files to merge")
    parser.add_argument("--ratios", nargs="+", type=float, default=None, help="one ratio per model (default 1.0)")
    parser.add_argument("--save_to", required=True, help="output file (or diffusers folder for a folder --sd_model)")
    parser.add_argument("--precision", choices=tuple(PRECISIONS), default="float", help="precision of the merge")
    parser.add_argument("--save_precision", choices=tuple(PRECISIONS), default=None,
                        help="precision of the saved file (default: the checkpoint's, float for LoRAs)")
    parser.add_argument("--concat", action="store_true", help="LoRA output: concatenate ranks instead of SVD")
    parser.add_argument("--new_rank", type=int, default=None, help="LoRA output (SVD): rank of the result")
    parser.add_argument("--new_conv_rank", type=int, default=None, help="LoRA output (SVD): rank of 3x3 convs")
    parser.add_argument("--no_metadata", action="store_true", help="LoRA output: keep only the minimal ss_* keys")
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    return parser


def merge_into_checkpoint(args: argparse.Namespace, loras: list[LoraFile], ratios: list[float]) -> None:
    info = detect_checkpoint(args.sd_model)
    for lora in loras:  # before any weights are read
        check_family(lora, info.family, f"{args.sd_model} ({info.evidence})")
    components = load_for_merge(info, dtype_of(args.precision) or torch.float32, args.save_to)
    for lora, ratio in zip(loras, ratios, strict=True):
        report = merge_into(components, lora, ratio, args.device)
        print(f"{lora.path}: merged {report.merged} modules at ratio {ratio}")
        if report.unmatched:
            print(f"  {len(report.unmatched)} modules match no layer and were skipped, e.g. {report.unmatched[0]}")
    spec: ModelSpecification = get_spec(info.family)
    merged_from = ", ".join(f"{Path(lora.path).name}:{ratio}" for lora, ratio in zip(loras, ratios, strict=True))
    spec.save(components, args.save_to, dtype=dtype_of(args.save_precision),
              metadata={"modelspec.merged_from": merged_from})
    print(f"saved {args.save_to}")


def merge_into_lora(args: argparse.Namespace, loras: list[LoraFile], ratios: list[float]) -> None:
    check_mergeable(loras)
    if args.concat:
        modules = concat_loras(loras, ratios)
        method = "concat"
    else:
        rank = args.new_rank or default_rank(loras)
        modules = svd_merge_loras(loras, ratios, rank, args.new_conv_rank or rank, args.device)
        method = f"svd rank {rank}"
    ranks = [int(m["lora_down.weight"].shape[0]) for m in modules.values()]
    first = loras[0].metadata
    metadata = minimum_metadata(first) if args.no_metadata else dict(first)
    metadata["ss_network_dim"] = metadata["ss_network_alpha"] = str(max(ranks))
    metadata["ss_network_module"] = "networks.lora"
    metadata.pop("ss_network_args", None)
    if not args.no_metadata:
        merged = {Path(lora.path).name: ratio for lora, ratio in zip(loras, ratios, strict=True)}
        metadata["ss_training_comment"] = f"merged ({method}) from {json.dumps(merged)}"
    save_lora(args.save_to, modules, metadata, dtype_of(args.save_precision))
    print(f"merged {len(loras)} LoRAs ({method}) into {len(modules)} modules; saved {args.save_to}")


def main(argv: Sequence[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    ratios = args.ratios if args.ratios is not None else [1.0] * len(args.models)
    if len(ratios) != len(args.models):
        raise ToolError(f"{len(args.models)} models but {len(ratios)} ratios; give one ratio per model")
    if args.concat and args.new_rank:
        raise ToolError("--concat and --new_rank exclude each other (concat keeps the sum of the ranks)")
    loras = [load_lora(path) for path in args.models]
    with torch.no_grad():
        if args.sd_model:
            merge_into_checkpoint(args, loras, ratios)
        else:
            merge_into_lora(args, loras, ratios)


if __name__ == "__main__":
    raise SystemExit(run_tool(main))
