"""Turning models plus per-layer (rank, alpha) choices into a `LoRANetwork`; shared by LoRA and DyLoRA."""

from __future__ import annotations

import logging
from collections.abc import Mapping

import torch
from torch import nn

from backend.messages import msg
from backend.networks.models import Models, ModuleFactory, RankChooser
from backend.networks.naming import Target
from backend.networks.network import LoRANetwork
from backend.networks.weights_io import module_dims

logger = logging.getLogger(__name__)


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
