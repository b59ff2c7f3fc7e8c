"""What a LoRA network is built over: the models, and the family's own layout of them when sd-scripts
has a network module of its own for the family (FLUX.1: networks/lora_flux.py).

`Models` and `NetworkLayout` refer to each other, so they live together; building (build.py) and the
layout-driven create functions (layout.py) import them from here.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, cast

import torch
from torch import nn

from backend.families.blocks import BlockLayout
from backend.families.loaded import family_of_modules
from backend.families.network_targets import NetworkTargets
from backend.networks.args import ArgReader
from backend.networks.naming import (
    ModuleNameMap,
    Target,
    as_list,
    resolve_unet_module_name,
    text_encoder_targets,
    unet_targets,
)

# (target, rank, alpha) -> module; rank 0 never reaches it.
ModuleFactory = Callable[[Target, int, float], nn.Module]
# target -> (rank, alpha), rank 0/None = no LoRA on this layer.
RankChooser = Callable[[Target], tuple[int | None, float | None]]


@dataclass(frozen=True)
class Models:
    text_encoders: list[nn.Module]
    unet: nn.Module | None
    unet_module_name: ModuleNameMap
    layout: BlockLayout  # the family's U-Net blocks (per-block network options)
    classes: NetworkTargets  # the family's modules a network wraps
    # The family's own network layout (its sd-scripts module is not networks/lora.py); None: sd-scripts' lora.py.
    network_layout: NetworkLayout | None = None

    @classmethod
    def of(cls, text_encoder: Any, unet: nn.Module | None, unet_module_name: ModuleNameMap | None) -> Models:
        text_encoders = as_list(text_encoder)
        family = family_of_modules(unet, len(text_encoders))
        module_name = resolve_unet_module_name(unet, unet_module_name)
        layout = cast("NetworkLayout | None", family.network_layout)  # the families type it structurally
        return cls(text_encoders, unet, module_name, family.block_layout, family.network_targets, layout)

    def targets(self, with_conv: bool) -> tuple[list[Target], list[Target]]:
        te = text_encoder_targets(self.text_encoders, self.classes)
        unet = unet_targets(self.unet, with_conv, self.unet_module_name, self.classes) if self.unet is not None else []
        return te, unet



class NetworkLayout(ABC):
    label: str  # the model, for messages ("FLUX.1")
    shape_keys: tuple[str, ...] = ()  # network_args that shape the network (from the file when made from weights)
    network_module: str = "networks.lora"  # sd-scripts' module for the layout (`ss_network_module`)
    # Whether extract_lora_from_models extracts the text encoders too (so it loads them).
    extracts_text_encoders: bool = True

    def refused_reason(self, key: str) -> str | None:
        """Why network_args `key` (one networks.lora reads for other families) means nothing here; None: no
        reason known, the key is then just unknown."""
        return None

    def foreign_modules_reason(self, network_args: Mapping[str, Any]) -> str | None:
        """Why a plug-in network module (lycoris.kohya, third-party) cannot train this family with these
        network_args; None: it can."""
        return None

    def plugin_view(self, unet: nn.Module) -> nn.Module | None:
        """The denoiser as sd-scripts' own model lays it out, handed to plug-in modules in its place (they pick
        layers and write names by its paths and classes); None: the generic view (bridge.py)."""
        return None

    @abstractmethod
    def text_encoder_prefixes(self, count: int) -> list[str]:
        """Key prefixes of the text encoders' layers, one per encoder in the order the trainer passes them."""

    @abstractmethod
    def targets(self, models: Models, args: ArgReader | None,
                weights: Mapping[str, torch.Tensor] | None) -> tuple[list[Target], list[Target]]:
        """(text encoder targets, denoiser targets). `args` for a new network; `weights` (instead) for one
        shaped like a file: every layer the file may hold is a candidate, ranks decide."""

    @abstractmethod
    def rank_chooser(self, models: Models, args: ArgReader, dim: int, alpha: float) -> RankChooser:
        """(rank, alpha) per target for a new network; rank 0 leaves the layer out."""

    @abstractmethod
    def every_target(self, models: Models) -> tuple[list[Target], list[Target]]:
        """Every layer a file of this layout may name, under every name it may use (the LoRA tools check
        files against it)."""

    def extracted_targets(self, models: Models) -> list[Target]:
        """The layers extract_lora_from_models factorises, by the names sd-scripts' extractor for the layout
        writes (default: every target)."""
        te_targets, denoiser_targets = self.every_target(models)
        return [*te_targets, *denoiser_targets]

    def split_fused(self, args: ArgReader | None) -> bool:
        """Whether fused targets keep a down/up pair per part (sd-scripts' split_qkv)."""
        return False
