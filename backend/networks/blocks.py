"""Per-block U-Net settings: `block_dims`, `block_alphas`, `conv_block_*` and block learning rates.

Blocks are the family's (`ModelFamily.block_layout`, in sd-scripts' numbering: 25 for SD 1.x/2.x,
23 for SDXL; backend/families/*/blocks.py say which module is where).

Block learning-rate weights: `down_lr_weight`/`up_lr_weight` take one number per side block (12, SDXL
9) comma-separated, or a preset `cosine`, `sine`, `linear`, `reverse_linear`, `zeros`, optionally
`+base` (`sine+0.5`); `mid_lr_weight` takes one per middle block (1, SDXL 3). Shorter lists are filled
with 1, longer ones cut (both with a warning); weights at or below `block_lr_zero_threshold` become 0,
and a block with weight 0 gets no LoRA at all.
"""

from __future__ import annotations

import logging
import math

from backend.families.blocks import BlockLayout
from backend.messages import msg
from backend.networks.args import NetworkArgsError

logger = logging.getLogger(__name__)


def parse_block_values(values: list[float] | None, default: float, layout: BlockLayout, key: str) -> list[float]:
    """A full per-block list: the given one (length checked) or `default` for every block."""
    count = layout.count
    if values is None:
        return [default] * count
    if len(values) != count:
        raise NetworkArgsError(msg(
            "network.blocks.count", "network_args {key} needs {count} comma-separated values for {family} (got {given})",
            key=key, count=count, family=layout.label, given=len(values),
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
    layout: BlockLayout,
    down: str | None,
    mid: str | None,
    up: str | None,
    zero_threshold: float = 0.0,
) -> list[float] | None:
    """One learning-rate factor per block, or None when no block weight is given."""
    if down is None and mid is None and up is None:
        return None
    side, middle = layout.side, layout.middle
    down_w = _weights(down, side, "down_lr_weight", True) or [1.0] * side
    mid_w = _weights(mid, middle, "mid_lr_weight", False) or [1.0] * middle
    up_w = _weights(up, side, "up_lr_weight", True) or [1.0] * side
    # edge blocks (SDXL's embeddings and out) have no block weight
    weights = layout.with_edges([w if w > zero_threshold else 0.0 for w in down_w + mid_w + up_w])
    logger.info("block learning-rate weights: %s", weights)
    return weights
