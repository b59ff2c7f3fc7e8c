"""Which LoRA module names an architecture has: every Linear/Conv2d of its U-Net and text encoders
under sd-scripts' key names (LyCORIS presets reach beyond our own LoRA's targets, so all layers).

Shipped architectures are built on the meta device from `backend/models/configs` (no weights, no
memory), so a file can be checked against the real SD 1.x/2.x/SDXL layer set.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from functools import lru_cache

import torch
from torch import nn

from backend.families.loaded import family_of_modules, get_spec
from backend.models.configs import load_arch_configs
from backend.networks.models import Models
from backend.networks.naming import (
    UNET_PREFIX,
    layer_kind,
    lora_name,
    text_encoder_module_name,
    text_encoder_prefixes,
)
from backend.networks.swapped import swap_halves


@dataclass(frozen=True)
class LayerRef:
    """One Linear/Conv2d a LoRA module can modify, by its LoRA name and its path in the model."""

    name: str  # LoRA module name (`lora_unet_...`, `lora_te1_...`)
    text_encoder_index: int | None  # None: the U-Net
    path: str  # module path in the diffusers/transformers model (text encoders: with `text_model.`)
    module: nn.Module
    canonical: bool  # the name sd-scripts writes (SDXL U-Net: the SGM one, not the diffusers alias)
    # The layers whose weights, stacked by rows in this order, make up the layer a file names: a fused
    # layer of the original model (FLUX.1's qkv: diffusers' to_q, to_k, to_v) has several; others `(module,)`.
    members: tuple[nn.Module, ...] = ()
    # The original layer orders its output halves the other way round (SD 3.5's (shift, scale) modulations):
    # files hold its rows in the original order (`Target.swapped_halves`).
    swapped_halves: bool = False

    @property
    def parts(self) -> tuple[nn.Module, ...]:
        return self.members or (self.module,)

    def weight(self) -> torch.Tensor:
        """The weight of the layer the file names (a fused layer's members' weights stacked by rows)."""
        parts = self.parts
        weight = parts[0].weight if len(parts) == 1 else torch.cat([part.weight for part in parts])
        return swap_halves(weight) if self.swapped_halves else weight

    def numel(self) -> int:
        return sum(part.weight.numel() for part in self.parts)


def iter_lora_layers(unet: nn.Module, text_encoders: list[nn.Module]) -> Iterator[LayerRef]:
    """Every layer under every name files use: SDXL U-Net layers by their SGM paths (sd-scripts'
    files) and also by their diffusers paths (files our loader and diffusers-era tools accept); a
    family with a network layout of its own (FLUX.1) by that layout's names."""
    family = family_of_modules(unet, len(text_encoders))
    if family.network_layout is not None:
        yield from _layout_layers(unet, text_encoders)
        return
    original_name = family.network_module_names(unet)
    for path, module in unet.named_modules():
        if layer_kind(module) is None:
            continue
        original = None
        if original_name is not None:
            try:
                original = original_name(path)
            except KeyError:
                original = None  # no original-layout name: only the diffusers one exists
        yield LayerRef(lora_name(UNET_PREFIX, path), None, path, module, original is None)
        if original is not None:
            yield LayerRef(lora_name(UNET_PREFIX, original), None, path, module, True)
    for index, (te, prefix) in enumerate(zip(text_encoders, text_encoder_prefixes(len(text_encoders)), strict=True)):
        rename = text_encoder_module_name(te)
        for path, module in te.named_modules():
            if layer_kind(module) is not None:
                yield LayerRef(lora_name(prefix, rename(path)), index, rename(path), module, True)


def _layout_layers(denoiser: nn.Module, text_encoders: list[nn.Module]) -> Iterator[LayerRef]:
    """A layout's targets; a fused target (FLUX.1's qkv: three diffusers Linears under one name) is
    one layer by its first member (`members` holds them all), and is also named by its diffusers path when
    it has one."""
    models = Models.of(text_encoders, denoiser, None)
    assert models.network_layout is not None
    te_targets, denoiser_targets = models.network_layout.every_target(models)
    for target in (*te_targets, *denoiser_targets):
        if target.text_encoder_index is None:
            path = _path_of(denoiser, target.module)
        else:  # CLIP paths as transformers 4 named them (`text_model.`), as for the U-Net families
            encoder = text_encoders[target.text_encoder_index]
            path = _path_of(encoder, target.module)
            path = text_encoder_module_name(encoder)(path) if "CLIP" in type(encoder).__name__ else path
        yield LayerRef(target.lora_name, target.text_encoder_index, path, target.module, True, target.members,
                       target.swapped_halves)
        if target.diffusers_name != target.lora_name:
            yield LayerRef(target.diffusers_name, target.text_encoder_index, path, target.module, False,
                           target.members, target.swapped_halves)  # the network keeps the original's rows by either name


def _path_of(root: nn.Module, module: nn.Module) -> str:
    return next(path for path, candidate in root.named_modules() if candidate is module)


def layer_refs(unet: nn.Module, text_encoders: list[nn.Module]) -> dict[str, LayerRef]:
    """{lora name: layer}, every name of :func:`iter_lora_layers`, with the members of fused layers."""
    return {ref.name: ref for ref in iter_lora_layers(unet, text_encoders)}


def lora_layers(unet: nn.Module, text_encoders: list[nn.Module]) -> dict[str, nn.Module]:
    """{lora name: layer}, every name of :func:`iter_lora_layers`."""
    return {ref.name: ref.module for ref in iter_lora_layers(unet, text_encoders)}


def meta_models(arch: str) -> tuple[nn.Module, list[nn.Module]]:
    """The denoiser (U-Net or transformer) and text encoders of a shipped architecture, on the meta device."""
    configs = load_arch_configs(arch)
    return get_spec(configs.family).meta_modules(configs)


@lru_cache(maxsize=4)
def arch_layer_names(arch: str) -> frozenset[str]:
    unet, text_encoders = meta_models(arch)
    return frozenset(lora_layers(unet, text_encoders))
