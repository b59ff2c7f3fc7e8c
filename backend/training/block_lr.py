"""--block_lr (sdxl_train): a learning rate for each of the SDXL U-Net's 23 blocks.

sd-scripts' numbering, by the original (SGM) parameter names: 0 = time and label embeddings,
1-9 = input_blocks.0-8, 10-12 = middle_block.0-2, 13-21 = output_blocks.0-8, 22 = out. Our U-Net
has diffusers names; each parameter is numbered through its original name (models/keymap_unet.py),
so the blocks are exactly sd-scripts'. A block at rate 0 is frozen: sd-scripts leaves it out of the
optimizer but still computes its gradients; here it takes none.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch

from backend.messages import msg
from backend.models.keymap_unet import unet_key_map

UNET_BLOCKS = 23
_FIRST_INDEX = {"input_blocks": 1, "middle_block": 10, "output_blocks": 13}


def parse_block_lrs(text: str) -> list[float]:
    """'1e-6,0,...' -> 23 rates; ValueError says what is wrong with the text."""
    parts = [part.strip() for part in text.split(",")]
    if len(parts) != UNET_BLOCKS:
        raise ValueError(msg(
            "preflight.block_lr.count", "--block_lr needs 23 comma-separated learning rates (0: time/label "
            "embedding, 1-9: input blocks, 10-12: middle block, 13-21: output blocks, 22: out), got {count}",
            count=len(parts),
        ))
    rates = []
    for index, part in enumerate(parts):
        try:
            rate = float(part)
        except ValueError:
            raise ValueError(msg("preflight.block_lr.not_a_number", "--block_lr value {index} ({value}) is not a "
                                 "number", index=index, value=repr(part))) from None
        if rate < 0:
            raise ValueError(msg("preflight.block_lr.negative", "--block_lr value {index} is negative ({value}); 0 "
                                 "freezes a block", index=index, value=part))
        rates.append(rate)
    return rates


def block_of(original_name: str) -> int:
    """sd-scripts' block number of an SDXL U-Net parameter named in the original layout."""
    head, _, rest = original_name.partition(".")
    if head in ("time_embed", "label_emb"):
        return 0
    if head in _FIRST_INDEX:
        return _FIRST_INDEX[head] + int(rest.split(".")[0])
    if head == "out":
        return UNET_BLOCKS - 1
    raise ValueError(f"U-Net parameter {original_name!r} belongs to no --block_lr block")


def block_param_groups(unet: torch.nn.Module, rates: list[float],
                       config: Mapping[str, Any]) -> tuple[list[dict[str, Any]], list[str]]:
    """One optimizer group per block with a rate above 0 (named unet_block<N>); the parameters of
    blocks at 0 are frozen (requires_grad False)."""
    table = unet_key_map(config)
    blocks: list[list[torch.nn.Parameter]] = [[] for _ in range(UNET_BLOCKS)]
    for name, param in unet.named_parameters():
        original = table.to_original(name)
        if original is None:
            raise ValueError(f"U-Net parameter {name!r} has no original-layout name, so no --block_lr block")
        blocks[block_of(original)].append(param)
    groups, names = [], []
    for index, (params, rate) in enumerate(zip(blocks, rates, strict=True)):
        if rate == 0:
            for param in params:
                param.requires_grad_(False)
            continue
        groups.append({"params": params, "lr": rate})
        names.append(f"unet_block{index}")
    return groups, names
