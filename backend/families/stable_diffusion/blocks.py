"""SD 1.x/2.x U-Net blocks, 25: IN00-IN11 (0 is conv_in, which never has a network module), MID (12),
OUT00-OUT11 (13-24). `down_blocks.i.{resnets,attentions}.j` is IN(1+3i+j), `down_blocks.i.downsamplers`
IN(3+3i), `up_blocks.i.*.j` OUT(3i+j), `up_blocks.i.upsamplers` OUT(3i+2)."""

from __future__ import annotations

import re

from backend.families.blocks import BlockLayout

SIDE = 12
_UPDOWN = re.compile(r"(up|down)_blocks_(\d+)_(resnets|upsamplers|downsamplers|attentions)_(\d+)_")


def place(name: str) -> int | None:
    match = _UPDOWN.search(name)
    if match:
        side, level, kind, index = match.group(1), int(match.group(2)), match.group(3), int(match.group(4))
        position = 3 * level + (2 if kind in ("upsamplers", "downsamplers") else index)
        return 1 + position if side == "down" else SIDE + 1 + position
    if "mid_block_" in name:
        return SIDE
    return None


LAYOUT = BlockLayout(label="SD 1.x/2.x", side=SIDE, middle=1, edges=False, place=place)
