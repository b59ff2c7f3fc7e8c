"""A LoRA over a layer whose original counterpart orders its output halves the other way round.

SD 3.5's last joint block has a context modulation that SAI's model (which sd-scripts trains and names
in its files) computes as (shift, scale) and diffusers' transformer, which we train, as (scale, shift).
sd-scripts' networks/lora_sd3.py wraps it like any Linear, so its `lora_up` rows are in SAI's order.
`HalvesSwappedLoRAModule` keeps `lora_up` in that order (the state dict is sd-scripts') and swaps the
halves of its output into ours, so training, files and merges agree with sd-scripts exactly.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from backend.networks.module import LoRAModule


def swap_halves(tensor: torch.Tensor, dim: int = 0) -> torch.Tensor:
    first, second = tensor.chunk(2, dim=dim)
    return torch.cat([second, first], dim=dim)


class _HalvesSwappedLinear(nn.Linear):
    """A Linear whose weight rows are in the original order and whose output is in ours."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return swap_halves(super().forward(x), dim=-1)


class HalvesSwappedLoRAModule(LoRAModule):
    def __init__(self, lora_name: str, org_module: nn.Module, *args: Any, **kwargs: Any) -> None:
        super().__init__(lora_name, org_module, *args, **kwargs)
        up = self.lora_up
        assert isinstance(up, nn.Linear) and up.out_features % 2 == 0
        self.lora_up = _HalvesSwappedLinear(up.in_features, up.out_features, bias=False, device=up.weight.device)
        nn.init.zeros_(self.lora_up.weight)

    def delta_weight(self) -> torch.Tensor:
        """In the wrapped (diffusers) layer's row order, for merging into it."""
        return swap_halves(super().delta_weight(), dim=0)
