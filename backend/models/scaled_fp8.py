"""ComfyUI's "scaled fp8" checkpoints (e.g. `t5xxl_fp8_e4m3fn_scaled.safetensors`, `flux1-dev-fp8_scaled`).

Such a file marks itself with an empty `scaled_fp8` tensor and stores each Linear weight in float8 beside a
`<layer>.scale_weight` (the real weight is the float8 value times that scale) and sometimes a
`<layer>.scale_input` (only for float8 matmuls, which we do not run). Read as plain weights, every layer
would be off by its scale; as they are, the architecture check would refuse the extra keys. So the reader
applies the scales once, on reading, and drops the marker and the input scales: what the model gets is
what ComfyUI computes with (its weight cast to the compute dtype, times the scale).
"""

from __future__ import annotations

import torch

MARKER = "scaled_fp8"
WEIGHT_SCALE, INPUT_SCALE = ".scale_weight", ".scale_input"


def is_scaled_fp8(state: dict[str, torch.Tensor]) -> bool:
    return MARKER in state


def unscale(state: dict[str, torch.Tensor], dtype: torch.dtype | None) -> dict[str, torch.Tensor]:
    """`state` with each `X.weight` multiplied by its `X.scale_weight`, in `dtype` (None: the scale's dtype,
    float32 in the files seen), and without the marker and the scale tensors. A state without the marker is
    returned as it is."""
    if not is_scaled_fp8(state):
        return state
    unscaled: dict[str, torch.Tensor] = {}
    for name, tensor in state.items():
        if name == MARKER or name.endswith(INPUT_SCALE) or name.endswith(WEIGHT_SCALE):
            continue
        scale = state.get(name.removesuffix(".weight") + WEIGHT_SCALE) if name.endswith(".weight") else None
        if scale is None:
            unscaled[name] = tensor
            continue
        wanted = dtype or (scale.dtype if scale.is_floating_point() else torch.float32)
        unscaled[name] = tensor.to(wanted) * scale.to(device=tensor.device, dtype=wanted)
    return unscaled
