"""Resizing a LoRA/LoCon file's modules to a lower rank: the work behind `python -m
backend.tools.resize_lora` (whose docstring describes the methods and the report).

Each module's effective delta `scale * up @ down` is factorised by SVD (`lowrank.factorize_product`)
and truncated; the new alpha is `scale * new_rank`, so the kept part keeps its strength. A resize
never adds rank: a module of rank 4 asked for 16 stays at 4 (as in sd-scripts), the tool says so,
and the metadata records the rank written, not the one asked for.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import statistics
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import torch

from backend.messages import msg
from backend.tools.cli.light_cli import warn
from backend.tools.lora.lora_base import base_layer_norms
from backend.tools.lora.lora_files import (
    LoraFile,
    check_finite_lora,
    load_lora,
    lora_module,
    lora_rank,
    lora_scale,
    module_algorithm,
    save_lora,
)
from backend.tools.lora.lowrank import factorize_product
from backend.tools.lora.tool_cli import BASE_METHODS, ToolError, check_device, dtype_of


@dataclass
class ModuleReport:
    name: str
    old_rank: int
    new_rank: int  # 0: the module is left out (base-relative methods only)
    fro_retained: float  # |kept delta|_F / |delta|_F
    conv: bool = False  # a 3x3 conv module (LoCon), resized to --new_conv_rank
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
        raise ToolError(msg("tool.resize_not_lora", "{path} holds {algorithms} modules; resize applies to LoRA/LoCon "
                            "only", path=lora.path, algorithms=", ".join(refused)))


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
                raise ToolError(msg("tool.resize_needs_base_layer", "{method} needs the base layer of {name}; pass "
                                    "--base_model", method=options.dynamic_method, name=name))
            base_norm = base_norms[name]
            # the SVD is of up @ down; the effective delta's singular values are |scale| times those
            reference = base_norm / abs(scale) if scale else float("inf")
        low = factorize_product(
            up.to(options.device), down.to(options.device), min(target, lora_rank(params)),
            options.dynamic_method, options.dynamic_param, reference,
        )
        report = ModuleReport(name, lora_rank(params), low.rank, low.fro_retained, conv=is_conv)
        if base_norm is not None:
            report.base_norm = base_norm
            report.threshold = base_norm * 10.0 ** float(options.dynamic_param or 0.0)
            report.error_vs_base = low.discarded * abs(scale) / base_norm if base_norm > 0 else float("inf")
        reports.append(report)
        if low.rank > 0:
            out[name] = lora_module(low.up.cpu(), low.down.cpu(), scale * low.rank)
    return out, reports


def written_ranks(options: ResizeOptions, reports: list[ModuleReport]) -> tuple[int, int | None]:
    """(rank of the linear modules, of the 3x3 conv modules or None) as written: the requested
    ranks, capped at each module's own rank."""
    linear = [r.new_rank for r in reports if not r.conv]
    conv = [r.new_rank for r in reports if r.conv]
    return max(linear, default=options.new_rank), max(conv, default=None)


def resized_metadata(metadata: dict[str, str], options: ResizeOptions, reports: list[ModuleReport]) -> dict[str, str]:
    meta = dict(metadata)
    old_dim = meta.get("ss_network_dim", str(max((r.old_rank for r in reports if not r.conv), default=0)))
    comment = meta.get("ss_training_comment", "")
    if options.dynamic_method:
        meta["ss_network_dim"] = meta["ss_network_alpha"] = "Dynamic"
        note = f"Dynamic resize with {options.dynamic_method}: {options.dynamic_param} from {old_dim}"
        if options.base_model:
            note += f" (relative to {Path(options.base_model).name})"
    else:
        new_dim, new_conv = written_ranks(options, reports)
        meta["ss_network_dim"] = str(new_dim)
        # Files without a numeric alpha/dim recorded keep what they have.
        with contextlib.suppress(KeyError, ValueError, ZeroDivisionError):
            meta["ss_network_alpha"] = str(float(meta["ss_network_alpha"]) * new_dim / float(old_dim))
        note = f"dimension is resized from {old_dim} to {new_dim}"
        if new_conv is not None:
            _resize_conv_args(meta, new_conv)
    meta["ss_training_comment"] = f"{note}; {comment}" if comment and comment != "None" else note
    return meta


def _resize_conv_args(meta: dict[str, str], new_conv: int) -> None:
    try:
        args = json.loads(meta.get("ss_network_args", ""))
        conv_dim, conv_alpha = float(args["conv_dim"]), float(args.get("conv_alpha", 1))
    except (ValueError, KeyError, TypeError):
        return
    args["conv_dim"], args["conv_alpha"] = str(new_conv), str(conv_alpha * new_conv / conv_dim)
    meta["ss_network_args"] = json.dumps(args)


