"""VAE naming: diffusers ``AutoencoderKL`` <-> original ``first_stage_model``.

Besides renaming, the mid-block attention projections differ in shape: the original uses 1x1
``Conv2d`` (``[C, C, 1, 1]``), diffusers uses ``Linear`` (``[C, C]``). The decoder's ``up`` list is
stored in reverse order in the original layout.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch

from backend.models.keymap import PrefixMap

VAE_PREFIX = "first_stage_model."

_ATTN = {"group_norm": "norm", "to_q": "q", "to_k": "k", "to_v": "v", "to_out.0": "proj_out"}
_RESNET = {
    "norm1": "norm1",
    "conv1": "conv1",
    "norm2": "norm2",
    "conv2": "conv2",
    "conv_shortcut": "nin_shortcut",
}


def _children(diffusers: str, original: str, names: Mapping[str, str]) -> list[tuple[str, str]]:
    return [(f"{diffusers}.{d}", f"{original}.{o}") for d, o in names.items()]


def _mid_pairs(side: str) -> list[tuple[str, str]]:
    pairs = _children(f"{side}.mid_block.resnets.0", f"{side}.mid.block_1", _RESNET)
    pairs += _children(f"{side}.mid_block.resnets.1", f"{side}.mid.block_2", _RESNET)
    pairs += _children(f"{side}.mid_block.attentions.0", f"{side}.mid.attn_1", _ATTN)
    return pairs


def vae_key_map(config: Mapping[str, Any]) -> PrefixMap:
    levels = len(config["block_out_channels"])
    per_block = config["layers_per_block"]
    pairs: list[tuple[str, str]] = []
    for side in ("encoder", "decoder"):
        pairs += [(f"{side}.conv_in", f"{side}.conv_in"), (f"{side}.conv_out", f"{side}.conv_out")]
        pairs.append((f"{side}.conv_norm_out", f"{side}.norm_out"))
        pairs += _mid_pairs(side)
    pairs += [("quant_conv", "quant_conv"), ("post_quant_conv", "post_quant_conv")]
    for level in range(levels):
        for j in range(per_block):
            pairs += _children(
                f"encoder.down_blocks.{level}.resnets.{j}", f"encoder.down.{level}.block.{j}", _RESNET
            )
        if level < levels - 1:
            pairs.append(
                (f"encoder.down_blocks.{level}.downsamplers.0.conv", f"encoder.down.{level}.downsample.conv")
            )
        original_level = levels - 1 - level
        for j in range(per_block + 1):
            pairs += _children(
                f"decoder.up_blocks.{level}.resnets.{j}", f"decoder.up.{original_level}.block.{j}", _RESNET
            )
        if level < levels - 1:
            pairs.append(
                (f"decoder.up_blocks.{level}.upsamplers.0.conv", f"decoder.up.{original_level}.upsample.conv")
            )
    return PrefixMap(pairs)


def _is_attn_projection(original_key: str) -> bool:
    return ".mid.attn_1." in original_key and original_key.endswith(
        ("q.weight", "k.weight", "v.weight", "proj_out.weight")
    )


def vae_to_original(
    state_dict: Mapping[str, torch.Tensor], config: Mapping[str, Any]
) -> dict[str, torch.Tensor]:
    table = vae_key_map(config)
    out = {}
    for key, value in state_dict.items():
        new = table.to_original(key)
        if new is None:
            raise KeyError(f"VAE key {key!r} has no original-layout name")
        if _is_attn_projection(new) and value.ndim == 2:
            value = value[:, :, None, None]
        out[new] = value
    return out


def vae_to_diffusers(
    state_dict: Mapping[str, torch.Tensor], config: Mapping[str, Any]
) -> dict[str, torch.Tensor]:
    table = vae_key_map(config)
    out = {}
    for key, value in state_dict.items():
        new = table.to_diffusers(key)
        if new is None:
            raise KeyError(f"original VAE key {key!r} does not fit the {config['block_out_channels']} config")
        if _is_attn_projection(key) and value.ndim == 4:
            value = value[:, :, 0, 0]
        out[new] = value
    return out
