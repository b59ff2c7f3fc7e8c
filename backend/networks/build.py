"""Turning models plus per-layer (rank, alpha) choices into a `LoRANetwork`; shared by LoRA and DyLoRA."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from backend.families.blocks import BlockLayout
from backend.families.loaded import family_of_modules
from backend.families.network_targets import NetworkTargets
from backend.messages import msg
from backend.networks.naming import (
    ModuleNameMap,
    Target,
    as_list,
    resolve_unet_module_name,
    text_encoder_targets,
    unet_targets,
)
from backend.networks.network import LoRANetwork
from backend.networks.weights_io import module_dims

if TYPE_CHECKING:
    from backend.networks.layout import NetworkLayout

logger = logging.getLogger(__name__)

# (target, rank, alpha) -> module; rank 0 never reaches it.
ModuleFactory = Callable[[Target, int, float], nn.Module]
# target -> (rank, alpha), rank 0/None = no LoRA on this layer.
RankChooser = Callable[[Target], tuple[int | None, float | None]]


@dataclass(frozen=True)
class Models:
    text_encoders: list[nn.Module]
    unet: nn.Module | None
    unet_module_name: ModuleNameMap
    layout: BlockLayout  # the family's U-Net blocks (per-block network options)
    classes: NetworkTargets  # the family's modules a network wraps
    # The family's own network layout (its sd-scripts module is not networks/lora.py); None: sd-scripts' lora.py.
    network_layout: NetworkLayout | None = None

    @classmethod
    def of(cls, text_encoder: Any, unet: nn.Module | None, unet_module_name: ModuleNameMap | None) -> Models:
        text_encoders = as_list(text_encoder)
        family = family_of_modules(unet, len(text_encoders))
        module_name = resolve_unet_module_name(unet, unet_module_name)
        return cls(text_encoders, unet, module_name, family.block_layout, family.network_targets,
                   family.network_layout)

    def targets(self, with_conv: bool) -> tuple[list[Target], list[Target]]:
        te = text_encoder_targets(self.text_encoders, self.classes)
        unet = unet_targets(self.unet, with_conv, self.unet_module_name, self.classes) if self.unet is not None else []
        return te, unet


def build_network(
    models: Models,
    with_conv: bool,
    choose: RankChooser,
    make_module: ModuleFactory,
    multiplier: float,
    block_lr_weight: list[float] | None = None,
    loraplus_ratios: tuple[float | None, float | None, float | None] = (None, None, None),
    targets: tuple[list[Target], list[Target]] | None = None,
) -> LoRANetwork:
    """`targets` (text encoders', denoiser's): when a family's network layout chose them; default: by class."""
    te_targets, unet_targets_ = targets if targets is not None else models.targets(with_conv)

    def create(targets: list[Target]) -> list[nn.Module]:
        modules, skipped = [], []
        for target in targets:
            dim, alpha = choose(target)
            if not dim:
                skipped.append(target.lora_name)
                continue
            modules.append(make_module(target, dim, alpha if alpha is not None else dim))
        if skipped:
            logger.info("no LoRA (rank 0) on %d layers, e.g. %s", len(skipped), skipped[0])
        return modules

    te_modules, unet_modules = create(te_targets), create(unet_targets_)
    logger.info("LoRA modules: %d text encoder, %d U-Net", len(te_modules), len(unet_modules))
    return LoRANetwork(
        te_modules,
        unet_modules,
        text_encoder_index={t.lora_name: t.text_encoder_index for t in te_targets},
        name_aliases={t.diffusers_name: t.lora_name for t in te_targets + unet_targets_},
        multiplier=multiplier,
        block_layout=models.layout,
        block_lr_weight=block_lr_weight,
        loraplus_ratios=loraplus_ratios,
    )


def ranks_from_weights(weights_sd: Mapping[str, torch.Tensor]) -> RankChooser:
    """Rank/alpha per layer as stored in a LoRA file (by sd-scripts name or our own path)."""
    dims = module_dims(weights_sd)
    if not dims:
        raise ValueError(msg(
            "network.weights.not_lora", "the weights hold no lora_down/lora_up pairs (a LoRA file is expected)"
        ))  # fmt: skip

    def choose(target: Target) -> tuple[int | None, float | None]:
        return dims.get(target.lora_name) or dims.get(target.diffusers_name) or (None, None)

    return choose


def check_weights_match(network: LoRANetwork, weights_sd: Mapping[str, torch.Tensor], source: str) -> None:
    """Error when no module of the weights fits the model; warn about the ones that do not."""
    own = {lora.lora_name for lora in network.all_loras()}
    if not own:
        raise ValueError(msg(
            "network.weights.no_match",
            "{source}: no module in the weights matches a layer of this model (another model family?)",
            source=source,
        ))  # fmt: skip
    names = {key.partition(".")[0] for key in network.normalize_keys(weights_sd)}
    unused = sorted(names - own)
    if unused:
        logger.warning(msg(
            "network.weights.some_unmatched", "{source}: {count} modules in the weights match no layer of this model, "
            "e.g. {example}",
            source=source, count=len(unused), example=unused[0],
        ))  # fmt: skip