def report_line(r: ModuleReport) -> str:
    names = {"name": r.name, "old": r.old_rank, "new": r.new_rank, "retained": f"{r.fro_retained:.4f}"}
    if r.base_norm is None:
        return msg("tool.resize_module", "{name}: rank {old} -> {new}, Frobenius retained {retained}", **names)
    names |= {"base_norm": f"{r.base_norm:.4g}", "threshold": f"{r.threshold:.4g}", "ratio": f"{r.error_vs_base:.3g}"}
    if r.new_rank == 0:
        return msg("tool.resize_module_base_left_out", "{name}: rank {old} -> {new}, Frobenius retained {retained}, "
                   "base norm {base_norm}, threshold {threshold}, discarded/base {ratio} (left out)", **names)
    return msg("tool.resize_module_base", "{name}: rank {old} -> {new}, Frobenius retained {retained}, base norm "
               "{base_norm}, threshold {threshold}, discarded/base {ratio}", **names)


def print_report(reports: list[ModuleReport], verbose: bool) -> None:
    if verbose:
        for r in reports:
            print(report_line(r))
    retained = [r.fro_retained for r in reports]
    ranks = [r.new_rank for r in reports]
    dropped = sum(rank == 0 for rank in ranks)
    numbers = {"count": len(reports), "min": min(ranks), "mean": f"{statistics.fmean(ranks):.1f}", "max": max(ranks),
               "retained_mean": f"{statistics.fmean(retained):.4f}", "retained_min": f"{min(retained):.4f}"}
    if dropped:
        print(msg("tool.resize_summary_left_out", "resized {count} modules: new rank min {min} / mean {mean} / max "
                  "{max}; Frobenius retained mean {retained_mean}, min {retained_min}; {dropped} modules below the "
                  "threshold left out", dropped=dropped, **numbers))
    else:
        print(msg("tool.resize_summary", "resized {count} modules: new rank min {min} / mean {mean} / max {max}; "
                  "Frobenius retained mean {retained_mean}, min {retained_min}", **numbers))


def rank_warnings(options: ResizeOptions, reports: list[ModuleReport]) -> list[str]:
    """What to tell a user who asked for more rank than the LoRA has: a resize never adds rank."""
    warnings = []
    conv_flag = "--new_conv_rank" if options.new_conv_rank else "--new_rank"
    for conv, flag, requested in ((False, "--new_rank", options.new_rank),
                                  (True, conv_flag, options.new_conv_rank or options.new_rank)):
        old = max((r.old_rank for r in reports if r.conv == conv), default=None)
        if old is None or requested <= old:
            continue
        names = {"flag": flag, "requested": requested, "old": old,
                 "written": max(r.new_rank for r in reports if r.conv == conv)}
        if conv and options.dynamic_method:
            text = msg("tool.resize_above_conv_rank_dynamic", "{flag} {requested} is above the rank of the LoRA's 3x3 "
                       "conv modules ({old}): a resize never adds rank, so no module keeps more than {old}; the "
                       "largest rank written is {written}", **names)
        elif conv:
            text = msg("tool.resize_above_conv_rank", "{flag} {requested} is above the rank of the LoRA's 3x3 conv "
                       "modules ({old}): a resize never adds rank, so they are written at rank {written}", **names)
        elif options.dynamic_method:
            text = msg("tool.resize_above_rank_dynamic", "{flag} {requested} is above the rank of the LoRA ({old}): a "
                       "resize never adds rank, so no module keeps more than {old}; the largest rank written is "
                       "{written}", **names)
        else:
            text = msg("tool.resize_above_rank", "{flag} {requested} is above the rank of the LoRA ({old}): a resize "
                       "never adds rank, so the file is written at rank {written}", **names)
        warnings.append(text)
    return warnings


def resize_file(args: argparse.Namespace) -> None:
    """Read --model, resize it as the checked arguments say, report, and write --save_to."""
    check_device(args.device)
    options = ResizeOptions(args.new_rank, args.new_conv_rank, args.dynamic_method, args.dynamic_param, args.device,
                            args.base_model)
    lora = load_lora(args.model)
    check_resizable(lora)  # before a checkpoint is loaded
    check_finite_lora(lora, "--model")
    norms = None
    if args.dynamic_method in BASE_METHODS:
        norms = base_layer_norms(args.base_model, lora, NORM_OF_METHOD[args.dynamic_method], args.device)
    with torch.no_grad():
        modules, reports = resize_modules(lora, options, norms)
    print_report(reports, args.verbose)
    for warning in rank_warnings(options, reports):
        warn(warning)
    if not modules:
        raise ToolError(msg(
            "tool.resize_nothing_kept", "no module keeps a singular value at --dynamic_param {param}; nothing to save "
            "(a more negative threshold keeps more)", param=args.dynamic_param,
        ))
    save_lora(args.save_to, modules, resized_metadata(lora.metadata, options, reports), dtype_of(args.save_precision))
    print(msg("tool.saved", "saved {path}", path=args.save_to))
