"""SDXL U-Net blocks, 23, from the original (SGM) names: 0 time/label embedding, 1-9
`input_blocks.0-8`, 10-12 `middle_block.0-2`, 13-21 `output_blocks.0-8`, 22 `out`."""

from __future__ import annotations

import re

from backend.families.blocks import BlockLayout

_NAME = re.compile(r"^lora_unet_(input_blocks|middle_block|output_blocks)_(\d+)_")
_OFFSETS = {"input_blocks": 1, "middle_block": 10, "output_blocks": 13}


def place(name: str) -> int | None:
    match = _NAME.match(name)
    if match:
        return _OFFSETS[match.group(1)] + int(match.group(2))
    if name.startswith(("lora_unet_time_embed_", "lora_unet_label_emb_")):
        return 0
    if name.startswith("lora_unet_out_"):
        return 22
    return None


LAYOUT = BlockLayout(label="SDXL", side=9, middle=3, edges=True, place=place)
