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
from collections.abc import Sequence

from backend.messages import msg
from backend.tools.cli.arg_checks import WEIGHT_SUFFIXES, input_file, input_model, output_file
from backend.tools.flags.lora import BASE_METHODS, RESIZE_LORA
from backend.tools.flags.parser import build_parser as parser_of
from backend.tools.flags.parser import check_ranges
from backend.tools.lora.tool_cli import ToolError, run_tool


def build_parser() -> argparse.ArgumentParser:
    return parser_of(RESIZE_LORA)  # the flags: backend/tools/flags/lora.py


def check_args(args: argparse.Namespace) -> None:
    """Everything that can be checked without torch: flags that need each other, ranks, paths.

    Stricter than sd-scripts' resize_lora.py (which has no checks) where its result is broken: a rank
    below 1 writes modules of rank 0, which change nothing and make loaders divide alpha by 0 (sd-scripts
    writes them, or fails in a reshape for negative ranks); a NaN or infinite --dynamic_param chooses
    ranks by accident (NaN compares false with every singular value)."""
    check_ranges(args, RESIZE_LORA)  # ranks of 1 or more, a finite --dynamic_param
    if args.dynamic_method and args.dynamic_param is None:
        raise ToolError(msg("tool.resize_needs_param", "--dynamic_method {method} needs --dynamic_param",
                            method=args.dynamic_method))
    base_method = args.dynamic_method in BASE_METHODS
    if base_method and not args.base_model:
        raise ToolError(msg("tool.resize_needs_base_model", "--dynamic_method {method} needs --base_model (the "
                            "checkpoint the LoRA was trained on)", method=args.dynamic_method))
    if args.base_model and not base_method:
        raise ToolError(msg("tool.resize_base_model_unused", "--base_model is used only by --dynamic_method {first} or "
                            "{second}", first=BASE_METHODS[0], second=BASE_METHODS[1]))
    input_file(args.model, "--model", suffixes=WEIGHT_SUFFIXES, what=msg("tool.what_lora_file", "LoRA file"))
    if args.base_model:
        input_model(args.base_model, "--base_model")
    output_file(args.save_to, "--save_to", suffixes=WEIGHT_SUFFIXES,
                inputs=[("--model", args.model), ("--base_model", args.base_model)],
                why=msg("tool.resize_lossy", "a resized LoRA keeps only part of the original"))


def main(argv: Sequence[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    check_args(args)
    from backend.tools.lora.lora_resize import resize_file  # torch: only once the arguments are sound

    resize_file(args)


if __name__ == "__main__":
    raise SystemExit(run_tool(main))
