"""SD 3.5 MMDiT weights: Stability AI's names (the single files sd-scripts, ComfyUI and SAI read and write)
<-> diffusers' `SD3Transformer2DModel` names. The two directions are exact inverses.

Follows diffusers' convert_sd3_transformer_checkpoint_to_diffusers (loaders/single_file_utils.py), which
only reads: SAI fuses an attention's q, k, v into one `qkv` Linear (diffusers keeps three), and the
last block's context modulation and the final layer's are stored (shift, scale) by SAI but read
(scale, shift) by diffusers' `AdaLayerNormContinuous`. Block counts, dual-attention blocks and the
q/k norms are read from the keys.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

import torch

from backend.messages import msg

MMDIT_PREFIX = "model.diffusion_model."
LEAVES = ("weight", "bias")


@dataclass(frozen=True)
class _Rule:
    sai: str
    diffusers: tuple[str, ...]
    modules: bool = True  # module names (".weight" and ".bias" follow) or whole tensor names
    swap: bool = False  # (shift, scale) <-> (scale, shift)


def block_rules(i: int, last: bool, dual: bool, qk_norm: bool) -> list[_Rule]:
    """One joint block's tensors. The last block's context half is "pre only": qkv and its modulation."""
    b, d = f"joint_blocks.{i}.", f"transformer_blocks.{i}."
    rules = [
        _Rule(b + "x_block.attn.qkv", tuple(d + f"attn.to_{x}" for x in "qkv")),
        _Rule(b + "x_block.attn.proj", (d + "attn.to_out.0",)),
        _Rule(b + "x_block.mlp.fc1", (d + "ff.net.0.proj",)),
        _Rule(b + "x_block.mlp.fc2", (d + "ff.net.2",)),
        _Rule(b + "x_block.adaLN_modulation.1", (d + "norm1.linear",)),
        _Rule(b + "context_block.attn.qkv", tuple(d + f"attn.add_{x}_proj" for x in "qkv")),
        _Rule(b + "context_block.adaLN_modulation.1", (d + "norm1_context.linear",), swap=last),
    ]
    if not last:
        rules += [
            _Rule(b + "context_block.attn.proj", (d + "attn.to_add_out",)),
            _Rule(b + "context_block.mlp.fc1", (d + "ff_context.net.0.proj",)),
            _Rule(b + "context_block.mlp.fc2", (d + "ff_context.net.2",)),
        ]
    if qk_norm:
        rules += [
            _Rule(b + "x_block.attn.ln_q.weight", (d + "attn.norm_q.weight",), modules=False),
            _Rule(b + "x_block.attn.ln_k.weight", (d + "attn.norm_k.weight",), modules=False),
            _Rule(b + "context_block.attn.ln_q.weight", (d + "attn.norm_added_q.weight",), modules=False),
            _Rule(b + "context_block.attn.ln_k.weight", (d + "attn.norm_added_k.weight",), modules=False),
        ]
    if dual:
        rules += [
            _Rule(b + "x_block.attn2.qkv", tuple(d + f"attn2.to_{x}" for x in "qkv")),
            _Rule(b + "x_block.attn2.proj", (d + "attn2.to_out.0",)),
        ]
        if qk_norm:
            rules += [
                _Rule(b + "x_block.attn2.ln_q.weight", (d + "attn2.norm_q.weight",), modules=False),
                _Rule(b + "x_block.attn2.ln_k.weight", (d + "attn2.norm_k.weight",), modules=False),
            ]
    return rules


def _rules(blocks: int, dual: set[int], qk_norm: bool) -> list[_Rule]:
    rules = [
        _Rule("pos_embed", ("pos_embed.pos_embed",), modules=False),
        _Rule("x_embedder.proj", ("pos_embed.proj",)),
        _Rule("t_embedder.mlp.0", ("time_text_embed.timestep_embedder.linear_1",)),
        _Rule("t_embedder.mlp.2", ("time_text_embed.timestep_embedder.linear_2",)),
        _Rule("y_embedder.mlp.0", ("time_text_embed.text_embedder.linear_1",)),
        _Rule("y_embedder.mlp.2", ("time_text_embed.text_embedder.linear_2",)),
        _Rule("context_embedder", ("context_embedder",)),
    ]
    for i in range(blocks):
        rules += block_rules(i, i == blocks - 1, i in dual, qk_norm)
    rules += [_Rule("final_layer.linear", ("proj_out",)),
              _Rule("final_layer.adaLN_modulation.1", ("norm_out.linear",), swap=True)]
    return rules


def _indices(keys: Mapping[str, object], pattern: str) -> set[int]:
    return {int(m.group(1)) for key in keys if (m := re.match(pattern, key))}


def _pairs(rule: _Rule) -> list[tuple[str, tuple[str, ...]]]:
    if not rule.modules:
        return [(rule.sai, rule.diffusers)]
    return [(f"{rule.sai}.{leaf}", tuple(f"{d}.{leaf}" for d in rule.diffusers)) for leaf in LEAVES]


def swap_halves(tensor: torch.Tensor) -> torch.Tensor:
    first, second = tensor.chunk(2, dim=0)
    return torch.cat([second, first], dim=0)


def _take(state: dict[str, torch.Tensor], key: str, direction: str) -> torch.Tensor:
    try:
        return state.pop(key)
    except KeyError:
        raise ValueError(msg("sd3.keymap_missing", "the SD 3.5 MMDiT weights lack {key} (converting {direction}); the "
                             "file is incomplete or not an SD 3.5 model", key=key, direction=direction)) from None


def _no_leftovers(state: Mapping[str, torch.Tensor], direction: str) -> None:
    if state:
        raise ValueError(msg(
            "sd3.keymap_unexpected", "the SD 3.5 MMDiT weights hold {count} tensors that are no part of SD 3.5 "
            "(converting {direction}; for example {names}): the file is not an SD 3.5 Medium/Large model",
            count=len(state), direction=direction, names=", ".join(sorted(state)[:3]),
        ))


def strip_mmdit_prefix(state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Bare SAI names, whether the tensors come bare or under `model.diffusion_model.`."""
    if any(key.startswith(MMDIT_PREFIX) for key in state):
        return {key.removeprefix(MMDIT_PREFIX): value for key, value in state.items() if key.startswith(MMDIT_PREFIX)}
    return dict(state)


