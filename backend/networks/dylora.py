"""`--network_module networks.dylora`: DyLoRA, LoRA trained so that any rank prefix works.

Each training step picks, per module, a random block `b` of `unit` ranks (b uniform over
`dim / unit` blocks, as sd-scripts). Ranks below the block are used but frozen for this step, the
block itself is trained, ranks above it are left out, and the output is scaled by
`sqrt(dim / ((b + 1) * unit))` so small prefixes are not drowned. After training, the first `r`
ranks (any multiple of `unit`) form a usable rank-`r` LoRA (tools/resize or extract_lora_from_dylora
cut them out). The file is a standard LoRA file: `lora_down.weight`, `lora_up.weight`, `alpha`.

Differences from sd-scripts' dylora, on purpose: evaluation/sampling uses the full rank (sd-scripts
also picks a random rank there), the multiplier is honoured, and SDXL text encoders are named
`lora_te1`/`lora_te2`.

network_args: `unit` (default 1; network_dim must be a multiple), `conv_dim` (turns on 3x3 conv
layers; must equal network_dim, as in sd-scripts), `conv_alpha` (accepted for sd-scripts configs but,
as there, ignored: network_alpha serves all layers), `dropout` (ignored with a warning: the trainer
may pass --network_dropout), and the LoRA+ ratios.
"""

from __future__ import annotations

import logging
import math
import os
import random
from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from backend.messages import msg
from backend.networks.arg_keys import keys_read_by
from backend.networks.args import ArgReader, NetworkArgsError, check_known_keys
from backend.networks.build import build_network, check_weights_match, ranks_from_weights
from backend.networks.lora import DEFAULT_ALPHA, DEFAULT_DIM, loraplus_ratios
from backend.networks.models import Models
from backend.networks.module import WrappedLayer
from backend.networks.naming import ModuleNameMap, Target
from backend.networks.network import LoRANetwork
from backend.networks.weights_io import weights_from

logger = logging.getLogger(__name__)

MODULE_NAME = "networks.dylora"
KNOWN_KEYS = keys_read_by(MODULE_NAME)  # declared in arg_keys.py


class DyLoRAModule(WrappedLayer):
    """Rank blocks are separate parameters so that untouched blocks get no gradient (None), which
    optimizers skip entirely, exactly like sd-scripts' per-rank requires_grad switching."""

    def __init__(self, lora_name: str, org_module: nn.Module, multiplier: float, lora_dim: int,
                 alpha: float | torch.Tensor | None, unit: int):
        super().__init__(lora_name, org_module, multiplier, lora_dim, alpha)
        if unit < 1 or lora_dim % unit:
            raise NetworkArgsError(msg(
                "network.dylora.rank_not_multiple", "DyLoRA: rank {rank} of {name} is not a multiple of unit={unit}",
                rank=lora_dim, name=lora_name, unit=unit,
            ))  # fmt: skip
        self.unit = unit
        self.blocks = lora_dim // unit
        self.block: int | None = None
        weight = org_module.weight
        self.is_conv = isinstance(org_module, nn.Conv2d)
        if self.is_conv:
            self.stride, self.padding = org_module.stride, org_module.padding
            down_shape = (unit, org_module.in_channels, *org_module.kernel_size)
            up_shape = (org_module.out_channels, unit, 1, 1)
        else:
            down_shape, up_shape = (unit, org_module.in_features), (org_module.out_features, unit)
        for b in range(self.blocks):
            down = nn.Parameter(torch.empty(down_shape, device=weight.device))
            # Kaiming-uniform over the whole down matrix's fan-in, as one LoRA down layer would have.
            nn.init.kaiming_uniform_(down, a=math.sqrt(5))
            self.register_parameter(f"down_{b}", down)
            self.register_parameter(f"up_{b}", nn.Parameter(torch.zeros(up_shape, device=weight.device)))

    def choose_block(self) -> None:
        """This step's trained block, drawn once per step (the trainer calls the network's
        on_step_start): a gradient-checkpointing recompute must see the same block as the forward."""
        self.block = random.randrange(self.blocks)

    def _down(self, b: int) -> nn.Parameter:
        return getattr(self, f"down_{b}")

    def _up(self, b: int) -> nn.Parameter:
        return getattr(self, f"up_{b}")

    def is_up_param(self, name: str) -> bool:
        return name.startswith("up_")

    def up_down(self) -> tuple[torch.Tensor, torch.Tensor]:
        return self._weights(self.blocks, trainable=None)

    def rescale_(self, factor: float) -> None:
        for b in range(self.blocks):
            self._down(b).mul_(factor)
            self._up(b).mul_(factor)

    def _weights(self, count: int, trainable: int | None) -> tuple[torch.Tensor, torch.Tensor]:
        """up/down of the first `count` blocks; blocks other than `trainable` are detached."""
        downs = [self._down(b) if trainable in (None, b) else self._down(b).detach() for b in range(count)]
        ups = [self._up(b) if trainable in (None, b) else self._up(b).detach() for b in range(count)]
        return torch.cat(ups, dim=1), torch.cat(downs, dim=0)

    def forward(self, x: torch.Tensor, *args: Any, **kwargs: Any) -> torch.Tensor:
        out = self.org_forward(x, *args, **kwargs)
        if self.multiplier == 0:
            return out
        if self.training:
            block = self.block if self.block is not None else random.randrange(self.blocks)
            up, down = self._weights(block + 1, trainable=block)
            boost = math.sqrt(self.lora_dim / ((block + 1) * self.unit))
        else:
            up, down = self.up_down()
            boost = 1.0
        h = x.to(down.dtype)
        if self.is_conv:
            h = nn.functional.conv2d(nn.functional.conv2d(h, down, stride=self.stride, padding=self.padding), up)
        else:
            h = nn.functional.linear(nn.functional.linear(h, down), up)
        return out + (h * (self.multiplier * self.scale * boost)).to(out.dtype)

    # The state dict holds the standard LoRA keys, not the per-block parameters.
    def _save_to_state_dict(self, destination: dict[str, Any], prefix: str, keep_vars: bool) -> None:
        up, down = self.up_down()
        destination[prefix + "lora_down.weight"] = down if keep_vars else down.detach()
        destination[prefix + "lora_up.weight"] = up if keep_vars else up.detach()
        destination[prefix + "alpha"] = self.alpha if keep_vars else self.alpha.detach()

    def _load_from_state_dict(self, state_dict: Mapping[str, Any], prefix: str, local_metadata: Any,
                              strict: bool, missing_keys: list[str], unexpected_keys: list[str],
                              error_msgs: list[str]) -> None:
        with torch.no_grad():
            if prefix + "alpha" in state_dict:
                self.alpha.copy_(state_dict[prefix + "alpha"])
            down, up = state_dict.get(prefix + "lora_down.weight"), state_dict.get(prefix + "lora_up.weight")
            if down is None or up is None:
                if strict:
                    missing_keys += [prefix + "lora_down.weight", prefix + "lora_up.weight"]
                return
            own_up, own_down = self.up_down()
            if down.shape != own_down.shape or up.shape != own_up.shape:
                error_msgs.append(f"{prefix}: shapes {tuple(down.shape)}/{tuple(up.shape)} do not fit "
                                  f"{tuple(own_down.shape)}/{tuple(own_up.shape)}")
                return
            for b in range(self.blocks):
                rows = slice(b * self.unit, (b + 1) * self.unit)
                self._down(b).copy_(down[rows])
                self._up(b).copy_(up[:, rows])


