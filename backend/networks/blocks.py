"""Per-block U-Net settings: `block_dims`, `block_alphas`, `conv_block_*` and block learning rates.

Block numbering is sd-scripts' (networks/lora.py `get_block_index`):

- SD 1.x/2.x, 25 blocks: IN00-IN11 (0 is conv_in, which never has LoRA), MID (12), OUT00-OUT11
  (13-24). `down_blocks.i.{resnets,attentions}.j` is IN(1+3i+j), `down_blocks.i.downsamplers` is
  IN(3+3i), `up_blocks.i.*.j` is OUT(3i+j), `up_blocks.i.upsamplers` is OUT(3i+2).
- SDXL, 23 blocks (from the SGM names): 0 time/label embedding, 1-9 `input_blocks.0-8`, 10-12
  `middle_block.0-2`, 13-21 `output_blocks.0-8`, 22 `out`.

Block learning-rate weights: `down_lr_weight`/`up_lr_weight` take 12 (SDXL: 9) comma-separated
numbers, or a preset `cosine`, `sine`, `linear`, `reverse_linear`, `zeros`, optionally `+base`
(`sine+0.5`); `mid_lr_weight` takes 1 (SDXL: 3). Shorter lists are filled with 1, longer ones cut
(both with a warning); weights at or below `block_lr_zero_threshold` become 0, and a block with
weight 0 gets no LoRA at all.
"""

from __future__ import annotations

import logging
import math
import re

from backend.messages import msg
from backend.networks.args import NetworkArgsError

logger = logging.getLogger(__name__)

SD_BLOCKS = 12  # IN00-IN11 and OUT00-OUT11
SD_MID_BLOCKS = 1
SDXL_BLOCKS = 9
SDXL_MID_BLOCKS = 3

_SD_UPDOWN = re.compile(r"(up|down)_blocks_(\d+)_(resnets|upsamplers|downsamplers|attentions)_(\d+)_")
_SDXL_NAME = re.compile(r"^lora_unet_(input_blocks|middle_block|output_blocks)_(\d+)_")


def num_blocks(is_sdxl: bool) -> int:
    if is_sdxl:
        return 1 + 2 * SDXL_BLOCKS + SDXL_MID_BLOCKS + 1
    return 2 * SD_BLOCKS + SD_MID_BLOCKS


def block_index(name: str, is_sdxl: bool) -> int:
    """The block a U-Net LoRA module (by its sd-scripts name) belongs to."""
    if is_sdxl:
        match = _SDXL_NAME.match(name)
        if match:
            offset = {"input_blocks": 1, "middle_block": 10, "output_blocks": 13}[match.group(1)]
            return offset + int(match.group(2))
        if name.startswith(("lora_unet_time_embed_", "lora_unet_label_emb_")):
            return 0
        if name.startswith("lora_unet_out_"):
            return 22
    else:
        match = _SD_UPDOWN.search(name)
        if match:
            side, level, kind, index = match.group(1), int(match.group(2)), match.group(3), int(match.group(4))
            position = 3 * level + (2 if kind in ("upsamplers", "downsamplers") else index)
            return 1 + position if side == "down" else SD_BLOCKS + 1 + position
        if "mid_block_" in name:
            return SD_BLOCKS
    raise ValueError(f"cannot place U-Net module {name} in a block")


def parse_block_values(values: list[float] | None, default: float, is_sdxl: bool, key: str) -> list[float]:
    """A full per-block list: the given one (length checked) or `default` for every block."""
    count = num_blocks(is_sdxl)
    if values is None:
        return [default] * count
    if len(values) != count:
        raise NetworkArgsError(msg(
            "network.blocks.count", "network_args {key} needs {count} comma-separated values for {family} (got {given})",
            key=key, count=count, family="SDXL" if is_sdxl else "SD 1.x/2.x", given=len(values),
        ))  # fmt: skip
    return values


def _preset_weights(text: str, length: int, key: str) -> list[float]:
    name, _, base_text = text.partition("+")
    base = float(base_text) if base_text else 0.0
    steps = [i / (length - 1) for i in range(length)]
    presets = {
        "cosine": [math.sin(math.pi * s / 2) for s in reversed(steps)],
        "sine": [math.sin(math.pi * s / 2) for s in steps],
        "linear": steps,
        "reverse_linear": list(reversed(steps)),
        "zeros": [0.0] * length,
    }
    if name not in presets:
        raise NetworkArgsError(msg(
            "network.blocks.bad_preset",
            "network_args {key}={value}: expected {count} comma-separated numbers or one of {presets} (optionally "
            "+base, e.g. sine+0.5)",
            key=key, value=repr(text), count=length, presets=", ".join(presets),
        ))  # fmt: skip
    return [w + base for w in presets[name]]


def _weights(text: str | None, length: int, key: str, allow_preset: bool) -> list[float] | None:
    if text is None or text == "":
        return None
    parts = [p.strip() for p in str(text).split(",")]
    if len(parts) == 1 and allow_preset and not _is_number(parts[0]):
        return _preset_weights(parts[0], length, key)
    try:
        weights = [float(p) if p else 0.0 for p in parts]
    except ValueError as err:
        raise NetworkArgsError(msg(
            "network.blocks.not_numbers", "network_args {key}={value}: expected comma-separated numbers",
            key=key, value=repr(text),
        )) from err  # fmt: skip
    if len(weights) > length:
        logger.warning(msg(
            "network.blocks.too_many", "{key} has {count} values; only the first {used} are used",
            key=key, count=len(weights), used=length,
        ))  # fmt: skip
        weights = weights[:length]
    elif len(weights) < length:
        logger.warning(msg(
            "network.blocks.too_few", "{key} has {count} values; the remaining {rest} blocks use 1.0",
            key=key, count=len(weights), rest=length - len(weights),
        ))  # fmt: skip
        weights += [1.0] * (length - len(weights))
    return weights


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def block_lr_weights(
    is_sdxl: bool,
    down: str | None,
    mid: str | None,
    up: str | None,
    zero_threshold: float = 0.0,
) -> list[float] | None:
    """One learning-rate factor per block, or None when no block weight is given."""
    if down is None and mid is None and up is None:
        return None
    side = SDXL_BLOCKS if is_sdxl else SD_BLOCKS
    middle = SDXL_MID_BLOCKS if is_sdxl else SD_MID_BLOCKS
    down_w = _weights(down, side, "down_lr_weight", True) or [1.0] * side
    mid_w = _weights(mid, middle, "mid_lr_weight", False) or [1.0] * middle
    up_w = _weights(up, side, "up_lr_weight", True) or [1.0] * side
    weights = [w if w > zero_threshold else 0.0 for w in down_w + mid_w + up_w]
    if is_sdxl:
        weights = [1.0, *weights, 1.0]  # embeddings and out have no block weight
    logger.info("block learning-rate weights: %s", weights)
    return weights