def sai_to_diffusers(state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """SAI names (bare or prefixed) -> `SD3Transformer2DModel` keys. Strict: a missing or foreign tensor is a
    ValueError naming it."""
    source = strip_mmdit_prefix(state)
    blocks = _indices(source, r"joint_blocks\.(\d+)\.")
    rules = _rules(max(blocks, default=-1) + 1, _indices(source, r"joint_blocks\.(\d+)\.x_block\.attn2\."),
                   "joint_blocks.0.x_block.attn.ln_q.weight" in source)
    out: dict[str, torch.Tensor] = {}
    direction = "SAI -> diffusers"
    for rule in rules:
        for sai, diffusers in _pairs(rule):
            tensor = _take(source, sai, direction)
            if rule.swap:
                tensor = swap_halves(tensor)
            if len(diffusers) == 1:
                out[diffusers[0]] = tensor
            else:
                out.update(zip(diffusers, (part.clone() for part in tensor.chunk(len(diffusers), dim=0)), strict=True))
    _no_leftovers(source, direction)
    return out


def diffusers_to_sai(state: Mapping[str, torch.Tensor], prefix: str = "") -> dict[str, torch.Tensor]:
    """`SD3Transformer2DModel` keys -> SAI names, each under `prefix` (`MMDIT_PREFIX` for a whole-model file)."""
    source = dict(state)
    blocks = _indices(source, r"transformer_blocks\.(\d+)\.")
    rules = _rules(max(blocks, default=-1) + 1, _indices(source, r"transformer_blocks\.(\d+)\.attn2\."),
                   "transformer_blocks.0.attn.norm_q.weight" in source)
    out: dict[str, torch.Tensor] = {}
    direction = "diffusers -> SAI"
    for rule in rules:
        for sai, diffusers in _pairs(rule):
            parts = [_take(source, key, direction) for key in diffusers]
            tensor = parts[0] if len(parts) == 1 else torch.cat(parts, dim=0)
            out[prefix + sai] = swap_halves(tensor) if rule.swap else tensor
    _no_leftovers(source, direction)
    return out
