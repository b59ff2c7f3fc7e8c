"""Which LoRA module names an architecture has: every Linear/Conv2d of its U-Net and text encoders
under sd-scripts' key names (LyCORIS presets reach beyond our own LoRA's targets, so all layers).

Shipped architectures are built on the meta device from `backend/models/configs` (no weights, no
memory), so a file can be checked against the real SD 1.x/2.x/SDXL layer set.
"""

from __future__ import annotations

from functools import lru_cache

from accelerate import init_empty_weights
from diffusers import UNet2DConditionModel
from torch import nn
from transformers import CLIPTextConfig

from backend.models.configs import load_arch_configs
from backend.models.keymap_unet import unet_module_to_original
from backend.models.loading import text_encoder_class
from backend.networks.naming import (
    UNET_PREFIX,
    is_sdxl_unet,
    layer_kind,
    lora_name,
    text_encoder_module_name,
    text_encoder_prefixes,
)


def lora_layers(unet: nn.Module, text_encoders: list[nn.Module]) -> dict[str, nn.Module]:
    """{lora name: layer}. SDXL U-Net layers are named by their SGM paths (sd-scripts' files) and
    also by their diffusers paths (files our loader and diffusers-era tools accept)."""
    layers: dict[str, nn.Module] = {}
    sdxl = is_sdxl_unet(unet)
    for path, module in unet.named_modules():
        if layer_kind(module) is None:
            continue
        layers[lora_name(UNET_PREFIX, path)] = module
        if sdxl:
            try:
                layers[lora_name(UNET_PREFIX, unet_module_to_original(path, unet.config))] = module
            except KeyError:
                continue  # no original-layout name: only the diffusers one exists
    for te, prefix in zip(text_encoders, text_encoder_prefixes(len(text_encoders)), strict=True):
        rename = text_encoder_module_name(te)
        for path, module in te.named_modules():
            if layer_kind(module) is not None:
                layers[lora_name(prefix, rename(path))] = module
    return layers


def meta_models(arch: str) -> tuple[UNet2DConditionModel, list[nn.Module]]:
    """The U-Net and text encoders of a shipped architecture, on the meta device."""
    configs = load_arch_configs(arch)
    with init_empty_weights():
        unet = UNet2DConditionModel.from_config(configs.unet)
        text_encoders = [text_encoder_class(c)(CLIPTextConfig.from_dict(c)) for c in configs.text_encoders]
    return unet, text_encoders


@lru_cache(maxsize=4)
def arch_layer_names(arch: str) -> frozenset[str]:
    unet, text_encoders = meta_models(arch)
    return frozenset(lora_layers(unet, text_encoders))
