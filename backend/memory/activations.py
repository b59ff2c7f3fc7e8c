"""The measured activation table: what one training step's forward and backward add on top of the loaded
model, per sample, by family, resolution and gradient checkpointing.

How it was measured: `benchmarks/memory_activations.py` (see its docstring) builds the full-size denoiser
from the shipped configs with random weights, puts a rank-8 LoRA on it (frozen base) and runs one training
forward+backward at batch 1 with SDPA attention, with and without gradient checkpointing. CPU figures are
the RSS high-water mark minus the RSS before the step (allocator slack included), in the dtype named.
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
from dataclasses import dataclass

MIB = 1024**2


@dataclass(frozen=True)
class Measured:
    family: str
    dtype_bytes: int  # bytes per value of the measured run (4: float32)
    source: str  # where and how
    width_sum: int  # the measured denoiser's `width_sum` (sum of shape[0] over its weights of 2+ dimensions)
    # (pixels per sample, bytes without checkpointing, bytes with checkpointing), pixels ascending; None: not measured
    points: tuple[tuple[int, int | None, int | None], ...]
    # Above its largest measured resolution the figure follows this family's curve, scaled to meet the last
    # measured point (the CPU cannot run a large model at its native resolution in reasonable time).
    shape_from: str | None = None


TABLE: dict[str, Measured] = {}


def _add(entry: Measured) -> None:
    TABLE[entry.family] = entry


# benchmarks/memory_activations.py --arch sd15 --resolutions 64,128,256,512 (CPU, float32), 2026-12-04,
# 2 cores, load 0.4-4.5 (others' work; the figures are memory, which load does not change).
_add(Measured("sd1", 4, "SD 1.5, CPU float32", 318_404, (
    (64 * 64, 156_864_512, 98_029_568),
    (128 * 128, 350_568_448, 300_228_608),
    (256 * 256, 912_384_000, 635_486_208),
    (512 * 512, 3_086_061_568, 1_565_614_080),
)))  # fmt: skip

# benchmarks/memory_activations.py --arch sdxl --dtype bf16 --resolutions 64,128 (CPU, bfloat16), 2026-12-04,
# load 6-8; 256 px and checkpointing at 128 px did not finish in the time the CPU had (bf16 convolutions are slow
# there): larger resolutions follow SD 1.5's curve through the last measured point.
_add(Measured("sdxl", 2, "SDXL, CPU bfloat16 to 128 px, SD 1.5's curve above", 1_494_404, (
    (64 * 64, 202_645_504, 64_720_896),
    (128 * 128, 404_484_096, None),
), shape_from="sd1"))  # fmt: skip

# Families without a measurement of their own borrow one with the same denoiser design, per pixel.
BORROWED = {"sd2": "sd1"}


def width_sum(shapes: Iterable[tuple[int, ...]]) -> int:
    return sum(shape[0] for shape in shapes if len(shape) >= 2)


def lookup(family: str) -> tuple[Measured, bool] | None:
    """The family's measurement (and whether it is borrowed from another family), or None."""
    if family in TABLE:
        return TABLE[family], False
    if family in BORROWED and BORROWED[family] in TABLE:
        return TABLE[BORROWED[family]], True
    return None


def _curve(entry: Measured, pixels: int, column: int) -> int:
    """Linear in the pixel count between measured points, proportional to it outside them."""
    points = [(p[0], p[column]) for p in entry.points if p[column] is not None]
    if pixels <= points[0][0]:
        return int(points[0][1] * pixels / points[0][0])
    for (p0, b0), (p1, b1) in zip(points, points[1:], strict=False):
        if pixels <= p1:
            return int(b0 + (b1 - b0) * (pixels - p0) / (p1 - p0))
    last_pixels, last_bytes = points[-1]
    if entry.shape_from is not None and entry.shape_from in TABLE:
        base = TABLE[entry.shape_from]
        per_value = entry.dtype_bytes / base.dtype_bytes
        meets = last_bytes / (_curve(base, last_pixels, column) * per_value)
        return int(_curve(base, pixels, column) * per_value * meets)
    return int(last_bytes * pixels / last_pixels)


def per_sample(entry: Measured, pixels: int, checkpointing: bool) -> int:
    """Bytes per sample at `pixels`, in the entry's measured dtype, for the measured model."""
    return _curve(entry, pixels, 2 if checkpointing else 1)


def activation_bytes(
    family: str, pixels: int, batch: int, checkpointing: bool, dtype_bytes: int, widths: int
) -> tuple[int, str]:
    """(bytes, source) of a step's activations for a denoiser of `widths` (`width_sum`); (0, "") when the
    family has no measurement."""
    found = lookup(family)
    if found is None:
        return 0, ""
    entry, borrowed = found
    scale = widths / entry.width_sum if widths else 1.0
    value = per_sample(entry, pixels, checkpointing) * batch * dtype_bytes / entry.dtype_bytes * scale
    source = entry.source + (f" ({entry.family})" if borrowed else "")
    if abs(scale - 1) > 0.05:
        source += f", × {scale:.3g} (widths)"
    return int(value), source
