"""Giving networks from other modules (lycoris.kohya, sd-scripts-style third-party modules) the
sd-scripts key names.

Those modules name a layer `<prefix>_<path in the model they are given>`. sd-scripts gives them its
own models, whose paths are the file conventions; we give them diffusers/transformers models, where
two paths differ: SDXL U-Net layers (diffusers vs SGM paths) and text encoder layers (transformers 5
dropped `text_model.` from `CLIPTextModel`). Without a fix their files would carry names A1111 and
ComfyUI do not expect. So:

- after `create_network`, each module's `lora_name` is rewritten to the sd-scripts name before
  `apply_to` registers it (`rename_network_modules`);
- before `create_network_from_weights`, file keys are rewritten to the names the module computes
  itself (`to_model_names`), and the created modules are renamed back.

Networks without `unet_loras`/`text_encoder_loras` lists of modules with `lora_name` are left alone.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from backend.networks.naming import (
    UNET_PREFIX,
    ModuleNameMap,
    identity_name,
    lora_name,
    text_encoder_module_name,
    text_encoder_prefixes,
)

logger = logging.getLogger(__name__)


def _roots(text_encoders: list[nn.Module], unet: nn.Module | None,
           unet_module_name: ModuleNameMap) -> list[tuple[nn.Module, str, ModuleNameMap]]:
    roots = [
        (te, prefix, text_encoder_module_name(te))
        for te, prefix in zip(text_encoders, text_encoder_prefixes(len(text_encoders)), strict=True)
    ]
    if unet is not None:
        roots.append((unet, UNET_PREFIX, unet_module_name))
    return roots


def model_to_file_names(
    text_encoders: list[nn.Module], unet: nn.Module | None, unet_module_name: ModuleNameMap,
    only: set[str] | None = None,
) -> dict[str, str]:
    """{name from our models' own paths: sd-scripts name} for layers with own parameters (the only
    ones a network can wrap), restricted to `only` when given; unchanged names are left out."""
    renames: dict[str, str] = {}
    for root, prefix, module_name in _roots(text_encoders, unet, unet_module_name):
        if module_name is identity_name:
            continue
        for path, module in root.named_modules():
            if not path or not any(True for _ in module.parameters(recurse=False)):
                continue
            model_name = lora_name(prefix, path)
            if only is not None and model_name not in only:
                continue
            try:
                renames[model_name] = lora_name(prefix, module_name(path))
            except (KeyError, ValueError) as err:
                if only is not None:  # a module the network wraps must have a file name
                    raise ValueError(f"no sd-scripts name for {path}: {err}") from err
    return {old: new for old, new in renames.items() if old != new}


def _loras(network: Any) -> list[Any] | None:
    lists = [getattr(network, attr, None) for attr in ("text_encoder_loras", "unet_loras")]
    if not all(isinstance(items, list) for items in lists):
        return None
    loras = lists[0] + lists[1]
    return loras if all(hasattr(lora, "lora_name") for lora in loras) else None


def rename_network_modules(network: Any, text_encoders: list[nn.Module], unet: nn.Module | None,
                           unet_module_name: ModuleNameMap) -> int:
    """Give the network's modules sd-scripts names (before apply_to); returns how many changed."""
    loras = _loras(network)
    if not loras:
        return 0
    renames = model_to_file_names(text_encoders, unet, unet_module_name, {lora.lora_name for lora in loras})
    modules = getattr(network, "_modules", {})
    for lora in loras:
        new = renames.get(lora.lora_name)
        if new is None:
            continue
        if modules.get(lora.lora_name) is lora:  # registered at construction: move the registration
            del modules[lora.lora_name]
            modules[new] = lora
        lora.lora_name = new
    if renames:
        logger.info("renamed %d network modules to sd-scripts key names", len(renames))
    return len(renames)


def to_model_names(weights_sd: Mapping[str, torch.Tensor], text_encoders: list[nn.Module],
                   unet: nn.Module | None, unet_module_name: ModuleNameMap) -> dict[str, torch.Tensor]:
    """File keys (sd-scripts names) renamed to the names a module computes from our models."""
    back = {new: old for old, new in model_to_file_names(text_encoders, unet, unet_module_name).items()}
    renamed = {}
    for key, value in weights_sd.items():
        name, dot, param = key.partition(".")
        renamed[f"{back.get(name, name)}{dot}{param}"] = value
    return renamed
