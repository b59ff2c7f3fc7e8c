"""FLUX.1 transformer weights: Black Forest Labs' names (the single files sd-scripts, ComfyUI and Forge
read and write) <-> diffusers' `FluxTransformer2DModel` names. The two directions are exact inverses.
Chroma (FLUX.1 schnell pruned: no per-block modulation Linears, no time/vector/guidance embedders, a
`distilled_guidance_layer` computing every modulation instead) converts by the same rules less those
layers, plus its approximator's (diffusers' convert_chroma_transformer_checkpoint_to_diffusers); a file
with `distilled_guidance_layer.in_proj.weight` is Chroma's in both naming schemes.

Besides renaming, three things differ: BFL fuses an attention's q, k, v into one `qkv` linear (diffusers
keeps three), a single block's `linear1` holds q, k, v and the MLP input (diffusers: `to_q`, `to_k`,
`to_v`, `proj_mlp`), and the final layer's modulation is stored (shift, scale) by BFL but read (scale,
shift) by diffusers' `AdaLayerNormContinuous`. Block counts are read from the keys; split sizes from
the tensors (a single block's hidden width is `linear1`'s input width), so any width converts.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import torch

from backend.messages import msg

# ComfyUI and Forge save the transformer under this prefix (the LDM-style "model.diffusion_model.").
BFL_PREFIX = "model.diffusion_model."
LEAVES = ("weight", "bias")


@dataclass(frozen=True)
class _Rule:
    """One BFL tensor (or module) and the diffusers tensors (or modules) it becomes."""

    bfl: str
    diffusers: tuple[str, ...]
    modules: bool = True  # names of modules (both ".weight" and ".bias" follow) or of whole tensors
    swap: bool = False  # (shift, scale) <-> (scale, shift)
    single: bool = False  # a single block's linear1: sizes (hidden, hidden, hidden, rest), else equal parts


def _embedder(bfl: str, diffusers: str) -> list[_Rule]:
    return [_Rule(f"{bfl}.in_layer", (f"{diffusers}.linear_1",)), _Rule(f"{bfl}.out_layer", (f"{diffusers}.linear_2",))]


def _double(i: int, modulation: bool) -> list[_Rule]:
    b, d = f"double_blocks.{i}.", f"transformer_blocks.{i}."
    renames = {
        **({"img_mod.lin": "norm1.linear", "txt_mod.lin": "norm1_context.linear"} if modulation else {}),
        "img_attn.proj": "attn.to_out.0", "txt_attn.proj": "attn.to_add_out",
        "img_mlp.0": "ff.net.0.proj", "img_mlp.2": "ff.net.2",
        "txt_mlp.0": "ff_context.net.0.proj", "txt_mlp.2": "ff_context.net.2",
    }  # fmt: skip
    rules = [_Rule(b + k, (d + v,)) for k, v in renames.items()]
    rules.append(_Rule(b + "img_attn.qkv", tuple(d + f"attn.to_{x}" for x in "qkv")))
    rules.append(_Rule(b + "txt_attn.qkv", tuple(d + f"attn.add_{x}_proj" for x in "qkv")))
    norms = {"img_attn.norm.query_norm": "attn.norm_q", "img_attn.norm.key_norm": "attn.norm_k",
             "txt_attn.norm.query_norm": "attn.norm_added_q", "txt_attn.norm.key_norm": "attn.norm_added_k"}
    rules += [_Rule(f"{b}{k}.scale", (f"{d}{v}.weight",), modules=False) for k, v in norms.items()]
    return rules


def _single(i: int, modulation: bool) -> list[_Rule]:
    b, d = f"single_blocks.{i}.", f"single_transformer_blocks.{i}."
    return [
        *([_Rule(b + "modulation.lin", (d + "norm.linear",))] if modulation else []),
        _Rule(b + "linear1", (d + "attn.to_q", d + "attn.to_k", d + "attn.to_v", d + "proj_mlp"), single=True),
        _Rule(b + "linear2", (d + "proj_out",)),
        _Rule(b + "norm.query_norm.scale", (d + "attn.norm_q.weight",), modules=False),
        _Rule(b + "norm.key_norm.scale", (d + "attn.norm_k.weight",), modules=False),
    ]


def _approximator(layers: int) -> list[_Rule]:
    """Chroma's distilled_guidance_layer: in_proj, `layers` x (RMSNorm, MLP), out_proj."""
    a = "distilled_guidance_layer."
    rules = [_Rule(a + "in_proj", (a + "in_proj",)), _Rule(a + "out_proj", (a + "out_proj",))]
    for i in range(layers):
        rules += _embedder(f"{a}layers.{i}", f"{a}layers.{i}")
        rules.append(_Rule(f"{a}norms.{i}.scale", (f"{a}norms.{i}.weight",), modules=False))
    return rules


