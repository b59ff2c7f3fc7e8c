"""A denoiser's block layout for per-block network options (`block_dims`, `block_alphas`, block
learning-rate weights), in sd-scripts' numbering (networks/lora.py `get_block_index`).

Each family gives one (`ModelFamily.block_layout`): how many blocks each side (down/up) and the middle
have, whether an extra block before and after them carries no block weight (SDXL's embeddings and
out), and where a module, by its network name, belongs.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class BlockLayout:
    label: str  # the model kind in messages ("SD 1.x/2.x")
    side: int  # blocks on each side (IN / OUT) that take down/up weights
    middle: int  # middle blocks (mid_lr_weight values)
    edges: bool  # one block before and one after the rest, with weight 1 always
    place: Callable[[str], int | None]  # network module name -> block index (None: not in a block)

    @property
    def count(self) -> int:
        return 2 * self.side + self.middle + (2 if self.edges else 0)

    def block_index(self, name: str) -> int:
        """The block a denoiser network module (by its sd-scripts name) belongs to."""
        index = self.place(name)
        if index is None:
            raise ValueError(f"cannot place U-Net module {name} in a block")
        return index

    def with_edges(self, weights: list[float]) -> list[float]:
        """Down + mid + up weights with the edge blocks' fixed 1.0 around them."""
        return [1.0, *weights, 1.0] if self.edges else weights
