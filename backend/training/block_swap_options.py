"""--blocks_to_swap as preflight and run_setup read it (torch-free: preflight runs before torch loads).

The swap itself is block_swap.py; which blocks, and how many at most, is the family's (`swap_groups`,
`blocks_to_swap_split`, `blocks_to_swap_limit`), checked once the model is read.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from backend.messages import msg
from backend.training.option_slice import OptionSlice

if TYPE_CHECKING:
    from backend.families.seam import ModelFamily
    from backend.models.detect import ModelInfo

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


def swap_support_problem(family: ModelFamily, label: str) -> str:
    return msg(
        "run.blocks_to_swap.unsupported", "--blocks_to_swap: block swapping is not supported for {family} "
        "models (it is implemented for FLUX.1, Chroma and SD 3.5); remove the option", family=label,
    )


def swap_limit_problem(family: ModelFamily, label: str, sizes: list[int], blocks_to_swap: int) -> str | None:
    """Why N is too many for swap groups of these sizes (None: it is not)."""
    limit = family.blocks_to_swap_limit(sizes)
    if blocks_to_swap <= limit:
        return None
    counts = family.blocks_to_swap_split(blocks_to_swap, sizes)
    return msg(
        "run.blocks_to_swap.too_many", "--blocks_to_swap {value}: this {family} model allows at most {limit}. "
        "{value} would swap {split} blocks of its block groups, and each group keeps at least two blocks on the "
        "GPU (as in sd-scripts). Lower --blocks_to_swap to {limit} or less",
        value=blocks_to_swap, family=label, limit=limit,
        split=", ".join(f"{count} of {size}" for count, size in zip(counts, sizes, strict=True)),
    )


def block_swap_model_problems(config: BlockSwapConfig, model: ModelInfo | None) -> list[str]:
    """N over the model's limit, known before loading when the model carries its configs (a diffusers
    folder); otherwise the run checks it once the model is read, before anything is put on the GPU."""
    if not config.requested or model is None or model.configs is None:
        return []
    from backend.families.loaded import family  # the family's torch side, only when the option is given

    model_family = family(model.family)
    sizes = model_family.swap_group_sizes(model.configs.unet)
    problem = swap_limit_problem(model_family, model.label, sizes, config.requested) if sizes else None
    return [problem] if problem else []
