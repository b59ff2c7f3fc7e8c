"""Resize a LoRA/LoCon file to a lower rank (sd-scripts' networks/resize_lora.py flags).

    python -m backend.tools.resize_lora --model IN --save_to OUT --new_rank R [--new_conv_rank C]
        [--dynamic_method sv_ratio|sv_fro|sv_cumulative --dynamic_param P]
        [--save_precision float|fp16|bf16] [--device cpu|cuda] [--verbose]

Each module's effective delta `scale * up @ down` is factorised by SVD and truncated; the new alpha
is `scale * new_rank`, so the kept part keeps its strength. The SVD runs on the two small factors
(see `lowrank.factorize_product`), not on the full delta.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import statistics
from collections.abc import Sequence
from dataclasses import dataclass

import torch

from backend.tools.lora_files import (
    LoraFile,
    load_lora,
    lora_module,
    lora_rank,
    lora_scale,
    module_algorithm,
    save_lora,
)
from backend.tools.lowrank import DYNAMIC_METHODS, factorize_product
from backend.tools.tool_cli import PRECISIONS, ToolError, dtype_of, run_tool


@dataclass
class ModuleReport:
    name: str
    old_rank: int
    new_rank: int
    fro_retained: float


@dataclass
class ResizeOptions:
    new_rank: int
    new_conv_rank: int | None = None
    dynamic_method: str | None = None
    dynamic_param: float | None = None
    device: str = "cpu"


def resize_modules(lora: LoraFile, options: ResizeOptions) -> tuple[dict[str, dict[str, torch.Tensor]], list[ModuleReport]]:
    refused = sorted({module_algorithm(p) for p in lora.modules.values()} - {"LoRA", "LoCon"})
    if refused:
        raise ToolError(
            f"{lora.path} holds {', '.join(refused)} modules; resize applies to LoRA/LoCon only"
        )
    out: dict[str, dict[str, torch.Tensor]] = {}
    reports = []
    for name, params in lora.modules.items():
        down, up = params["lora_down.weight"], params["lora_up.weight"]
        is_conv = down.dim() == 4 and tuple(down.shape[2:]) != (1, 1)
        target = options.new_conv_rank if is_conv and options.new_conv_rank else options.new_rank
        scale = lora_scale(params)
        low = factorize_product(
            up.to(options.device), down.to(options.device), min(target, lora_rank(params)),
            options.dynamic_method, options.dynamic_param,
        )
        out[name] = lora_module(low.up.cpu(), low.down.cpu(), scale * low.rank)
        reports.append(ModuleReport(name, lora_rank(params), low.rank, low.fro_retained))
    return out, reports


def resized_metadata(metadata: dict[str, str], options: ResizeOptions, reports: list[ModuleReport]) -> dict[str, str]:
    meta = dict(metadata)
    old_dim = meta.get("ss_network_dim", str(max((r.old_rank for r in reports), default=0)))
    comment = meta.get("ss_training_comment", "")
    if options.dynamic_method:
        meta["ss_network_dim"] = meta["ss_network_alpha"] = "Dynamic"
        note = f"Dynamic resize with {options.dynamic_method}: {options.dynamic_param} from {old_dim}"
    else:
        meta["ss_network_dim"] = str(options.new_rank)
        # Files without a numeric alpha/dim recorded keep what they have.
        with contextlib.suppress(KeyError, ValueError, ZeroDivisionError):
            meta["ss_network_alpha"] = str(float(meta["ss_network_alpha"]) * options.new_rank / float(old_dim))
        note = f"dimension is resized from {old_dim} to {options.new_rank}"
        _resize_conv_args(meta, options)
    meta["ss_training_comment"] = f"{note}; {comment}" if comment and comment != "None" else note
    return meta


def _resize_conv_args(meta: dict[str, str], options: ResizeOptions) -> None:
    try:
        args = json.loads(meta.get("ss_network_args", ""))
        conv_dim, conv_alpha = float(args["conv_dim"]), float(args.get("conv_alpha", 1))
    except (ValueError, KeyError, TypeError):
        return
    new_conv = options.new_conv_rank or options.new_rank
    args["conv_dim"], args["conv_alpha"] = str(new_conv), str(conv_alpha * new_conv / conv_dim)
    meta["ss_network_args"] = json.dumps(args)


def print_report(reports: list[ModuleReport], verbose: bool) -> None:
    if verbose:
        for r in reports:
            print(f"{r.name}: rank {r.old_rank} -> {r.new_rank}, Frobenius retained {r.fro_retained:.4f}")
    retained = [r.fro_retained for r in reports]
    ranks = [r.new_rank for r in reports]
    print(
        f"resized {len(reports)} modules: new rank min {min(ranks)} / mean {statistics.fmean(ranks):.1f} / max {max(ranks)}; "
        f"Frobenius retained mean {statistics.fmean(retained):.4f}, min {min(retained):.4f}"
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m backend.tools.resize_lora", description=__doc__.split("\n")[0])
    parser.add_argument("--model", required=True, help="LoRA/LoCon file to resize")
    parser.add_argument("--save_to", required=True, help="output file (.safetensors, .ckpt or .pt)")
    parser.add_argument("--new_rank", type=int, default=4, help="new rank (maximum rank for dynamic methods)")
    parser.add_argument("--new_conv_rank", type=int, default=None, help="new rank of 3x3 conv modules (default: --new_rank)")
    parser.add_argument("--dynamic_method", choices=DYNAMIC_METHODS, default=None)
    parser.add_argument("--dynamic_param", type=float, default=None)
    parser.add_argument("--save_precision", choices=tuple(PRECISIONS), default="float")
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    parser.add_argument("--verbose", action="store_true", help="print every module's rank and retained norm")
    return parser


def main(argv: Sequence[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    if args.dynamic_method and args.dynamic_param is None:
        raise ToolError(f"--dynamic_method {args.dynamic_method} needs --dynamic_param")
    if args.new_rank < 1 or (args.new_conv_rank is not None and args.new_conv_rank < 1):
        raise ToolError("--new_rank and --new_conv_rank must be at least 1")
    options = ResizeOptions(args.new_rank, args.new_conv_rank, args.dynamic_method, args.dynamic_param, args.device)
    lora = load_lora(args.model)
    with torch.no_grad():
        modules, reports = resize_modules(lora, options)
    print_report(reports, args.verbose)
    save_lora(args.save_to, modules, resized_metadata(lora.metadata, options, reports), dtype_of(args.save_precision))
    print(f"saved {args.save_to}")


if __name__ == "__main__":
    raise SystemExit(run_tool(main))
