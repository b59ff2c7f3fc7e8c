"""What every LoRA tool's command line shares: one error type that exits 2, and precision names."""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence

import torch

from backend.models.detect import ModelMismatchError

PRECISIONS: dict[str, torch.dtype] = {"float": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}


class ToolError(ValueError):
    """Bad input (missing file, not a LoRA, mismatched architecture): reported, exit status 2."""


def dtype_of(name: str | None) -> torch.dtype | None:
    return None if name is None else PRECISIONS[name]


def run_tool(main: Callable[[Sequence[str] | None], None], argv: Sequence[str] | None = None) -> int:
    """Run `main`; bad input prints one `error:` line instead of a traceback and returns 2."""
    try:
        main(argv)
    except (ToolError, ModelMismatchError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0
