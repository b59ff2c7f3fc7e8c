"""The one place Quick LoRA fits its settings to the card: `fit_to_card(command, options, card, savers)`.

It applies the family's own savers for the card size (the `cards` table of presets/quick/<model type>.json:
for SD 1.x/2.x, 8 GB: batch 1, AdamW8bit, gradient checkpointing; 12-16 GB: batch 2; 24 GB and up: batch 4, bf16;
for SDXL, 8 GB: Adafactor, rank 8, text encoder outputs and latents cached to disk, gradient checkpointing;
12-16 GB: AdamW8bit with checkpointing; 24 GB: batch 2; 48 GB: batch 4 without checkpointing). The memory planner
(`backend.memory.fit.fit_to_card`, torch-free) then adjusts the result for the card's exact size, and each change
it makes is listed with its reason. "cpu" (no GPU) gets the savers' CPU entry and no estimate.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from backend.memory.fit import GB as GIB
from backend.memory.fit import PLAN_ERRORS
from backend.memory.fit import fit_to_card as planner_fit


@dataclass
class Fitted:
    options: dict[str, Any]
    savers: dict[str, Any]  # what the card's entry of the savers table set
    # (option, value, reason) the planner changed
    planned: list[tuple[str, Any, str]] = field(default_factory=list)
    planner: bool = False  # whether the planner was asked
    fits: bool | None = None  # the planner's verdict (None: not asked)
    error: str = ""  # why the planner could not plan the run (the savers alone apply then)


def fit_to_card(command: str, options: Mapping[str, Any], card: str, savers: Mapping[str, Any],
                plan: Callable[..., Any] | None = None) -> Fitted:  # fmt: skip
    """`options` with the card's savers applied, then (a GPU card) adjusted to fit its memory."""
    fitted = {**options, **savers}
    result = Fitted(fitted, dict(savers))
    if not card.isdigit():
        return result
    try:
        outcome = (plan or planner_fit)(command, fitted, int(card) * GIB)
    # A run the planner cannot plan (e.g. a pickled .ckpt) keeps the table's savers.
    except PLAN_ERRORS as error:
        result.error = str(error) or type(error).__name__
        return result
    result.planner, result.fits = True, bool(outcome.fits)
    for option, value, reason in outcome.changes:
        fitted[option] = value
        result.planned.append((option, value, str(reason)))
    return result
