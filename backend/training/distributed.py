"""What only matters with several processes (`accelerate launch --num_processes N`).

Each process holds its own copy of the trained network; the loop keeps the copies identical by
averaging gradients before every optimizer step. `check_in_sync` proves it at every save: a
copy that drifted (a module drawing from an unseeded RNG in a way that changes weights, a
missed reduction) would make the saved file one process's private result.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Mapping

import torch
from accelerate import Accelerator
from accelerate.utils import gather_object

logger = logging.getLogger(__name__)


def tensors_checksum(tensors: Mapping[str, torch.Tensor]) -> str:
    """sha256 over names, dtypes, shapes and raw bytes in name order: equal only for bit-identical tensors.

    The same function applied to a saved LoRA file (saved without a dtype change) gives the same value."""
    digest = hashlib.sha256()
    for name in sorted(tensors):
        tensor = tensors[name].detach().to("cpu").contiguous()
        digest.update(f"{name}:{tensor.dtype}:{tuple(tensor.shape)}".encode())
        digest.update(tensor.reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def check_in_sync(accelerator: Accelerator, module: torch.nn.Module) -> None:
    """Raise unless every process holds bit-identical weights of `module` (a collective: call on all)."""
    if accelerator.num_processes == 1:
        return
    checksums = gather_object([tensors_checksum(module.state_dict())])
    if accelerator.is_main_process:
        logger.info("network checksums per process: %s", " ".join(checksums))
    if len(set(checksums)) > 1:
        raise RuntimeError(
            "the processes hold different network weights (checksums per process: "
            f"{', '.join(checksums)}); the run is not data-parallel any more. Please report this as a bug"
        )
