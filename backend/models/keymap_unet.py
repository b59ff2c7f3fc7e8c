"""U-Net naming: diffusers ``UNet2DConditionModel`` <-> original LDM/SGM ``model.diffusion_model``.

The original U-Net is a flat list of ``input_blocks`` (``conv_in`` first, then per level
``layers_per_block`` resnet[+transformer] blocks and one downsampler), a ``middle_block`` and
``output_blocks`` (``layers_per_block + 1`` per level, the last one carrying the upsampler). The table
is derived from the config, so the same code serves SD 1.x/2.x, SDXL and the tiny test models.

The same table maps module paths, which LoRA naming needs: SDXL LoRA files name U-Net modules by
their original names (``lora_unet_input_blocks_4_1_transformer_blocks_0_attn1_to_q``).
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import lru_cache
from typing import Any

import torch

from backend.models.keymap import PrefixMap

UNET_PREFIX = "model.diffusion_model."

# Resnet children: diffusers name -> index inside the original Sequential/attribute.
_RESNET_CHILDREN = {
    "norm1": "in_layers.0",
    "conv1": "in_layers.2",
    "time_emb_proj": "emb_layers.1",
    "norm2": "out_layers.0",
    "conv2": "out_layers.3",
    "conv_shortcut": "skip_connection",
}


def _resnet_pairs(diffusers: str, original: str) -> list[tuple[str, str]]:
    pairs = [(diffusers, original)]
    pairs += [(f"{diffusers}.{d}", f"{original}.{o}") for d, o in _RESNET_CHILDREN.items()]
    return pairs


def _unet_pairs(config: Mapping[str, Any]) -> list[tuple[str, str]]:
    levels = len(config["block_out_channels"])
    per_block = config["layers_per_block"]
    if not isinstance(per_block, int):
        raise ValueError("per-level layers_per_block lists are not supported by the original layout")
    down_types = config["down_block_types"]
    up_types = config["up_block_types"]

    pairs: list[tuple[str, str]] = [
        ("conv_in", "input_blocks.0.0"),
        ("time_embedding.linear_1", "time_embed.0"),
        ("time_embedding.linear_2", "time_embed.2"),
        ("conv_norm_out", "out.0"),
        ("conv_out", "out.2"),
    ]
    if config.get("addition_embed_type") == "text_time":
        pairs += [("add_embedding.linear_1", "label_emb.0.0"), ("add_embedding.linear_2", "label_emb.0.2")]
    elif config.get("class_embed_type") or config.get("addition_embed_type"):
        raise ValueError("only the SDXL text_time additional embedding is supported")

    for level in range(levels):
        has_attn = "CrossAttn" in down_types[level]
        for j in range(per_block):
            idx = 1 + level * (per_block + 1) + j
            pairs += _resnet_pairs(f"down_blocks.{level}.resnets.{j}", f"input_blocks.{idx}.0")
            if has_attn:
                pairs.append((f"down_blocks.{level}.attentions.{j}", f"input_blocks.{idx}.1"))
        if level < levels - 1:
            idx = 1 + level * (per_block + 1) + per_block
            pairs.append((f"down_blocks.{level}.downsamplers.0", f"input_blocks.{idx}.0"))
            pairs.append((f"down_blocks.{level}.downsamplers.0.conv", f"input_blocks.{idx}.0.op"))

    pairs += _resnet_pairs("mid_block.resnets.0", "middle_block.0")
    pairs.append(("mid_block.attentions.0", "middle_block.1"))
    pairs += _resnet_pairs("mid_block.resnets.1", "middle_block.2")

    for level in range(levels):
        has_attn = "CrossAttn" in up_types[level]
        for j in range(per_block + 1):
            idx = level * (per_block + 1) + j
            pairs += _resnet_pairs(f"up_blocks.{level}.resnets.{j}", f"output_blocks.{idx}.0")
            if has_attn:
                pairs.append((f"up_blocks.{level}.attentions.{j}", f"output_blocks.{idx}.1"))
        if level < levels - 1:
            idx = level * (per_block + 1) + per_block
            pairs.append((f"up_blocks.{level}.upsamplers.0", f"output_blocks.{idx}.{2 if has_attn else 1}"))
    return pairs


def _config_key(config: Mapping[str, Any]) -> tuple:
    return (
        tuple(config["block_out_channels"]),
        config["layers_per_block"],
        tuple(config["down_block_types"]),
        tuple(config["up_block_types"]),
        config.get("addition_embed_type"),
        config.get("class_embed_type"),
    )


@lru_cache(maxsize=16)
def _cached_map(key: tuple) -> PrefixMap:
    blocks, per_block, down, up, addition, class_embed = key
    config = {
        "block_out_channels": blocks,
        "layers_per_block": per_block,
        "down_block_types": down,
        "up_block_types": up,
        "addition_embed_type": addition,
        "class_embed_type": class_embed,
    }
    return PrefixMap(_unet_pairs(config))


def unet_key_map(config: Mapping[str, Any]) -> PrefixMap:
    return _cached_map(_config_key(config))


def unet_module_to_original(path: str, config: Mapping[str, Any]) -> str:
    """``down_blocks.1.attentions.0.transformer_blocks.0.attn1.to_q`` -> ``input_blocks.4.1...`` (SDXL)."""
    mapped = unet_key_map(config).to_original(path)
    if mapped is None:
        raise KeyError(f"U-Net module {path!r} has no original-layout name")
    return mapped


def unet_module_to_diffusers(path: str, config: Mapping[str, Any]) -> str:
    """Inverse of :func:`unet_module_to_original`."""
    mapped = unet_key_map(config).to_diffusers(path)
    if mapped is None:
        raise KeyError(f"original U-Net module {path!r} has no diffusers name")
    return mapped


def unet_to_original(
    state_dict: Mapping[str, torch.Tensor], config: Mapping[str, Any]
) -> dict[str, torch.Tensor]:
    """Diffusers U-Net state dict -> original keys (without the ``model.diffusion_model.`` prefix)."""
    table = unet_key_map(config)
    out = {}
    for key, value in state_dict.items():
        new = table.to_original(key)
        if new is None:
            raise KeyError(f"U-Net key {key!r} has no original-layout name")
        out[new] = value
    return out


def unet_to_diffusers(
    state_dict: Mapping[str, torch.Tensor], config: Mapping[str, Any]
) -> dict[str, torch.Tensor]:
    """Original U-Net keys (without prefix) -> diffusers state dict."""
    table = unet_key_map(config)
    out = {}
    for key, value in state_dict.items():
        new = table.to_diffusers(key)
        if new is None:
            raise KeyError(
                f"original U-Net key {key!r} does not fit the {config['block_out_channels']} config"
            )
        out[new] = value
    return out
