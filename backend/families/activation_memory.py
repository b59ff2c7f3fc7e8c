"""What a family's denoiser keeps for one training step's backward, measured: the shape of a family's entry in
its declaration (`FamilyDeclaration.activations`), read by the memory planner (backend/memory/activations.py,
which says how the figures are used). Torch-free.

Measured by `benchmarks/memory_activations.py`: the full-size denoiser from the shipped configs with random
weights, a rank-8 LoRA on it (frozen base), one training forward+backward at batch 1 with SDPA attention, with
and without gradient checkpointing; on the CPU the RSS high-water mark minus the RSS before the step (allocator
slack included), in the dtype named.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ActivationMeasurement:
    dtype_bytes: int  # bytes per value of the measured run (4: float32)
    source: str  # which model, where and how (shown in the planner's breakdown)
    width_sum: int  # the measured denoiser's width sum (sum of shape[0] over its weights of 2+ dimensions)
    # (pixels per sample, bytes without checkpointing, bytes with checkpointing), pixels ascending; None: not measured
    points: tuple[tuple[int, int | None, int | None], ...]
    # Above its largest measured resolution the figure follows this curve, scaled to meet the last measured point
    # (the CPU cannot run a large model at its native resolution in reasonable time).
    shape_from: ActivationMeasurement | None = None
