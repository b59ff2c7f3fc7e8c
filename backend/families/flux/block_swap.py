"""--blocks_to_swap for the FLUX.1 transformer and its derivatives (Chroma): their double- and
single-stream block lists and sd-scripts' way of counting N (Flux.enable_block_swap, which Chroma's
model shares)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from torch import nn


class DoubleSingleBlockSwap:
    """The ModelFamily block-swap methods of a transformer with `transformer_blocks` (double-stream) then
    `single_transformer_blocks` (single-stream), as diffusers' FLUX.1 and Chroma transformers have."""

    def swap_groups(self, denoiser: nn.Module) -> list[list[nn.Module]]:
        # diffusers' transformer runs its double-stream blocks, then its single-stream blocks.
        return [list(denoiser.transformer_blocks), list(denoiser.single_transformer_blocks)]

    def swap_group_sizes(self, config: Mapping[str, Any]) -> list[int]:
        sizes = [config.get("num_layers"), config.get("num_single_layers")]
        return [int(size) for size in sizes] if all(isinstance(size, int) for size in sizes) else []

    def blocks_to_swap_split(self, blocks_to_swap: int, group_sizes: list[int]) -> list[int]:
        # sd-scripts: a single block is about half a double block, so N counts in double blocks: N // 2
        # double blocks and the rest as twice as many single blocks (35: 17 and 36).
        double = blocks_to_swap // 2
        return [double, (blocks_to_swap - double) * 2]
