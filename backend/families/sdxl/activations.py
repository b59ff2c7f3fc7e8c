"""SDXL's measured activation memory (backend/families/activation_memory.py)."""

from backend.families.activation_memory import ActivationMeasurement
from backend.families.stable_diffusion.activations import SD15_ACTIVATIONS

# benchmarks/memory_activations.py --arch sdxl --dtype bf16 --resolutions 64,128 (CPU, bfloat16), 2026-12-04,
# load 6-8; 256 px and checkpointing at 128 px did not finish in the time the CPU had (bf16 convolutions are slow
# there): larger resolutions follow SD 1.5's curve through the last measured point.
SDXL_ACTIVATIONS = ActivationMeasurement(2, "SDXL, CPU bfloat16 to 128 px, SD 1.5's curve above", 1_494_404, (
    (64 * 64, 202_645_504, 64_720_896),
    (128 * 128, 404_484_096, None),
), shape_from=SD15_ACTIVATIONS)  # fmt: skip
