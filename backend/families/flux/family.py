"""The FLUX.1 family (torch side): packed 2x2 latent tokens, CLIP-L pooled + T5 conditioning, the
flow-matching objective with dev's guidance embedding, and networks named by the BFL module names."""

from __future__ import annotations

from typing import TYPE_CHECKING

from backend.families.blocks import BlockLayout
from backend.families.flux.declaration import DECLARATIONS
from backend.families.flux.network import FLUX_NETWORK
from backend.families.seam import ModelFamily

if TYPE_CHECKING:
    from torch import nn


class FluxFamily(ModelFamily):
    declarations = DECLARATIONS
    # sd-scripts has no U-Net-style block weights for FLUX.1 (it selects blocks with train_double_block_indices).
    block_layout = BlockLayout("FLUX.1", 0, 0, False, lambda name: None)

    network_layout = FLUX_NETWORK  # sd-scripts' networks/lora_flux.py layout (network.py)

    def recognises(self, unet: nn.Module | None, text_encoder_count: int) -> bool:
        return type(unet).__name__ == "FluxTransformer2DModel"

    def claims(self, unet: nn.Module | None) -> bool:
        return self.recognises(unet, 0)  # its own class: SDXL's two-encoder test must not take it


FAMILY = FluxFamily()
