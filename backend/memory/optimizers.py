"""Optimizer state bytes per trained tensor, by --optimizer_type (case-insensitive, as the trainer reads it)."""

from __future__ import annotations

import math
from collections.abc import Iterable

# Bytes of state per parameter: AdamW keeps two float32 moments, 8-bit optimizers one byte per moment (their
# block-wise scales are a fraction of a percent), Prodigy four tensors (moments, s, p0), and so on.
STATE_BYTES = {
    "adamw": 8, "adam": 8, "adamw8bit": 2, "adam8bit": 2, "pagedadamw": 8, "pagedadamw32bit": 8,
    "pagedadamw8bit": 2, "lion": 4, "lion8bit": 1, "pagedlion8bit": 1, "sgdnesterov": 4, "sgdnesterov8bit": 1,
    "sgd": 0, "prodigy": 16, "dadaptation": 8, "dadaptadam": 12, "dadaptadagrad": 8, "dadaptadan": 16,
    "dadaptadanip": 16, "dadaptlion": 8, "dadaptsgd": 8, "radamschedulefree": 8, "adamwschedulefree": 8,
    "sgdschedulefree": 4, "ademamix8bit": 3, "bitsandbytes.optim.ademamix8bit": 3,
}  # fmt: skip
EIGHT_BIT = frozenset(name for name, size in STATE_BYTES.items() if "8bit" in name)
ASSUMED_BYTES = 8  # an optimizer this table does not know: counted as AdamW


def optimizer_name(optimizer_type: object, use_8bit_adam: object = False) -> str:
    if use_8bit_adam and not optimizer_type:
        return "adamw8bit"
    return str(optimizer_type or "AdamW").strip().lower()


def known(name: str) -> bool:
    return name in STATE_BYTES or name == "adafactor"


def _adafactor_bytes(shape: tuple[int, ...]) -> int:
    """transformers' Adafactor without beta1 (sd-scripts' usual use): a matrix keeps a row and a column
    average of the squared gradients (over its last two dimensions), anything else a full float32 copy."""
    if len(shape) < 2:
        return 4 * math.prod(shape)
    rows = math.prod(shape[:-1])
    cols = math.prod(shape[:-2]) * shape[-1]
    return 4 * (rows + cols)


def state_bytes(name: str, shapes: Iterable[tuple[int, ...]]) -> int:
    if name == "adafactor":
        return sum(_adafactor_bytes(shape) for shape in shapes)
    per_param = STATE_BYTES.get(name, ASSUMED_BYTES)
    return per_param * sum(math.prod(shape) for shape in shapes)
