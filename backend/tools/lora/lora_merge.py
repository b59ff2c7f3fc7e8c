"""Merging LoRA files into a checkpoint or into one LoRA: the work behind `python -m
backend.tools.merge_lora` (whose docstring describes the modes). The inputs must hold finite
weights, and a result with NaN/inf weights is never written (`lora_files.check_finite_result`,
`merge_into_model.check_merged_layers`).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from backend.families.loaded import get_spec
from backend.messages import msg
from backend.models.spec import ModelSpecification
from backend.tools.lora.lora_files import LoraFile, check_finite_lora, load_lora, save_lora
from backend.tools.lora.merge_into_model import (
    check_family,
    check_merged_layers,
    detect_checkpoint,
    load_for_merge,
    merge_into,
    text_encoder_modules,
    without_text_encoders_note,
)
from backend.tools.lora.merge_loras import check_mergeable, concat_loras, default_rank, svd_merge_loras
from backend.tools.lora.tool_cli import ToolError, check_device, dtype_of
from backend.training.metadata import minimum_metadata


def merge_into_checkpoint(args: argparse.Namespace, loras: list[LoraFile], ratios: list[float]) -> None:
    info = detect_checkpoint(args.sd_model)
    spec: ModelSpecification = get_spec(info.family)
    for lora in loras:  # before any weights are read
        check_family(lora, info.family, f"{args.sd_model} ({info.evidence})")
    refusal = spec.save_refusal(args.save_to)
    if refusal:
        raise ToolError(refusal)
    components = load_for_merge(info, dtype_of(args.precision) or torch.float32, args.save_to)
    merged_layers: dict[str, torch.nn.Module] = {}
    for lora, ratio in zip(loras, ratios, strict=True):
        report = merge_into(components, lora, ratio, args.device)
        merged_layers.update(report.layers)
        print(msg("tool.merged_lora", "{path}: merged {count} modules at ratio {ratio}",
                  path=lora.path, count=report.merged, ratio=ratio))
        # A model loaded without text encoders (FLUX.1's transformer file): their modules are said apart.
        absent = text_encoder_modules(report.unmatched) if not components.text_encoders else []
        if absent:
            print("  " + without_text_encoders_note(components, len(absent)))
        unmatched = [name for name in report.unmatched if name not in absent]
        if unmatched:
            print(msg("tool.merge_unmatched", "  {count} modules match no layer and were skipped, for example {first}",
                      count=len(unmatched), first=unmatched[0]))
    check_merged_layers(merged_layers, dtype_of(args.save_precision), args.save_to)
    merged_from = ", ".join(f"{Path(lora.path).name}:{ratio}" for lora, ratio in zip(loras, ratios, strict=True))
    spec.save(components, args.save_to, dtype=dtype_of(args.save_precision),
              metadata={"modelspec.merged_from": merged_from})
    print(msg("tool.saved", "saved {path}", path=args.save_to))


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
    print(msg("tool.merged_loras", "merged {count} LoRAs ({method}) into {modules} modules; saved {path}",
              count=len(loras), method=method, modules=len(modules), path=args.save_to))


@torch.no_grad()
def merge_files(args: argparse.Namespace, ratios: list[float]) -> None:
    """Read the --models LoRAs and merge them as the checked arguments say."""
    check_device(args.device)
    loras = [load_lora(path) for path in args.models]
    for lora in loras:
        check_finite_lora(lora, "--models")
    if args.sd_model:
        merge_into_checkpoint(args, loras, ratios)
    else:
        merge_into_lora(args, loras, ratios)
