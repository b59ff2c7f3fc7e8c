"""Text-encoder naming: transformers CLIP <-> the two original layouts.

* HF CLIP layout (SD 1.x ``cond_stage_model.transformer.``, SDXL ``conditioner.embedders.0.transformer.``):
  the original keys are the transformers keys behind a prefix.
* OpenCLIP layout (SD 2.x ``cond_stage_model.model.``, SDXL ``conditioner.embedders.1.model.``):
  ``transformer.resblocks.N`` with fused ``attn.in_proj_weight`` (q, k, v stacked), ``ln_final``,
  ``positional_embedding`` and, for SDXL, ``text_projection`` stored as ``x @ P`` (transposed relative
  to the ``Linear`` weight of ``CLIPTextModelWithProjection``).

SD 2.x runs OpenCLIP-H only up to its penultimate block, so its diffusers text encoder has 23 of the
file's 24 blocks, and ``text_projection``/``logit_scale`` have no counterpart. Decision: on load,
such tensors are kept as *extras* (original keys) and written back unchanged on save; when there
are none (a model that came from a diffusers folder) they are re-created the way sd-scripts does:
the last block as a copy of the one before it (never evaluated with penultimate conditioning),
an identity ``text_projection`` and CLIP's initial ``logit_scale``. Files therefore keep the shape
every other tool expects.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import torch
from torch import nn

from backend.models.keymap import PrefixMap

_LAYER = {
    "layer_norm1": "ln_1",
    "layer_norm2": "ln_2",
    "mlp.fc1": "mlp.c_fc",
    "mlp.fc2": "mlp.c_proj",
    "self_attn.out_proj": "attn.out_proj",
}
_QKV = ("q_proj", "k_proj", "v_proj")
CLIP_LOGIT_SCALE = math.log(1 / 0.07)


def module_prefix(text_encoder: nn.Module) -> str:
    """Where the classic ``text_model.*`` keys live in this module's own state dict.

    Converters here use the classic layout of the hub checkpoints (``text_model.`` prefix, plus
    ``text_projection.weight``). transformers 5 dropped that prefix from ``CLIPTextModel`` itself
    (but not from ``CLIPTextModelWithProjection``), so modules are adapted at the boundary.
    """
    return "" if not hasattr(text_encoder, "text_model") else "text_model."


def to_module_keys(
    state_dict: Mapping[str, torch.Tensor], text_encoder: nn.Module
) -> dict[str, torch.Tensor]:
    prefix = module_prefix(text_encoder)
    return {
        (prefix + k[len("text_model.") :] if k.startswith("text_model.") else k): v
        for k, v in state_dict.items()
    }


def from_module_keys(
    state_dict: Mapping[str, torch.Tensor], text_encoder: nn.Module
) -> dict[str, torch.Tensor]:
    if module_prefix(text_encoder):
        return dict(state_dict)
    return {(k if k.startswith("text_projection") else f"text_model.{k}"): v for k, v in state_dict.items()}


def text_transformer(text_encoder: nn.Module) -> nn.Module:
    """The module holding ``final_layer_norm`` (the model itself in transformers 5)."""
    return getattr(text_encoder, "text_model", text_encoder)


def hf_clip_to_diffusers(state_dict: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Original HF-layout keys (prefix removed) -> transformers keys; old files lack ``text_model.``."""
    return {
        (k if k.startswith(("text_model.", "text_projection")) else f"text_model.{k}"): v
        for k, v in state_dict.items()
    }


def _open_clip_map(num_layers: int) -> PrefixMap:
    pairs = [
        ("text_model.embeddings.token_embedding", "token_embedding"),
        ("text_model.embeddings.position_embedding.weight", "positional_embedding"),
        ("text_model.final_layer_norm", "ln_final"),
    ]
    for i in range(num_layers):
        pairs += [
            (f"text_model.encoder.layers.{i}.{d}", f"transformer.resblocks.{i}.{o}")
            for d, o in _LAYER.items()
        ]
    return PrefixMap(pairs)


def open_clip_to_diffusers(
    state_dict: Mapping[str, torch.Tensor], num_layers: int, with_projection: bool
) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """OpenCLIP keys (prefix removed) -> (transformers state dict, extras without a counterpart)."""
    table = _open_clip_map(num_layers)
    out: dict[str, torch.Tensor] = {}
    extras: dict[str, torch.Tensor] = {}
    for key, value in state_dict.items():
        if key.endswith(("attn.in_proj_weight", "attn.in_proj_bias")):
            layer = int(key.split(".")[2])
            if layer < num_layers:
                kind = "weight" if key.endswith("weight") else "bias"
                for name, part in zip(_QKV, value.chunk(3, dim=0), strict=True):
                    out[f"text_model.encoder.layers.{layer}.self_attn.{name}.{kind}"] = part
                continue
        elif key == "text_projection" and with_projection:
            out["text_projection.weight"] = value.T.contiguous()
            continue
        new = table.to_diffusers(key)
        if new is None:
            extras[key] = value
        else:
            out[new] = value
    return out, extras


def diffusers_to_open_clip(
    state_dict: Mapping[str, torch.Tensor], num_layers: int
) -> dict[str, torch.Tensor]:
    """Transformers keys -> OpenCLIP keys (prefix not added); fuses q/k/v, transposes the projection."""
    table = _open_clip_map(num_layers)
    out: dict[str, torch.Tensor] = {}
    for key, value in state_dict.items():
        if key == "text_projection.weight":
            out["text_projection"] = value.T.contiguous()
            continue
        parts = key.split(".")
        if len(parts) == 7 and parts[4] == "self_attn" and parts[5] in _QKV:
            if parts[5] == "q_proj":
                base = ".".join(parts[:5])
                fused = torch.cat([state_dict[f"{base}.{name}.{parts[6]}"] for name in _QKV], dim=0)
                out[f"transformer.resblocks.{parts[3]}.attn.in_proj_{parts[6]}"] = fused
            continue
        new = table.to_original(key)
        if new is None:
            raise KeyError(f"text encoder key {key!r} has no OpenCLIP name")
        out[new] = value
    return out


def recreate_open_clip_extras(
    converted: Mapping[str, torch.Tensor], num_layers: int, extra_layer: bool, projection: bool
) -> dict[str, torch.Tensor]:
    """Tensors the original file has but the diffusers model lacks (see the module docstring)."""
    extras: dict[str, torch.Tensor] = {}
    if extra_layer:
        src = f"transformer.resblocks.{num_layers - 1}."
        dst = f"transformer.resblocks.{num_layers}."
        extras.update({dst + k[len(src) :]: v.clone() for k, v in converted.items() if k.startswith(src)})
    if projection:
        width = converted["ln_final.weight"].shape[0]
        extras["text_projection"] = torch.eye(width, dtype=converted["ln_final.weight"].dtype)
    extras["logit_scale"] = torch.tensor(CLIP_LOGIT_SCALE, dtype=converted["ln_final.weight"].dtype)
    return extras
