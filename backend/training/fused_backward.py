"""--fused_backward_pass: the optimizer steps each weight as soon as its gradient is complete.

A full fine-tune otherwise holds a gradient for every trained weight until the backward pass ends:
as much memory again as the weights (SDXL's U-Net: 10 GB of float32 gradients). Here a hook on each
parameter (`register_post_accumulate_grad_hook`) averages the gradient across processes, clips it,
steps the optimizer for that one parameter and frees the gradient, so at most a few gradients exist
at any time.

The one-parameter step runs the optimizer's own `step()` with its param groups narrowed to that
parameter for the call; state stays keyed by parameter, so it is the optimizer's update, unchanged.
That is exact only for optimizers whose update of a weight reads nothing but that weight's gradient
and state (FUSABLE_OPTIMIZERS); sd-scripts offers Adafactor only, through a patched copy of its step.

sd-scripts' --blockwise_fused_optimizers and --fused_optimizer_groups N give each block (or group) an
optimizer of its own and step it when the block's gradients are complete; for the optimizers above that
is this per-weight step (the same updates, fewer gradients alive), so those flags run it too
(`FusedStepConfig.flag`). sd-scripts clips per weight there as well.

Two things differ from an unfused step, as in sd-scripts: --max_grad_norm clips each weight's
gradient on its own (a global norm needs every gradient at once), and gradient accumulation is
impossible (the gradient is spent when it is complete).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist

from backend.messages import msg
from backend.training.option_slice import OptionSlice

FUSABLE_OPTIMIZERS = ("Adafactor", "AdamW", "SGDNesterov")


@dataclass(frozen=True)
class FusedStepConfig(OptionSlice):
    """The flags asking for optimizer steps during the backward pass (fine-tuning commands)."""

    fused_backward_pass: bool
    blockwise_fused_optimizers: bool
    fused_optimizer_groups: int | None

    @property
    def flag(self) -> str | None:
        """The flag that asks for it (messages name it), or None."""
        if self.fused_backward_pass:
            return "--fused_backward_pass"
        if self.blockwise_fused_optimizers:
            return "--blockwise_fused_optimizers"
        if self.fused_optimizer_groups:
            return "--fused_optimizer_groups"
        return None


def fused_backward_problems(optimizer_name: str, accumulation_steps: int, mixed_precision: str,
                            sharded: bool, flag: str = "--fused_backward_pass") -> list[str]:
    """Why `flag` (FusedStepConfig.flag) cannot be used with these settings (empty when it can)."""
    problems = []
    if optimizer_name not in FUSABLE_OPTIMIZERS:
        problems.append(msg(
            "preflight.fused_backward.optimizer", "{flag} steps each weight on its own here, which is the same update "
            "only for optimizers that treat weights independently: {optimizers} (got {optimizer})",
            flag=flag, optimizers=", ".join(FUSABLE_OPTIMIZERS), optimizer=optimizer_name,
        ))
    if accumulation_steps > 1:
        problems.append(msg(
            "preflight.fused_backward.accumulation", "{flag} cannot accumulate gradients (each is applied as soon as "
            "it is complete): set --gradient_accumulation_steps 1, or use a larger --train_batch_size", flag=flag,
        ))
    if mixed_precision == "fp16":
        problems.append(msg(
            "preflight.fused_backward.fp16", "{flag} cannot be used with --mixed_precision fp16 (the loss scaler "
            "needs every gradient before any step); use bf16 or no", flag=flag,
        ))
    if sharded:
        problems.append(msg("preflight.fused_backward.sharded", "{flag} cannot be combined with DeepSpeed or FSDP "
                            "(they step the optimizer)", flag=flag))
    return problems


class FusedBackwardStep:
    """Hooks that apply the optimizer to each parameter during the backward pass."""

    def __init__(self, optimizer: Any, params: list[torch.nn.Parameter], max_grad_norm: float,
                 world_size: int) -> None:
        self.optimizer = optimizer
        self.max_grad_norm = max_grad_norm
        self.world_size = world_size
        self._group_of = {id(p): group for group in optimizer.param_groups for p in group["params"]}
        self._handles = [p.register_post_accumulate_grad_hook(self._step_parameter) for p in params]

    def _step_parameter(self, param: torch.Tensor) -> None:
        if param.grad is None:
            return
        if self.world_size > 1:
            dist.all_reduce(param.grad)
            param.grad /= self.world_size
        if self.max_grad_norm:
            torch.nn.utils.clip_grad_norm_([param], self.max_grad_norm)
        groups = self.optimizer.param_groups
        own = self._group_of[id(param)]
        saved = [group["params"] for group in groups]
        try:
            for group in groups:
                group["params"] = [param] if group is own else []
            self.optimizer.step()
        finally:
            for group, params in zip(groups, saved, strict=True):
                group["params"] = params
        param.grad = None

    def remove(self) -> None:
        for handle in self._handles:
            handle.remove()
