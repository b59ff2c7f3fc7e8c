"""--blocks_to_swap as preflight and run_setup read it (torch-free: preflight runs before torch loads).

The swap itself is block_swap.py; which blocks, and how many at most, is the family's (`swap_groups`,
`blocks_to_swap_split`, `blocks_to_swap_limit`), checked once the model is read.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

from backend.messages import msg
from backend.training.option_slice import OptionSlice

SWAP_ON_CPU_ENV = "KOHYA_BLOCK_SWAP_ON_CPU"


def swap_forced_on_cpu() -> bool:
    """Whether the swap runs without CUDA too (tests exercise it on the CPU): KOHYA_BLOCK_SWAP_ON_CPU=1."""
    return os.environ.get(SWAP_ON_CPU_ENV, "").lower() in ("1", "true", "yes")


@dataclass(frozen=True)
class BlockSwapConfig(OptionSlice):
    blocks_to_swap: int | None  # None or 0: off

    @classmethod
    def from_args(cls, args: Any) -> BlockSwapConfig:
        return cls(getattr(args, "blocks_to_swap", None))  # only the network commands of some families have it

    @property
    def requested(self) -> int:
        return self.blocks_to_swap or 0

    def runs_on(self, device_type: str) -> bool:
        """Whether blocks are swapped on this device: on CUDA, or anywhere with KOHYA_BLOCK_SWAP_ON_CPU=1."""
        return self.requested > 0 and (device_type == "cuda" or swap_forced_on_cpu())


def block_swap_problems(config: BlockSwapConfig, device_type: str, torch_compile: bool) -> tuple[list[str], list[str]]:
    """(errors, warnings) of --blocks_to_swap that need no model."""
    errors: list[str] = []
    warnings: list[str] = []
    if not config.requested:
        return errors, warnings
    if torch_compile:
        errors.append(msg(
            "preflight.blocks_to_swap.compile", "--blocks_to_swap cannot be combined with --torch_compile here (the "
            "swap moves weights between the blocks' runs, which a compiled model does not allow); remove one of them",
        ))
    if device_type != "cuda" and not swap_forced_on_cpu():
        warnings.append(msg(
            "preflight.blocks_to_swap.no_cuda", "--blocks_to_swap {value}: no CUDA GPU, so nothing is swapped (the "
            "whole model is in RAM already); it has no effect here", value=config.requested,
        ))
    return errors, warnings