def _rules(double: int, single: int, guidance: bool, approximator_layers: int | None = None) -> list[_Rule]:
    """FLUX.1's rules; Chroma's where `approximator_layers` is given (its distilled_guidance_layer depth)."""
    chroma = approximator_layers is not None
    if chroma:
        rules = _approximator(approximator_layers or 0)
    else:
        rules = _embedder("time_in", "time_text_embed.timestep_embedder")
        rules += _embedder("vector_in", "time_text_embed.text_embedder")
    if guidance:  # FLUX.1 dev embeds the guidance scale; schnell has no such layer
        rules += _embedder("guidance_in", "time_text_embed.guidance_embedder")
    rules += [_Rule("txt_in", ("context_embedder",)), _Rule("img_in", ("x_embedder",)),
              _Rule("final_layer.linear", ("proj_out",))]
    if not chroma:
        rules.append(_Rule("final_layer.adaLN_modulation.1", ("norm_out.linear",), swap=True))
    for i in range(double):
        rules += _double(i, not chroma)
    for i in range(single):
        rules += _single(i, not chroma)
    return rules


CHROMA_MARKER = "distilled_guidance_layer.in_proj.weight"  # the same name in BFL's and diffusers' layout


def _approximator_layers(keys: Iterable[str]) -> int | None:
    """Chroma's approximator depth (its layers counted, in either naming), None for FLUX.1."""
    keys = list(keys)
    if CHROMA_MARKER not in keys:
        return None
    return _count(keys, r"distilled_guidance_layer\.norms\.(\d+)\.")


def _count(keys: Iterable[str], pattern: str) -> int:
    found = {int(m.group(1)) for key in keys if (m := re.match(pattern, key))}
    return max(found) + 1 if found else 0


def _swap_halves(tensor: torch.Tensor) -> torch.Tensor:
    first, second = tensor.chunk(2, dim=0)
    return torch.cat([second, first], dim=0)


def _pairs(rule: _Rule) -> list[tuple[str, tuple[str, ...]]]:
    """(BFL key, diffusers keys) for each tensor of a rule."""
    if not rule.modules:
        return [(rule.bfl, rule.diffusers)]
    return [(f"{rule.bfl}.{leaf}", tuple(f"{d}.{leaf}" for d in rule.diffusers)) for leaf in LEAVES]


def _take(state: dict[str, torch.Tensor], key: str, direction: str) -> torch.Tensor:
    try:
        return state.pop(key)
    except KeyError:
        raise ValueError(msg("flux.keymap_missing", "the FLUX.1 transformer weights lack {key} (converting {direction});"
                             " the file is incomplete or not a FLUX.1 transformer", key=key, direction=direction)) from None


def _no_leftovers(state: Mapping[str, torch.Tensor], direction: str) -> None:
    if state:
        raise ValueError(msg(
            "flux.keymap_unexpected", "the FLUX.1 transformer weights hold {count} tensors that are no part of FLUX.1 "
            "(converting {direction}; for example {names}): the file is not a FLUX.1 [dev]/[schnell] or Chroma "
            "transformer",
            count=len(state), direction=direction, names=", ".join(sorted(state)[:3]),
        ))


def strip_bfl_prefix(state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Bare BFL names, whether the file has them bare or under `model.diffusion_model.` (ComfyUI, Forge)."""
    if any(key.startswith(BFL_PREFIX) for key in state):
        return {key.removeprefix(BFL_PREFIX): value for key, value in state.items() if key.startswith(BFL_PREFIX)}
    return dict(state)


def bfl_to_diffusers(state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """BFL names (bare or prefixed) -> `FluxTransformer2DModel` state-dict keys. Strict: a missing or
    foreign tensor is a ValueError naming it."""
    source = strip_bfl_prefix(state)
    rules = _rules(_count(source, r"double_blocks\.(\d+)\."), _count(source, r"single_blocks\.(\d+)\."),
                   "guidance_in.in_layer.weight" in source, _approximator_layers(source))
    out: dict[str, torch.Tensor] = {}
    direction = "BFL -> diffusers"
    for rule in rules:
        hidden = source[f"{rule.bfl}.weight"].shape[1] if rule.single and f"{rule.bfl}.weight" in source else 0
        for bfl, diffusers in _pairs(rule):
            tensor = _take(source, bfl, direction)
            if rule.swap:
                tensor = _swap_halves(tensor)
            if len(diffusers) == 1:
                out[diffusers[0]] = tensor
                continue
            sizes = [hidden] * 3 + [tensor.shape[0] - 3 * hidden] if rule.single else [tensor.shape[0] // 3] * 3
            out.update(zip(diffusers, (part.clone() for part in tensor.split(sizes, dim=0)), strict=True))
    _no_leftovers(source, direction)
    return out


def diffusers_to_bfl(state: Mapping[str, torch.Tensor], prefix: str = "") -> dict[str, torch.Tensor]:
    """`FluxTransformer2DModel` state-dict keys -> bare BFL names (as sd-scripts' flux_train saves them),
    each under `prefix` if given (`BFL_PREFIX` for ComfyUI's layout)."""
    source = dict(state)
    rules = _rules(_count(source, r"transformer_blocks\.(\d+)\."), _count(source, r"single_transformer_blocks\.(\d+)\."),
                   "time_text_embed.guidance_embedder.linear_1.weight" in source, _approximator_layers(source))
    out: dict[str, torch.Tensor] = {}
    direction = "diffusers -> BFL"
    for rule in rules:
        for bfl, diffusers in _pairs(rule):
            parts = [_take(source, key, direction) for key in diffusers]
            tensor = parts[0] if len(parts) == 1 else torch.cat(parts, dim=0)
            out[prefix + bfl] = _swap_halves(tensor) if rule.swap else tensor
    _no_leftovers(source, direction)
    return out

