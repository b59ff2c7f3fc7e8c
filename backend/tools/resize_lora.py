"""Resize a LoRA/LoCon file to a lower rank (sd-scripts' networks/resize_lora.py flags, plus
thresholds relative to the base checkpoint's weights).

    python -m backend.tools.resize_lora --model IN --save_to OUT --new_rank R [--new_conv_rank C]
        [--dynamic_method sv_ratio|sv_fro|sv_cumulative --dynamic_param P]
        [--dynamic_method fro_ckpt|spn_ckpt --dynamic_param THR --base_model CKPT]
        [--save_precision float|fp16|bf16] [--device cpu|cuda] [--verbose]

Each module's effective delta `scale * up @ down` is factorised by SVD and truncated; the new alpha
is `scale * new_rank`, so the kept part keeps its strength. The SVD runs on the two small factors
(see `lowrank.factorize_product`), not on the full delta. --new_rank (--new_conv_rank for 3x3
convs) is the rank, or with a dynamic method the largest rank any module keeps.

Base-relative recipes (the `fro_ckpt=1,thr=-3.55` / `spn_ckpt=1,thr=-1` recipes of the standalone
resize_lora tool, as `--dynamic_method fro_ckpt --dynamic_param -3.55`): a singular value s_i of
the module's effective delta (alpha/rank scale included, multiplier 1) is kept when

    fro_ckpt:  s_i / ||W_base||_F >= 10**THR      spn_ckpt:  s_i / ||W_base||_2 >= 10**THR

where W_base is the weight of the layer the module modifies in --base_model (flattened to
`[out, in * kh * kw]` for convs, so LoCon modules work the same way). Why relative to the base
layer: a LoRA's own spectrum says only how its directions compare with each other, so sv_ratio
keeps as many directions in a layer the LoRA barely touches as in one it rewrites; measured against
the weight it is added to, a change too small to matter is dropped wherever it is, and the same
threshold means the same thing for every LoRA and every amount of training. THR is in log10 units
(-3.55 keeps directions at least 10**-3.55 ~ 1/3500 of the layer's Frobenius norm); more negative
keeps more. A module none of whose singular values pass is left out of the file (rank 0: no
change to that layer), which sv_* methods never do. The report gives per module the rank kept, the
absolute threshold, the retained Frobenius fraction of the delta and the discarded part relative to
the base layer's norm.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch

from backend.tools.lora_base import base_layer_norms
from backend.tools.lora_files import (
    LoraFile,
    load_lora,
    lora_module,
    lora_rank,
    lora_scale,
    module_algorithm,
    save_lora,
)
from backend.tools.lowrank import BASE_METHODS, DYNAMIC_METHODS, factorize_product
from backend.tools.tool_cli import PRECISIONS, ToolError, dtype_of, run_tool


@dataclass
class ModuleReport:
    name: str
    old_rank: int
    new_rank: int  # 0: the module is left out (base-relative methods only)
    fro_retained: float  # |kept delta|_F / |delta|_F
    threshold: float | None = None  # base-relative methods: base_norm * 10**THR, on the effective delta
    base_norm: float | None = None  # base-relative methods: the base layer's norm
    error_vs_base: float | None = None  # |discarded delta|_F / base_norm


@dataclass
class ResizeOptions:
    new_rank: int
    new_conv_rank: int | None = None
    dynamic_method: str | None = None
    dynamic_param: float | None = None
    device: str = "cpu"
    base_model: str | None = None


NORM_OF_METHOD = {"fro_ckpt": "fro", "spn_ckpt": "spectral"}


def check_resizable(lora: LoraFile) -> None:
    refused = sorted({module_algorithm(p) for p in lora.modules.values()} - {"LoRA", "LoCon"})
    if refused:
        raise ToolError(
            f"{lora.path} holds {', '.join(refused)} modules; resize applies to LoRA/LoCon only"
        )


def resize_modules(
    lora: LoraFile, options: ResizeOptions, base_norms: Mapping[str, float] | None = None
) -> tuple[dict[str, dict[str, torch.Tensor]], list[ModuleReport]]:
    """Resized modules (rank-0 ones left out) and one report per input module. `base_norms`
    ({module: norm of its base layer}) is required by the base-relative methods."""
    check_resizable(lora)
    out: dict[str, dict[str, torch.Tensor]] = {}
    reports = []
    for name, params in lora.modules.items():
        down, up = params["lora_down.weight"], params["lora_up.weight"]
        is_conv = down.dim() == 4 and tuple(down.shape[2:]) != (1, 1)
        target = options.new_conv_rank if is_conv and options.new_conv_rank else options.new_rank
        scale = lora_scale(params)
        base_norm = reference = None
        if options.dynamic_method in BASE_METHODS:
            if base_norms is None or name not in base_norms:
                raise ToolError(f"{options.dynamic_method} needs the base layer of {name}; pass --base_model")
            base_norm = base_norms[name]
            # the SVD is of up @ down; the effective delta's singular values are |scale| times those
            reference = base_norm / abs(scale) if scale else float("inf")
        low = factorize_product(
            up.to(options.device), down.to(options.device), min(target, lora_rank(params)),
            options.dynamic_method, options.dynamic_param, reference,
        )
        report = ModuleReport(name, lora_rank(params), low.rank, low.fro_retained)
        if base_norm is not None:
            report.base_norm = base_norm
            report.threshold = base_norm * 10.0 ** float(options.dynamic_param or 0.0)
            report.error_vs_base = low.discarded * abs(scale) / base_norm if base_norm > 0 else float("inf")
        reports.append(report)
        if low.rank > 0:
            out[name] = lora_module(low.up.cpu(), low.down.cpu(), scale * low.rank)
    return out, reports


def resized_metadata(metadata: dict[str, str], options: ResizeOptions, reports: list[ModuleReport]) -> dict[str, str]:
    meta = dict(metadata)
    old_dim = meta.get("ss_network_dim", str(max((r.old_rank for r in reports), default=0)))
    comment = meta.get("ss_training_comment", "")
    if options.dynamic_method:
        meta["ss_network_dim"] = meta["ss_network_alpha"] = "Dynamic"
        note = f"Dynamic resize with {options.dynamic_method}: {options.dynamic_param} from {old_dim}"
        if options.base_model:
            note += f" (relative to {Path(options.base_model).name})"
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


def report_line(r: ModuleReport) -> str:
    line = f"{r.name}: rank {r.old_rank} -> {r.new_rank}, Frobenius retained {r.fro_retained:.4f}"
    if r.base_norm is not None:
        line += (f", base norm {r.base_norm:.4g}, threshold {r.threshold:.4g}, "
                 f"discarded/base {r.error_vs_base:.3g}")
    return line + (" (left out)" if r.new_rank == 0 else "")


def print_report(reports: list[ModuleReport], verbose: bool) -> None:
    if verbose:
        for r in reports:
            print(report_line(r))
    retained = [r.fro_retained for r in reports]
    ranks = [r.new_rank for r in reports]
    dropped = sum(rank == 0 for rank in ranks)
    print(
        f"resized {len(reports)} modules: new rank min {min(ranks)} / mean {statistics.fmean(ranks):.1f} / max {max(ranks)}; "
        f"Frobenius retained mean {statistics.fmean(retained):.4f}, min {min(retained):.4f}"
        + (f"; {dropped} modules below the threshold left out" if dropped else "")
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m backend.tools.resize_lora", description=__doc__.split("\n")[0])
    parser.add_argument("--model", required=True, help="LoRA/LoCon file to resize")
    parser.add_argument("--save_to", required=True, help="output file (.safetensors, .ckpt or .pt)")
    parser.add_argument("--new_rank", type=int, default=4, help="new rank (maximum rank for dynamic methods)")
    parser.add_argument("--new_conv_rank", type=int, default=None, help="new rank of 3x3 conv modules (default: --new_rank)")
    parser.add_argument("--dynamic_method", choices=DYNAMIC_METHODS + BASE_METHODS, default=None,
                        help="choose each module's rank (at most --new_rank); fro_ckpt/spn_ckpt need --base_model")
    parser.add_argument("--dynamic_param", type=float, default=None,
                        help="sv_ratio: ratio; sv_fro/sv_cumulative: fraction; fro_ckpt/spn_ckpt: log10 threshold")
    parser.add_argument("--base_model", default=None,
                        help="checkpoint the LoRA was trained on (diffusers folder or single file), for fro_ckpt/spn_ckpt")
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
    base_method = args.dynamic_method in BASE_METHODS
    if base_method and not args.base_model:
        raise ToolError(f"--dynamic_method {args.dynamic_method} needs --base_model (the checkpoint the LoRA was trained on)")
    if args.base_model and not base_method:
        raise ToolError(f"--base_model is used only by --dynamic_method {' or '.join(BASE_METHODS)}")
    options = ResizeOptions(args.new_rank, args.new_conv_rank, args.dynamic_method, args.dynamic_param, args.device,
                            args.base_model)
    lora = load_lora(args.model)
    norms = None
    if base_method:
        check_resizable(lora)  # before the checkpoint is loaded
        norms = base_layer_norms(args.base_model, lora, NORM_OF_METHOD[args.dynamic_method], args.device)
    with torch.no_grad():
        modules, reports = resize_modules(lora, options, norms)
    print_report(reports, args.verbose)
    if not modules:
        raise ToolError(
            f"no module keeps a singular value at --dynamic_param {args.dynamic_param}; nothing to save "
            "(a more negative threshold keeps more)"
        )
    save_lora(args.save_to, modules, resized_metadata(lora.metadata, options, reports), dtype_of(args.save_precision))
    print(f"saved {args.save_to}")


if __name__ == "__main__":
    raise SystemExit(run_tool(main))
