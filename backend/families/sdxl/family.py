"""The SDXL family (torch side): size/crop conditioning, and networks named by the original (SGM)
U-Net paths, as sd-scripts and every SDXL LoRA reader expect."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import torch

from backend.families.sdxl.blocks import LAYOUT
from backend.families.sdxl.declaration import DECLARATIONS
from backend.families.sdxl.spec import StableDiffusionXLSpec, make_time_ids
from backend.families.seam import ModelFamily, ModuleNameMap, unet_config_value
from backend.models.keymap_unet import unet_module_to_original

if TYPE_CHECKING:
    from torch import nn


class StableDiffusionXLFamily(ModelFamily):
    declarations = DECLARATIONS
    spec = StableDiffusionXLSpec()
    block_layout = LAYOUT

    def conditioning_extras(self, batch: Mapping[str, Any]) -> dict[str, torch.Tensor]:
        """The U-Net's `time_ids` from the sizes and crops the data layer recorded per image."""
        sizes = [[tuple(x) for x in batch[key].tolist()]
                 for key in ("original_sizes_hw", "crop_top_lefts", "target_sizes_hw")]
        return {"time_ids": make_time_ids(*sizes)}

    def recognises(self, unet: nn.Module | None, text_encoder_count: int) -> bool:
        return (unet_config_value(unet, "addition_embed_type") == "text_time"
                or type(unet).__name__ == "SdxlUNet2DConditionModel" or (unet is None and text_encoder_count == 2))

    def network_module_names(self, unet: nn.Module) -> ModuleNameMap | None:
        if type(unet).__name__ == "SdxlUNet2DConditionModel":
            return None  # sd-scripts' own SGM U-Net: its paths are the original ones
        config = dict(unet.config)
        return lambda path: unet_module_to_original(path, config)


FAMILY = StableDiffusionXLFamily()
