"""What every LoRA tool's command line shares: its error type, the runner, and the precision and
rank-method names (declared with the flags in backend/tools/flags/lora.py). Torch-free, so a tool
can parse and check its arguments before the heavy imports."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from backend.messages import msg
from backend.tools.cli.light_cli import InputError, run_light_tool
from backend.tools.flags.lora import BASE_METHODS as BASE_METHODS
from backend.tools.flags.lora import DYNAMIC_METHODS as DYNAMIC_METHODS
from backend.tools.flags.lora import PRECISIONS as PRECISIONS

if TYPE_CHECKING:
    import torch


class ToolError(InputError):
    """Bad input (missing file, not a LoRA, mismatched architecture): reported, exit status 2."""


def dtype_of(name: str | None) -> torch.dtype | None:
    """The torch dtype of a precision name (`float`, `fp16`, `bf16`); None stays None."""
    if name is None:
        return None
    import torch

    return {"float": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}[name]


def check_device(name: str, flag: str = "--device") -> None:
    """`name` is a torch device this machine has (imports torch: call it once the work starts)."""
    import torch

    try:
        device = torch.device(name)
    except (RuntimeError, ValueError):
        raise ToolError(msg("tool.device_unknown", "{flag} {name} is not a torch device: use cpu, cuda or cuda:N",
                            flag=flag, name=repr(name))) from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ToolError(msg("tool.device_no_cuda", "{flag} {name}: torch sees no CUDA GPU on this machine; use {flag} cpu",
                            flag=flag, name=name))


def run_tool(main: Callable[[Sequence[str] | None], int | None], argv: Sequence[str] | None = None) -> int:
    """Run `main` (see `light_cli.run_light_tool`): bad input prints one `error:` line and returns 2,
    a failure of the work returns 1."""
    return run_light_tool(main, argv)
