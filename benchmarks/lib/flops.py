"""Achieved FLOP/s and model FLOPs utilisation (MFU) against a GPU's peak.

FLOPs of one training step are counted by `torch.utils.flop_counter.FlopCounterMode` (matmuls,
convolutions and attention, forward and backward; recomputation under gradient checkpointing is
counted too, so with checkpointing this is hardware FLOPs, not model FLOPs). Peaks are the dense
(no sparsity) tensor-core figures of the vendors' data sheets, in TFLOP/s, per compute dtype;
`--peak-tflops` overrides them for any other device (a CPU, say).
"""

from __future__ import annotations

# (name fragments that must all appear in torch.cuda.get_device_name(), peaks by dtype), most specific first.
PEAK_TFLOPS: list[tuple[tuple[str, ...], dict[str, float]]] = [
    (("H100", "PCIE"), {"bf16": 756.0, "fp16": 756.0, "tf32": 378.0, "fp32": 51.2}),
    (("H100", "NVL"), {"bf16": 835.0, "fp16": 835.0, "tf32": 418.0, "fp32": 60.0}),
    (("H100",), {"bf16": 989.4, "fp16": 989.4, "tf32": 494.7, "fp32": 66.9}),  # SXM
    (("H200",), {"bf16": 989.4, "fp16": 989.4, "tf32": 494.7, "fp32": 66.9}),
    (("GH200",), {"bf16": 989.4, "fp16": 989.4, "tf32": 494.7, "fp32": 66.9}),
    (("B200",), {"bf16": 2250.0, "fp16": 2250.0, "tf32": 1100.0, "fp32": 80.0}),
    (("A100",), {"bf16": 312.0, "fp16": 312.0, "tf32": 156.0, "fp32": 19.5}),
    (("A10G",), {"bf16": 70.0, "fp16": 70.0, "tf32": 35.0, "fp32": 31.2}),
    (("A10",), {"bf16": 125.0, "fp16": 125.0, "tf32": 62.5, "fp32": 31.2}),
    (("L40S",), {"bf16": 362.0, "fp16": 362.0, "tf32": 183.0, "fp32": 91.6}),
    (("L4",), {"bf16": 121.0, "fp16": 121.0, "tf32": 60.0, "fp32": 30.3}),
    (("RTX 6000 ADA",), {"bf16": 364.0, "fp16": 364.0, "tf32": 182.0, "fp32": 91.1}),
    (("A6000",), {"bf16": 154.8, "fp16": 154.8, "tf32": 77.4, "fp32": 38.7}),
    (("4090",), {"bf16": 165.2, "fp16": 165.2, "tf32": 82.6, "fp32": 82.6}),
    (("4080",), {"bf16": 97.5, "fp16": 97.5, "tf32": 48.7, "fp32": 48.7}),
    (("3090",), {"bf16": 71.0, "fp16": 71.0, "tf32": 35.6, "fp32": 35.6}),
    (("V100",), {"fp16": 125.0, "fp32": 15.7}),
    (("T4",), {"fp16": 65.0, "fp32": 8.1}),
]


def compute_dtype(mixed_precision: str, tf32: bool) -> str:
    """The dtype whose peak applies: the autocast dtype, else fp32 (tf32 when matmuls may use it)."""
    if mixed_precision in ("bf16", "fp16"):
        return mixed_precision
    return "tf32" if tf32 else "fp32"


def peak_tflops(device_name: str, dtype: str) -> float | None:
    """The table's peak for this GPU and dtype, or None when the GPU (or dtype) is not in it."""
    name = device_name.upper()
    for fragments, peaks in PEAK_TFLOPS:
        if all(fragment in name for fragment in fragments):
            return peaks.get(dtype)
    return None


def utilisation(flops_per_step: float | None, seconds_per_step: float | None,
                peak: float | None) -> tuple[float | None, float | None]:
    """(achieved TFLOP/s, MFU as a fraction of `peak`); None where an input is missing."""
    if not flops_per_step or not seconds_per_step:
        return None, None
    achieved = flops_per_step / seconds_per_step / 1e12
    return round(achieved, 5), (round(achieved / peak, 4) if peak else None)
