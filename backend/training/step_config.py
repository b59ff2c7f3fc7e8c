"""What a training step reads of the options. A module of its own: run_setup builds the slice and step.py
reads the built run, so neither imports the other."""

from __future__ import annotations

from dataclasses import dataclass

from backend.training.option_slice import OptionSlice


@dataclass(frozen=True)
class StepConfig(OptionSlice):
    """Text encoding and the attention kernel (step.py); accumulation and clipping (the loop)."""

    max_token_length: int | None
    clip_skip: int | None
    mem_eff_attn: bool
    gradient_accumulation_steps: int
    max_grad_norm: float
    weighted_captions: bool = False  # --weighted_captions (the SD and SDXL commands take it)
