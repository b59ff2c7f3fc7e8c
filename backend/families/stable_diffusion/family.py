"""The SD 1.x/2.x family (torch side)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from backend.families.seam import ModelFamily, unet_config_value
from backend.families.stable_diffusion.blocks import LAYOUT
from backend.families.stable_diffusion.declaration import DECLARATIONS
from backend.families.stable_diffusion.spec import StableDiffusionSpec

if TYPE_CHECKING:
    from torch import nn


class StableDiffusionFamily(ModelFamily):
    declarations = DECLARATIONS
    spec = StableDiffusionSpec()
    block_layout = LAYOUT

    def recognises(self, unet: nn.Module | None, text_encoder_count: int) -> bool:
        return (text_encoder_count <= 1 and (unet is None or hasattr(unet, "down_blocks"))  # a U-Net, if any
                and unet_config_value(unet, "addition_embed_type") is None
                and type(unet).__name__ != "SdxlUNet2DConditionModel")


FAMILY = StableDiffusionFamily()
