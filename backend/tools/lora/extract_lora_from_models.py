"""Extract a LoRA from the difference of two models (sd-scripts' networks/extract_lora_from_models.py).

    python -m backend.tools.extract_lora_from_models --model_org A --model_tuned B --save_to OUT
        --dim N [--conv_dim M] [--clamp_quantile 0.99] [--min_diff 0.01] [--sdxl] [--v2]
        [--device cpu|cuda] [--save_precision float|fp16|bf16] [--load_precision float|fp16|bf16]

The layers are the ones our LoRA trains (`backend/networks/naming.py`; 3x3 convs only with
--conv_dim), named as sd-scripts names them (SDXL U-Net by SGM paths). A family with a network layout
of its own extracts its layout's layers (FLUX.1, as sd-scripts' flux_extract_lora: the transformer
blocks' layers by BFL name, a fused qkv/linear1 as one module; no text encoders). Each layer's difference is
factorised by SVD (alpha = rank, so the scale is 1) and both factors are clamped to the
--clamp_quantile of their values. Layers whose largest absolute difference is below --min_diff are
skipped and counted, so an unchanged text encoder is left out.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from backend.messages import msg
from backend.tools.cli.arg_checks import WEIGHT_SUFFIXES, input_model, output_file, same_file
from backend.tools.flags.lora import EXTRACT_LORA
from backend.tools.flags.parser import build_parser as parser_of
from backend.tools.flags.parser import check_ranges
from backend.tools.lora.tool_cli import ToolError, run_tool


def build_parser() -> argparse.ArgumentParser:
    return parser_of(EXTRACT_LORA)  # the flags: backend/tools/flags/lora.py


def check_args(args: argparse.Namespace) -> None:
    """Everything that can be checked without torch: ranks, thresholds, paths.

    As sd-scripts' extract_lora_from_models.py, which fails on the same values after loading both
    models: a rank below 1 (torch.quantile of an empty tensor, or a reshape), a --clamp_quantile
    outside [0, 1] (torch.quantile). Stricter: --clamp_quantile 0, which sd-scripts takes and which
    clamps every weight to one value (the LoRA is destroyed); a NaN or infinite --min_diff, which
    compares false with every difference. A negative --min_diff extracts every layer, as in sd-scripts."""
    check_ranges(args, EXTRACT_LORA)  # ranks of 1 or more, --clamp_quantile in (0, 1], a finite --min_diff
    if args.sdxl and args.v2:
        raise ToolError(msg("tool.extract_sdxl_and_v2",
                            "--sdxl and --v2 exclude each other: give the one that fits the models (or neither)"))
    input_model(args.model_org, "--model_org")
    input_model(args.model_tuned, "--model_tuned")
    if same_file(args.model_org, args.model_tuned):
        raise ToolError(msg("tool.extract_same_model", "--model_org and --model_tuned are the same model ({path}): "
                            "there is no difference to extract; give the tuned model as --model_tuned",
                            path=args.model_tuned))
    output_file(args.save_to, "--save_to", suffixes=WEIGHT_SUFFIXES,
                inputs=[("--model_org", args.model_org), ("--model_tuned", args.model_tuned)])


def main(argv: Sequence[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    check_args(args)
    from backend.tools.lora.lora_extract import extract_file  # torch: only once the arguments are sound

    extract_file(args)


if __name__ == "__main__":
    raise SystemExit(run_tool(main))