def create_network(
    multiplier: float,
    network_dim: int | None,
    network_alpha: float | None,
    vae: Any,
    text_encoder: nn.Module | list[nn.Module] | None,
    unet: nn.Module | None,
    neuron_dropout: float | None = None,
    *,
    unet_module_name: ModuleNameMap | None = None,
    **kwargs: Any,
) -> LoRANetwork:
    check_known_keys(kwargs, KNOWN_KEYS, MODULE_NAME)
    args = ArgReader(kwargs)
    models = Models.of(text_encoder, unet, unet_module_name)
    _refuse_layout(models)
    dim = DEFAULT_DIM if network_dim is None else int(network_dim)
    alpha = DEFAULT_ALPHA if network_alpha is None else float(network_alpha)
    unit = args.integer("unit") or 1
    conv_dim = args.integer("conv_dim")
    if conv_dim is not None and conv_dim != dim:
        raise NetworkArgsError(msg(
            "network.dylora.conv_dim", "DyLoRA: conv_dim ({conv_dim}) must equal network_dim ({dim})",
            conv_dim=conv_dim, dim=dim,
        ))  # fmt: skip
    if neuron_dropout or args.number("dropout"):
        logger.warning(msg("network.dylora.no_dropout", "DyLoRA does not use dropout; network_dropout/dropout are ignored"))
    if "conv_alpha" in args:
        logger.warning(msg(
            "network.dylora.conv_alpha",
            "DyLoRA uses network_alpha for conv layers too; conv_alpha is ignored (as in sd-scripts)",
        ))  # fmt: skip
    logger.info("DyLoRA: rank %d in units of %d, alpha %s, 3x3 convs %s", dim, unit, alpha, conv_dim is not None)

    def choose(target: Target) -> tuple[int | None, float | None]:
        return (dim, alpha) if target.kind != "conv" or conv_dim is not None else (None, None)

    return build_network(
        models, conv_dim is not None, choose, _factory(multiplier, unit), multiplier,
        loraplus_ratios=loraplus_ratios(args),
    )


def create_network_from_weights(
    multiplier: float,
    file: str | os.PathLike[str] | None,
    vae: Any,
    text_encoder: nn.Module | list[nn.Module] | None,
    unet: nn.Module | None,
    weights_sd: Mapping[str, torch.Tensor] | None = None,
    for_inference: bool = False,
    *,
    unet_module_name: ModuleNameMap | None = None,
    **kwargs: Any,
) -> tuple[LoRANetwork, dict[str, torch.Tensor]]:
    """A DyLoRA network shaped like a (DyLoRA or LoRA) file; `unit` must divide every rank."""
    check_known_keys(kwargs, KNOWN_KEYS, MODULE_NAME)
    args = ArgReader(kwargs)
    models = Models.of(text_encoder, unet, unet_module_name)
    _refuse_layout(models)
    weights = weights_from(file, weights_sd)
    network = build_network(
        models, True, ranks_from_weights(weights), _factory(multiplier, args.integer("unit") or 1),
        multiplier, loraplus_ratios=loraplus_ratios(args),
    )
    check_weights_match(network, weights, str(file) if file is not None else "weights")
    return network, weights


def _refuse_layout(models: Models) -> None:
    """sd-scripts has DyLoRA only for the U-Net families' layout (networks/lora.py's)."""
    if models.network_layout is not None:
        raise NetworkArgsError(msg(
            "network.dylora.not_for_family",
            "networks.dylora cannot train {model}: sd-scripts has DyLoRA only for the U-Net models; use "
            "--network_module networks.lora",
            model=models.network_layout.label,
        ))  # fmt: skip


def _factory(multiplier: float, unit: int):
    def make(target: Target, dim: int, alpha: float) -> nn.Module:
        return DyLoRAModule(target.lora_name, target.module, multiplier, dim, alpha, unit)

    return make
