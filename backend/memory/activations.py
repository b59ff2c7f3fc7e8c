"""Activation memory: what one training step's forward and backward add on top of the loaded model, per sample,
from the family's measurement (`FamilyDeclaration.activations`, backend/families/activation_memory.py: how it was
measured; the figures lie in each family's package), by resolution and gradient checkpointing.

Between measured resolutions the figure is interpolated linearly in the pixel count; above the largest it
grows in proportion to the pixels (the feature maps do; SDPA's memory is linear in the tokens). A run in
another precision scales by the bytes per value (16-bit autocast keeps about half of float32's saved
tensors). A model of the same design but other widths or depths (the tiny test models, a pruned model)
scales by the sum of its denoiser's layer output widths against the measured model's (`width_sum`): the
feature maps a step keeps grow with both. Figures of a GPU (torch.cuda.max_memory_allocated) replace these
where measured.
"""

from __future__ import annotations

from collections.abc import Iterable

from backend import families
from backend.families.activation_memory import ActivationMeasurement


def width_sum(shapes: Iterable[tuple[int, ...]]) -> int:
    return sum(shape[0] for shape in shapes if len(shape) >= 2)


def _curve(entry: ActivationMeasurement, pixels: int, column: int) -> int:
    """Linear in the pixel count between measured points, proportional to it outside them."""
    points = [(p[0], p[column]) for p in entry.points if p[column] is not None]
    if pixels <= points[0][0]:
        return int(points[0][1] * pixels / points[0][0])
    for (p0, b0), (p1, b1) in zip(points, points[1:], strict=False):
        if pixels <= p1:
            return int(b0 + (b1 - b0) * (pixels - p0) / (p1 - p0))
    last_pixels, last_bytes = points[-1]
    if entry.shape_from is not None:
        base = entry.shape_from
        per_value = entry.dtype_bytes / base.dtype_bytes
        meets = last_bytes / (_curve(base, last_pixels, column) * per_value)
        return int(_curve(base, pixels, column) * per_value * meets)
    return int(last_bytes * pixels / last_pixels)


def per_sample(entry: ActivationMeasurement, pixels: int, checkpointing: bool) -> int:
    """Bytes per sample at `pixels`, in the entry's measured dtype, for the measured model."""
    return _curve(entry, pixels, 2 if checkpointing else 1)


def activation_bytes(
    family: str, pixels: int, batch: int, checkpointing: bool, dtype_bytes: int, widths: int
) -> tuple[int, str]:
    """(bytes, source) of a step's activations for a denoiser of `widths` (`width_sum`); (0, "") when the
    family has no measurement."""
    entry = families.declaration(family).activations
    if entry is None:
        return 0, ""
    scale = widths / entry.width_sum if widths else 1.0
    value = per_sample(entry, pixels, checkpointing) * batch * dtype_bytes / entry.dtype_bytes * scale
    source = entry.source
    if abs(scale - 1) > 0.05:
        source += f", × {scale:.3g} (widths)"
    return int(value), source
