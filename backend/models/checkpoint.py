"""Whole-checkpoint layout: split an original single-file state dict into diffusers component state
dicts and join them back, with the text-encoder prefixes and layouts the family declares
(`FamilyDeclaration.original_text_encoders`).

Keys outside the known component prefixes (``alphas_cumprod``, ``model_ema.*``, ...) are not needed
to train and are dropped on load; text-encoder tensors without a diffusers counterpart are kept as
extras so a save writes them back (see ``keymap_text``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import torch

from backend.families import declaration
from backend.messages import msg
from backend.models.configs import ArchConfigs
from backend.models.errors import ModelMismatchError
from backend.models.keymap_text import (
    diffusers_to_open_clip,
    hf_clip_to_diffusers,
    open_clip_to_diffusers,
    recreate_open_clip_extras,
)
from backend.models.keymap_unet import UNET_PREFIX, unet_to_diffusers, unet_to_original
from backend.models.keymap_vae import VAE_PREFIX, vae_to_diffusers, vae_to_original


@dataclass
class ComponentStates:
    """Diffusers-layout state dicts of one model, plus original-layout extras (full keys).

    Text encoders use the classic transformers layout (``text_model.*``); see ``keymap_text``.
    """

    unet: dict[str, torch.Tensor]
    vae: dict[str, torch.Tensor]
    text_encoders: list[dict[str, torch.Tensor]]
    extras: dict[str, torch.Tensor] = field(default_factory=dict)


def _strip(state_dict: Mapping[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    return {k[len(prefix) :]: v for k, v in state_dict.items() if k.startswith(prefix)}


def split_original(state_dict: Mapping[str, torch.Tensor], configs: ArchConfigs) -> ComponentStates:
    """Original single-file state dict -> diffusers component state dicts."""
    states = ComponentStates(
        unet=unet_to_diffusers(_strip(state_dict, UNET_PREFIX), configs.unet),
        vae=vae_to_diffusers(_strip(state_dict, VAE_PREFIX), configs.vae),
        text_encoders=[],
    )
    layouts = declaration(configs.family).original_text_encoders
    for encoder, te_config in zip(layouts, configs.text_encoders, strict=True):
        prefix = encoder.prefix
        part = _strip(state_dict, prefix)
        if not part:
            raise ModelMismatchError(msg(
                "model.no_text_encoder", "the checkpoint has no text encoder weights under {prefix}: give a whole model "
                "(U-Net, VAE and text encoder(s) in one file)", prefix=repr(prefix),
            ))
        if encoder.layout == "hf":
            keep = {k: v for k, v in part.items() if not k.endswith("position_ids")}
            states.extras.update({prefix + k: v for k, v in part.items() if k not in keep})
            states.text_encoders.append(hf_clip_to_diffusers(keep))
        else:
            with_projection = "CLIPTextModelWithProjection" in te_config.get("architectures", [])
            converted, extras = open_clip_to_diffusers(part, te_config["num_hidden_layers"], with_projection)
            states.text_encoders.append(converted)
            states.extras.update({prefix + k: v for k, v in extras.items()})
    return states


def join_original(states: ComponentStates, configs: ArchConfigs) -> dict[str, torch.Tensor]:
    """Diffusers component state dicts -> original single-file state dict (extras re-emitted)."""
    out = {UNET_PREFIX + k: v for k, v in unet_to_original(states.unet, configs.unet).items()}
    out.update({VAE_PREFIX + k: v for k, v in vae_to_original(states.vae, configs.vae).items()})
    layouts = declaration(configs.family).original_text_encoders
    for encoder, te_config, te_state in zip(layouts, configs.text_encoders, states.text_encoders, strict=True):
        prefix = encoder.prefix
        if encoder.layout == "hf":
            out.update({prefix + k: v for k, v in te_state.items()})
            continue
        layers = te_config["num_hidden_layers"]
        converted = diffusers_to_open_clip(te_state, layers)
        out.update({prefix + k: v for k, v in converted.items()})
        # Some files carry one more block and an unused projection (SD 2.x; see keymap_text).
        unused = encoder.keeps_unused_parts
        recreated = recreate_open_clip_extras(converted, layers, extra_layer=unused, projection=unused)
        for key, value in recreated.items():
            out.setdefault(prefix + key, value)
    for key, value in states.extras.items():
        out[key] = value
    return out
