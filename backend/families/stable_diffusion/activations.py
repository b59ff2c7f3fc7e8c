"""SD 1.x/2.x's measured activation memory (backend/families/activation_memory.py): the SD 1.5 U-Net; SD 2.x's has
the same design and shares it, scaled by its widths (backend/memory/activations.py)."""

from backend.families.activation_memory import ActivationMeasurement

# benchmarks/memory_activations.py --arch sd15 --resolutions 64,128,256,512 (CPU, float32), 2026-12-04,
# 2 cores, load 0.4-4.5 (others' work; the figures are memory, which load does not change).
SD15_ACTIVATIONS = ActivationMeasurement(4, "SD 1.5, CPU float32", 318_404, (
    (64 * 64, 156_864_512, 98_029_568),
    (128 * 128, 350_568_448, 300_228_608),
    (256 * 256, 912_384_000, 635_486_208),
    (512 * 512, 3_086_061_568, 1_565_614_080),
))  # fmt: skip
