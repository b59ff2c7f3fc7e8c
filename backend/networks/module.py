"""One LoRA layer: `y = W x + multiplier * scale * up(down(x))`, added by wrapping `forward`.

As in sd-scripts, `apply_to()` replaces the wrapped layer's `forward` attribute instead of the layer
itself: the base model keeps its structure and state-dict keys, the base weights are never copied,
and the LoRA parameters live only in the network. The wrapped layer is kept in a list so that
`nn.Module` does not register it (its weights would otherwise land in the LoRA state dict).

`scale = alpha / dim`; alpha 0 or None means alpha = dim (scale 1). `down` is Kaiming-uniform and
`up` is zero, so a fresh network leaves the model's output unchanged. For a conv layer, `down` is a
conv with the wrapped layer's kernel/stride/padding and `up` a 1x1 conv (LoCon layout).
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import Any

import torch
from torch import nn


def effective_alpha(alpha: float | torch.Tensor | None, dim: int) -> float:
    if isinstance(alpha, torch.Tensor):
        alpha = float(alpha.detach().float().item())
    return float(dim) if alpha is None or alpha == 0 else float(alpha)


def compose(up: torch.Tensor, down: torch.Tensor) -> torch.Tensor:
    """The weight delta `up @ down` in the wrapped layer's weight shape (without scale)."""
    up, down = up.float(), down.float()
    if down.dim() == 2:
        return up @ down
    if down.shape[2:] == (1, 1):
        return (up.flatten(1) @ down.flatten(1)).unsqueeze(2).unsqueeze(3)
    # kxk down followed by 1x1 up: the product is a kxk kernel.
    return nn.functional.conv2d(down.permute(1, 0, 2, 3), up).permute(1, 0, 2, 3)


def max_norm_ratio(delta: torch.Tensor, max_norm: float) -> tuple[float, float]:
    """(factor for the delta, delta norm after scaling) as sd-scripts' --scale_weight_norms."""
    norm = float(delta.norm())
    # The relative tolerance keeps a module scaled last step from counting again over rounding.
    if norm <= max_norm * (1 + 1e-5):
        return 1.0, norm
    ratio = max_norm / norm
    return ratio, norm * ratio


class WrappedLayer(nn.Module, ABC):
    """What LoRA and DyLoRA modules share: the wrapped layer, alpha/scale, multiplier, merging."""

    def __init__(self, lora_name: str, org_module: nn.Module, multiplier: float, lora_dim: int,
                 alpha: float | torch.Tensor | None):
        super().__init__()
        self.lora_name = lora_name
        self.lora_dim = lora_dim
        alpha_value = effective_alpha(alpha, lora_dim)
        self.scale = alpha_value / lora_dim
        self.register_buffer("alpha", torch.tensor(alpha_value))
        self.multiplier = multiplier
        self._org_module = [org_module]
        self._org_forward: Callable[..., Any] | None = None

    @property
    def org_module(self) -> nn.Module:
        return self._org_module[0]

    def apply_to(self) -> None:
        if self._org_forward is not None:
            raise RuntimeError(f"LoRA {self.lora_name} is already applied")
        self._org_forward = self.org_module.forward
        self.org_module.forward = self.forward

    def org_forward(self, x: torch.Tensor, *args: Any, **kwargs: Any) -> torch.Tensor:
        assert self._org_forward is not None, "apply_to() first"
        return self._org_forward(x, *args, **kwargs)

    @abstractmethod
    def up_down(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The full-rank up and down weights, shaped as a standard LoRA file stores them."""

    @abstractmethod
    def rescale_(self, factor: float) -> None:
        """Multiply the up and down weights by `factor` in place."""

    @abstractmethod
    def is_up_param(self, name: str) -> bool:
        """LoRA+ trains the up projection with a larger learning rate."""

    def delta_weight(self) -> torch.Tensor:
        """multiplier * scale * up @ down, in the wrapped layer's weight shape (float32)."""
        return compose(*self.up_down()) * (self.multiplier * self.scale)

    @torch.no_grad()
    def apply_max_norm(self, max_norm: float) -> tuple[bool, float]:
        ratio, norm = max_norm_ratio(compose(*self.up_down()) * self.scale, max_norm)
        if ratio < 1.0:
            self.rescale_(math.sqrt(ratio))
        return ratio < 1.0, norm

    @torch.no_grad()
    def merge_into_org(self, dtype: torch.dtype | None, device: torch.device | str | None) -> None:
        """Add this LoRA's delta to the wrapped layer's weight (for --base_weights)."""
        weight = self.org_module.weight
        delta = self.delta_weight().to(device=device or weight.device)
        merged = weight.to(device=delta.device, dtype=torch.float32) + delta
        weight.data = merged.to(device=weight.device, dtype=dtype or weight.dtype)


class LoRAModule(WrappedLayer):
    def __init__(
        self,
        lora_name: str,
        org_module: nn.Module,
        multiplier: float = 1.0,
        lora_dim: int = 4,
        alpha: float | torch.Tensor | None = 1.0,
        dropout: float | None = None,
        rank_dropout: float | None = None,
        module_dropout: float | None = None,
    ):
        super().__init__(lora_name, org_module, multiplier, lora_dim, alpha)
        device = org_module.weight.device
        if isinstance(org_module, nn.Conv2d):
            self.lora_down: nn.Module = nn.Conv2d(
                org_module.in_channels, lora_dim, org_module.kernel_size, org_module.stride,
                org_module.padding, bias=False, device=device,
            )
            self.lora_up: nn.Module = nn.Conv2d(lora_dim, org_module.out_channels, 1, bias=False, device=device)
        else:
            self.lora_down = nn.Linear(org_module.in_features, lora_dim, bias=False, device=device)
            self.lora_up = nn.Linear(lora_dim, org_module.out_features, bias=False, device=device)
        nn.init.kaiming_uniform_(self.lora_down.weight, a=math.sqrt(5))
        nn.init.zeros_(self.lora_up.weight)
        self.dropout = dropout
        self.rank_dropout = rank_dropout
        self.module_dropout = module_dropout

    def is_up_param(self, name: str) -> bool:
        return name.startswith("lora_up")

    def up_down(self) -> tuple[torch.Tensor, torch.Tensor]:
        return self.lora_up.weight, self.lora_down.weight

    def rescale_(self, factor: float) -> None:
        self.lora_up.weight.mul_(factor)
        self.lora_down.weight.mul_(factor)

    def forward(self, x: torch.Tensor, *args: Any, **kwargs: Any) -> torch.Tensor:
        out = self.org_forward(x, *args, **kwargs)
        if self.multiplier == 0:
            return out
        if self.training and self.module_dropout and torch.rand(()) < self.module_dropout:
            return out

        lx = self.lora_down(x.to(self.lora_down.weight.dtype))
        if self.training and self.dropout:
            lx = nn.functional.dropout(lx, p=self.dropout)
        scale = self.scale
        if self.training and self.rank_dropout:
            mask = torch.rand((lx.size(0), self.lora_dim), device=lx.device) > self.rank_dropout
            if lx.dim() == 3:  # text encoder tokens: (batch, tokens, rank)
                mask = mask.unsqueeze(1)
            elif lx.dim() == 4:  # conv: (batch, rank, h, w)
                mask = mask.unsqueeze(-1).unsqueeze(-1)
            lx = lx * mask.to(lx.dtype)
            scale = scale / (1.0 - self.rank_dropout)  # keep the expected magnitude
        lx = self.lora_up(lx)
        return out + (lx * (self.multiplier * scale)).to(out.dtype)
