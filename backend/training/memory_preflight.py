"""Preflight's memory estimate: the planner's breakdown (backend/memory) in the --preflight report, and a
warning when the predicted need exceeds the GPU the run will use."""

from __future__ import annotations

import argparse
from typing import Any

from backend.memory.estimate import Estimate, estimate, gib
from backend.memory.fit import PLAN_ERRORS
from backend.messages import msg


def _gpu_memory() -> int | None:
    import torch

    if not torch.cuda.is_available():
        return None
    return int(torch.cuda.get_device_properties(0).total_memory)


def memory_check(args: argparse.Namespace, command: str, family: str) -> tuple[dict[str, Any], list[str]]:
    """(the report's "memory" entry, warnings). A run the planner cannot read says why in the entry."""
    total = _gpu_memory()
    options = {**vars(args), "model_type": family}
    try:
        planned: Estimate = estimate(command, options, "cuda" if total is not None else "cpu")
    except PLAN_ERRORS as exc:
        return {"error": str(exc)}, []
    report = planned.as_json()
    warnings: list[str] = []
    if total is not None:
        report["gpu_total_bytes"] = total
        if planned.card_need() > total:
            warnings.append(msg(
                "preflight.memory.too_big", "the memory planner predicts {need} of GPU memory for this run, more "
                "than this GPU's {total}: it may run out of memory. The GUI's Memory panel (\"Fit my GPU\") proposes "
                "savers such as --cache_latents, --gradient_checkpointing or an 8-bit optimizer",
                need=gib(planned.card_need()), total=gib(total),
            ))  # fmt: skip
    return report, warnings
