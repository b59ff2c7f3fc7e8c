"""`networks.lora` on a family whose sd-scripts LoRA module is its own (FLUX.1: networks/lora_flux.py).

sd-scripts has one LoRA module per model architecture after SDXL, each with its own targets, key
names and network_args. A family brings that as a `NetworkLayout` (`ModelFamily.network_layout`):
which layers get LoRA under which names (fused layers included, backend/networks/fused.py), which
network_args it reads, and which it refuses with a reason. The network object, files, loading,
merging, scale_weight_norms and LoRA+ are the shared ones (network.py, build.py).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from backend.messages import msg
from backend.networks.arg_keys import LORA, PER_BLOCK_KEYS, keys_read_by
from backend.networks.args import ArgReader, NetworkArgsError, check_known_keys
from backend.networks.build import build_network, check_weights_match, ranks_from_weights
from backend.networks.fused import FusedLoRAModule
from backend.networks.models import Models, NetworkLayout
from backend.networks.module import LoRAModule
from backend.networks.naming import Target
from backend.networks.network import LoRANetwork
from backend.networks.swapped import HalvesSwappedLoRAModule
from backend.networks.weights_io import StateDict, weights_from

logger = logging.getLogger(__name__)

# What every layout reads (how a network trains, not what it holds): dropouts, LoRA+ ratios.
SHARED_KEYS = tuple(key for key in keys_read_by(LORA, "training") if key not in PER_BLOCK_KEYS)


def check_layout_keys(layout: NetworkLayout, kwargs: Mapping[str, Any], module_name: str) -> None:
    for key in kwargs:
        why = layout.refused_reason(key)
        if why:
            raise NetworkArgsError(msg(
                "network.layout.refused_key", "network_args {key} does not apply to {model}: {why}",
                key=repr(key), model=layout.label, why=why,
            ))  # fmt: skip
    check_known_keys(kwargs, (*SHARED_KEYS, *layout.shape_keys), f"{module_name} ({layout.label})")


def _factory(split: bool, multiplier: float, dropout: float | None, rank_dropout: float | None,
             module_dropout: float | None):
    def make(target: Target, dim: int, alpha: float) -> nn.Module:
        if target.members:
            return FusedLoRAModule(target.lora_name, target.members, multiplier, dim, alpha, dropout, rank_dropout,
                                   module_dropout, split=split)
        if target.swapped_halves:
            return HalvesSwappedLoRAModule(target.lora_name, target.module, multiplier, dim, alpha, dropout,
                                           rank_dropout, module_dropout)
        return LoRAModule(target.lora_name, target.module, multiplier, dim, alpha, dropout, rank_dropout, module_dropout)

    return make


def _loraplus(args: ArgReader) -> tuple[float | None, float | None, float | None]:
    return (args.number("loraplus_lr_ratio"), args.number("loraplus_unet_lr_ratio"),
            args.number("loraplus_text_encoder_lr_ratio"))


def create_layout_network(models: Models, multiplier: float, dim: int, alpha: float, neuron_dropout: float | None,
                          kwargs: Mapping[str, Any], module_name: str) -> LoRANetwork:
    """A new network laid out by `models.network_layout` (networks.lora's create_network)."""
    layout = models.network_layout
    assert layout is not None
    check_layout_keys(layout, kwargs, module_name)
    args = ArgReader(kwargs)
    dropout = neuron_dropout if neuron_dropout is not None else args.number("dropout")
    rank_dropout, module_dropout = args.number("rank_dropout"), args.number("module_dropout")
    split = layout.split_fused(args)
    logger.info(
        "LoRA (%s): rank %d, alpha %s, dropout %s, rank dropout %s, module dropout %s, split fused layers %s",
        layout.label, dim, alpha, dropout, rank_dropout, module_dropout, split,
    )
    return build_network(
        models, False, layout.rank_chooser(models, args, dim, alpha),
        _factory(split, multiplier, dropout, rank_dropout, module_dropout),
        multiplier, None, _loraplus(args), targets=layout.targets(models, args, None),
    )


def create_layout_network_from_weights(
    models: Models, multiplier: float, file: str | os.PathLike[str] | None,
    weights_sd: Mapping[str, torch.Tensor] | None, for_inference: bool, neuron_dropout: float | None,
    kwargs: Mapping[str, Any], module_name: str,
) -> tuple[LoRANetwork, StateDict]:
    """A network shaped like the file (ranks, alphas, which layers), fused layers unsplit (files hold them
    merged), weights not loaded: networks.lora's create_network_from_weights."""
    layout = models.network_layout
    assert layout is not None
    check_layout_keys(layout, kwargs, module_name)
    ignored = [key for key in layout.shape_keys if key in kwargs]
    if ignored:
        logger.warning(msg(
            "network.lora.ranks_from_weights", "ranks come from the weights; network_args {keys} are ignored",
            keys=", ".join(ignored),
        ))  # fmt: skip
    args = ArgReader(kwargs)
    weights = weights_from(file, weights_sd)
    if for_inference:
        factory = _factory(False, multiplier, None, None, None)
    else:
        dropout = neuron_dropout if neuron_dropout is not None else args.number("dropout")
        factory = _factory(False, multiplier, dropout, args.number("rank_dropout"), args.number("module_dropout"))
    network = build_network(
        models, False, ranks_from_weights(weights), factory, multiplier, None, _loraplus(args),
        targets=layout.targets(models, None, weights),
    )
    check_weights_match(network, weights, str(file) if file is not None else "weights")
    return network, weights

