"""How long a run is: its optimizer steps and epochs, from the length options and the batches per epoch.

Preflight asks before a model is loaded (from the planned batches) and the run asks again when it is
built (from the loaded datasets); both read the same slice.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from backend.training.option_slice import OptionSlice


@dataclass(frozen=True)
class LengthConfig(OptionSlice):
    """The options that set a run's length (sd-scripts' names)."""

    max_train_steps: int
    max_train_epochs: int | None
    gradient_accumulation_steps: int


def steps_per_epoch(num_batches: int, gradient_accumulation_steps: int) -> int:
    """`num_batches`: global batches (batch size x processes; every process trains a share of each)."""
    return math.ceil(num_batches / gradient_accumulation_steps)


def total_steps(config: LengthConfig, num_batches: int) -> tuple[int, int]:
    """(optimizer steps, epochs): --max_train_epochs wins over --max_train_steps, as in sd-scripts."""
    per_epoch = max(1, steps_per_epoch(num_batches, config.gradient_accumulation_steps))
    if config.max_train_epochs:
        return config.max_train_epochs * per_epoch, config.max_train_epochs
    return config.max_train_steps, math.ceil(config.max_train_steps / per_epoch)
