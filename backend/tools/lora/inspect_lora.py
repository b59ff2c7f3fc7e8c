"""Describe a LoRA-family file (sd-scripts' check_lora_weights.py, extended).

    python -m backend.tools.inspect_lora FILE [--json] [--top N]

Prints the algorithm (LoRA/LoCon/LoHa/LoKr/...), rank and alpha per block (text encoder(s), U-Net
down/mid/up), the base model version, a summary of the ss_* training metadata, the top-N tags of
ss_tag_frequency, and every key a loader would not recognise for the file's architecture (typos,
keys of another architecture), checked against the shipped architecture's layers, and every tensor
holding NaN or infinite values (a diverged training). The training resolution comes from
ss_resolution, or from ss_datasets for a LoRA trained with --dataset_config.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from backend.messages import msg
from backend.tools.cli.arg_checks import WEIGHT_SUFFIXES, input_file
from backend.tools.flags.lora import INSPECT_LORA
from backend.tools.flags.parser import build_parser as parser_of
from backend.tools.flags.parser import check_ranges
from backend.tools.lora.tool_cli import run_tool


def build_parser() -> argparse.ArgumentParser:
    return parser_of(INSPECT_LORA)  # the flags: backend/tools/flags/lora.py


def main(argv: Sequence[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    input_file(args.file, "", suffixes=WEIGHT_SUFFIXES, what=msg("tool.what_lora_file", "LoRA file"))
    check_ranges(args, INSPECT_LORA)  # --top 0 or more
    from backend.tools.lora.lora_inspect import inspect_file  # torch: only once the arguments are sound

    inspect_file(args)


if __name__ == "__main__":
    raise SystemExit(run_tool(main))
