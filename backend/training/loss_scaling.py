"""--full_fp16: the fp16 loss scaler must accept float16 gradients.

Under `--mixed_precision fp16` on a GPU, accelerate scales the loss with torch's GradScaler and
unscales the gradients before clipping and before the optimizer step. GradScaler refuses float16
gradients ("Attempting to unscale FP16 gradients"): it expects float32 master weights. With
--full_fp16 the trained weights, and so their gradients, are float16, so the first optimizer step
would fail on every CUDA GPU (the CPU has no fp16 mixed precision and no scaler). sd-scripts lets the
scaler unscale them in place (train_util.patch_accelerator_for_fp16_training); this does the same.
A gradient that overflows float16 when unscaled is found as inf, and the scaler skips that step, as
it does for any overflow.
"""

from __future__ import annotations

from typing import Any


def allow_half_gradients(accelerator: Any) -> bool:
    """Let `accelerator`'s loss scaler unscale float16 gradients; False when it has no scaler
    (bf16, fp32, the CPU, DeepSpeed: nothing to change)."""
    scaler = getattr(accelerator, "scaler", None)
    if scaler is None:
        return False
    unscale = scaler._unscale_grads_

    def unscale_allowing_fp16(optimizer: Any, inv_scale: Any, found_inf: Any, allow_fp16: bool) -> Any:
        return unscale(optimizer, inv_scale, found_inf, True)

    scaler._unscale_grads_ = unscale_allowing_fp16
    return True
