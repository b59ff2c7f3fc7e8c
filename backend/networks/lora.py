"""`--network_module networks.lora`: LoRA (and LoCon with `conv_dim`) as sd-scripts trains it.

Targets, key names, initialization and scaling are sd-scripts' (see naming.py, module.py), so files
load in A1111, ComfyUI and diffusers. network_args read here (values are strings, converted):

| key | meaning |
| --- | --- |
| conv_dim, conv_alpha | rank/alpha for 3x3 convs in ResnetBlock2D/Downsample2D/Upsample2D; without conv_dim no conv LoRA; conv_alpha defaults to 1 |
| dropout | neuron dropout, used when --network_dropout is not given (sd-scripts' trainer passes it too) |
| rank_dropout, module_dropout | drop rank channels / whole modules per step, training only |
| block_dims, block_alphas | 25 (SDXL: 23) comma-separated values per U-Net block, for Linear and 1x1 convs |
| conv_block_dims, conv_block_alphas | the same for 3x3 convs |
| down_lr_weight, mid_lr_weight, up_lr_weight, block_lr_zero_threshold | per-block learning-rate factors (blocks.py) |
| loraplus_lr_ratio, loraplus_unet_lr_ratio, loraplus_text_encoder_lr_ratio | LoRA+: up weights train at lr * ratio |

Unlike sd-scripts, a key not in this table is an error naming the nearest known key.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from backend.families.blocks import BlockLayout
from backend.messages import msg
from backend.networks.arg_keys import keys_read_by
from backend.networks.args import ArgReader, NetworkArgsError, check_known_keys
from backend.networks.blocks import block_lr_weights, parse_block_values
from backend.networks.build import build_network, check_weights_match, ranks_from_weights
from backend.networks.layout import create_layout_network, create_layout_network_from_weights
from backend.networks.models import Models, RankChooser
from backend.networks.module import LoRAModule
from backend.networks.naming import ModuleNameMap, Target
from backend.networks.network import LoRANetwork
from backend.networks.weights_io import weights_from

logger = logging.getLogger(__name__)

MODULE_NAME = "networks.lora"
DEFAULT_DIM = 4
DEFAULT_ALPHA = 1.0

# The network_args read here, declared in arg_keys.py (the table above says what they do).
DIM_KEYS = keys_read_by(MODULE_NAME, "shape")  # from the file instead when made from weights
TRAINING_KEYS = keys_read_by(MODULE_NAME, "training")
KNOWN_KEYS = DIM_KEYS + TRAINING_KEYS


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
    """A new LoRA network for `text_encoder` (one model or a list) and `unet`; see the module doc. A family
    with a network layout of its own (FLUX.1) lays it out and reads its own network_args (layout.py)."""
    models = Models.of(text_encoder, unet, unet_module_name)
    dim = DEFAULT_DIM if network_dim is None else int(network_dim)
    alpha = DEFAULT_ALPHA if network_alpha is None else float(network_alpha)
    if models.network_layout is not None:
        return create_layout_network(models, multiplier, dim, alpha, neuron_dropout, kwargs, MODULE_NAME)
    check_known_keys(kwargs, KNOWN_KEYS, MODULE_NAME)
    args = ArgReader(kwargs)

    conv_dim = args.integer("conv_dim")
    conv_alpha = args.number("conv_alpha")
    if conv_alpha is None:
        conv_alpha = 1.0
    elif conv_dim is None and "conv_block_dims" not in args:
        logger.warning(msg("network.lora.conv_alpha_without_dim", "conv_alpha is set without conv_dim: 3x3 convs get no LoRA"))
    block_lr_weight = _block_lr_weight(args, models.layout)
    per_block = "block_dims" in args or block_lr_weight is not None
    conv_per_block = "conv_block_dims" in args
    if not per_block and ("block_alphas" in args or conv_per_block or "conv_block_alphas" in args):
        raise NetworkArgsError(msg(
            "network.lora.block_args_need_block_dims",
            "block_alphas/conv_block_dims/conv_block_alphas need block_dims (or block lr weights)",
        ))  # fmt: skip

    if per_block:
        choose = _per_block_ranks(args, models.layout, dim, alpha, conv_dim, conv_alpha, block_lr_weight)
        with_conv = conv_dim is not None or conv_per_block
    else:
        choose = _uniform_ranks(dim, alpha, conv_dim, conv_alpha)
        with_conv = conv_dim is not None

    dropout = neuron_dropout if neuron_dropout is not None else args.number("dropout")
    rank_dropout, module_dropout = args.number("rank_dropout"), args.number("module_dropout")
    logger.info(
        "LoRA: rank %d, alpha %s, conv rank %s (alpha %s), dropout %s, rank dropout %s, module dropout %s",
        dim, alpha, conv_dim, conv_alpha if conv_dim else None, dropout, rank_dropout, module_dropout,
    )
    return build_network(
        models, with_conv, choose,
        _factory(multiplier, dropout, rank_dropout, module_dropout),
        multiplier, block_lr_weight, loraplus_ratios(args),
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
    neuron_dropout: float | None = None,
    **kwargs: Any,
) -> tuple[LoRANetwork, dict[str, torch.Tensor]]:
    """A network shaped like the file (ranks, alphas, conv layers): --dim_from_weights and
    --base_weights. The weights are returned, not loaded: call `load_weights` or `merge_to`.
    `for_inference` turns dropout off; rank-shaping network_args are ignored (the file decides)."""
    models = Models.of(text_encoder, unet, unet_module_name)
    if models.network_layout is not None:
        return create_layout_network_from_weights(
            models, multiplier, file, weights_sd, for_inference, neuron_dropout, kwargs, MODULE_NAME,
        )
    check_known_keys(kwargs, KNOWN_KEYS, MODULE_NAME)
    ignored = [key for key in DIM_KEYS if key in kwargs]
    if ignored:
        logger.warning(msg(
            "network.lora.ranks_from_weights", "ranks come from the weights; network_args {keys} are ignored",
            keys=", ".join(ignored),
        ))  # fmt: skip
    args = ArgReader(kwargs)
    weights = weights_from(file, weights_sd)
    if for_inference:
        factory = _factory(multiplier, None, None, None)
    else:
        dropout = neuron_dropout if neuron_dropout is not None else args.number("dropout")
        factory = _factory(multiplier, dropout, args.number("rank_dropout"), args.number("module_dropout"))
    network = build_network(
        models, True, ranks_from_weights(weights), factory, multiplier,
        _block_lr_weight(args, models.layout), loraplus_ratios(args),
    )
    check_weights_match(network, weights, str(file) if file is not None else "weights")
    return network, weights


def _factory(multiplier: float, dropout: float | None, rank_dropout: float | None, module_dropout: float | None):
    def make(target: Target, dim: int, alpha: float) -> nn.Module:
        return LoRAModule(target.lora_name, target.module, multiplier, dim, alpha, dropout, rank_dropout, module_dropout)

    return make


def _uniform_ranks(dim: int, alpha: float, conv_dim: int | None, conv_alpha: float) -> RankChooser:
    def choose(target: Target) -> tuple[int | None, float | None]:
        if target.kind != "conv":
            return dim, alpha
        return (conv_dim, conv_alpha) if conv_dim else (None, None)

    return choose


def _per_block_ranks(
    args: ArgReader,
    layout: BlockLayout,
    dim: int,
    alpha: float,
    conv_dim: int | None,
    conv_alpha: float,
    block_lr_weight: list[float] | None,
) -> RankChooser:
    """sd-scripts' block_dims semantics: text encoders keep the network rank; U-Net layers take their
    block's value; blocks whose learning-rate weight is 0 get no LoRA."""
    dims = [int(d) for d in parse_block_values(args.integers("block_dims"), dim, layout, "block_dims")]
    alphas = parse_block_values(args.numbers("block_alphas"), alpha, layout, "block_alphas")
    conv_dims: list[int] | None = None
    conv_alphas: list[float] = []
    if "conv_block_dims" in args or conv_dim is not None:
        conv_dims = [int(d) for d in parse_block_values(args.integers("conv_block_dims"), conv_dim or 0, layout, "conv_block_dims")]
        conv_alphas = parse_block_values(args.numbers("conv_block_alphas"), conv_alpha, layout, "conv_block_alphas")
    if block_lr_weight is not None:
        for index, weight in enumerate(block_lr_weight):
            if weight == 0:
                dims[index] = 0
                if conv_dims is not None:
                    conv_dims[index] = 0

    def choose(target: Target) -> tuple[int | None, float | None]:
        if target.text_encoder_index is not None:
            return dim, alpha
        index = layout.block_index(target.lora_name)
        if target.kind != "conv":
            return dims[index], alphas[index]
        return (conv_dims[index], conv_alphas[index]) if conv_dims is not None else (None, None)

    return choose


def _block_lr_weight(args: ArgReader, layout: BlockLayout) -> list[float] | None:
    return block_lr_weights(
        layout,
        args.text("down_lr_weight"),
        args.text("mid_lr_weight"),
        args.text("up_lr_weight"),
        args.number("block_lr_zero_threshold") or 0.0,
    )


def loraplus_ratios(args: ArgReader) -> tuple[float | None, float | None, float | None]:
    return (
        args.number("loraplus_lr_ratio"),
        args.number("loraplus_unet_lr_ratio"),
        args.number("loraplus_text_encoder_lr_ratio"),
    )
