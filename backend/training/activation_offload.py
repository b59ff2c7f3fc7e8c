"""--cpu_offload_checkpointing: with gradient checkpointing, each checkpointed block's inputs (all that
checkpointing keeps for the backward pass) wait in CPU RAM instead of on the GPU.

sd-scripts does this inside its FLUX.1/SD3 models; here it is the checkpoint function diffusers models
take (`enable_gradient_checkpointing(gradient_checkpointing_func=...)`), so every family's denoiser gets
it. The inputs are copied to the host before the block runs (pinned, asynchronously, on the compute
stream) and back to the device when the block is recomputed in the backward pass; the copies are
differentiable, so gradients flow as without the offload. Only the copies cost time: results are the
same (tests/training/test_activation_offload.py).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch.utils.checkpoint import checkpoint

# What diffusers calls for each checkpointed block: (block, *its positional inputs) -> its outputs.
CheckpointFunction = Callable[..., Any]


def _to(value: Any, device: torch.device) -> Any:
    if isinstance(value, torch.Tensor):
        return value.to(device, non_blocking=True)
    if isinstance(value, tuple):  # rotary embeddings come as (cos, sin)
        return tuple(_to(item, device) for item in value)
    return value


def offloading_checkpoint(device: torch.device, host: torch.device | None = None) -> CheckpointFunction:
    """A checkpoint function keeping each block's inputs on `host` (the CPU) between forward and backward."""
    host = host or torch.device("cpu")

    def run_checkpointed(block: torch.nn.Module, *inputs: Any) -> Any:
        stored = tuple(_to(value, host) for value in inputs)

        def recompute(*held: Any) -> Any:
            return block(*(_to(value, device) for value in held))

        return checkpoint(recompute, *stored, use_reentrant=False)

    return run_checkpointed
