"""The FLUX.1 family (torch side): packed 2x2 latent tokens, CLIP-L pooled + T5 conditioning, the
flow-matching objective with dev's guidance embedding, and networks named by the BFL module names."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import torch

from backend.families.blocks import BlockLayout
from backend.families.flux.block_swap import DoubleSingleBlockSwap
from backend.families.flux.declaration import DECLARATIONS
from backend.families.flux.network import FLUX_NETWORK
from backend.families.flux.spec import FluxSpec, FluxTextOptions
from backend.families.seam import ModelCall, ModelFamily
from backend.objectives.base import Generators, Prediction
from backend.objectives.flow_matching import FlowMatchingConfig, FlowMatchingObjective
from backend.objectives.loss import LossConfig

if TYPE_CHECKING:
    from torch import nn

    from backend.models.components import Components
    from backend.objectives.base import Objective


@dataclass(frozen=True)
class FluxObjectiveOptions:
    """What FLUX.1 training reads of the options: the flow-matching ones and --guidance_scale."""

    flow: FlowMatchingConfig = field(default_factory=FlowMatchingConfig)
    guidance_scale: float = 3.5

    @classmethod
    def from_args(cls, args: Any) -> FluxObjectiveOptions:
        return cls(FlowMatchingConfig.from_args(args), float(args.guidance_scale))

    def validate(self, loss: LossConfig) -> None:
        self.flow.validate(loss)


class GuidedFlowMatching(FlowMatchingObjective):
    """Flow matching with the guidance scale dev's transformer embeds during training (sd-scripts'
    --guidance_scale; schnell ignores it)."""

    def __init__(self, config: FlowMatchingConfig, loss: LossConfig, guidance_scale: float,
                 pinned_timestep: int | None = None) -> None:
        super().__init__(config, loss, pinned_timestep)
        self.guidance_scale = guidance_scale

    def at_timestep(self, timestep: int) -> GuidedFlowMatching:
        return GuidedFlowMatching(self.config, self.loss, self.guidance_scale, pinned_timestep=timestep)


class FluxFamily(DoubleSingleBlockSwap, ModelFamily):
    declarations = DECLARATIONS
    spec = FluxSpec()
    # sd-scripts has no U-Net-style block weights for FLUX.1 (it selects blocks with train_double_block_indices).
    block_layout = BlockLayout("FLUX.1", 0, 0, False, lambda name: None)
    objective_options = FluxObjectiveOptions
    text_options = FluxTextOptions
    network_layout = FLUX_NETWORK  # sd-scripts' lora_flux names, fused qkv, its network args

    def objective(self, components: Components | None, options: FluxObjectiveOptions, loss: LossConfig
                  ) -> Objective:
        return GuidedFlowMatching(options.flow, loss, options.guidance_scale)

    def forward(self, objective: Objective, latents: torch.Tensor, batch: Mapping[str, Any],
                generator: Generators, call: ModelCall) -> Prediction:
        noisy = objective.noisy_input(latents, generator)
        scale = getattr(objective, "guidance_scale", 1.0)
        extras = {"guidance": torch.full((latents.shape[0],), float(scale))}
        return objective.measure(call(noisy.model_input, noisy.timesteps, extras), noisy)

    def recognises(self, unet: nn.Module | None, text_encoder_count: int) -> bool:
        return type(unet).__name__ == "FluxTransformer2DModel"

    def claims(self, unet: nn.Module | None) -> bool:
        return self.recognises(unet, 0)


FAMILY = FluxFamily()
