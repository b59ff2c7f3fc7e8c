"""The Chroma family (torch side): FLUX.1's packed latents and flow matching, T5-XXL alone (masked), no
guidance input, and sd-scripts' lora_flux names for the layers Chroma has."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from backend.families.blocks import BlockLayout
from backend.families.chroma.declaration import DECLARATIONS
from backend.families.chroma.network import CHROMA_NETWORK
from backend.families.chroma.spec import ChromaSpec, ChromaTextOptions
from backend.families.flux.block_swap import DoubleSingleBlockSwap
from backend.families.seam import ModelFamily
from backend.messages import msg
from backend.objectives.flow_matching import FlowMatchingConfig, FlowMatchingObjective
from backend.objectives.loss import LossConfig

if TYPE_CHECKING:
    from torch import nn

    from backend.models.components import Components
    from backend.objectives.base import Objective

logger = logging.getLogger(__name__)
DEFAULT_GUIDANCE = 3.5  # --guidance_scale's default (sd-scripts'): not a choice made for Chroma


@dataclass(frozen=True)
class ChromaObjectiveOptions:
    """What Chroma training reads: the flow-matching options; --apply_t5_attn_mask must be on (sd-scripts
    asserts it for --model_type chroma: Chroma was trained with T5's padding masked)."""

    flow: FlowMatchingConfig = field(default_factory=FlowMatchingConfig)
    apply_t5_attn_mask: bool = True
    guidance_scale: float = 0.0  # no effect: the approximator always gets 0 (see ChromaFamily.objective)

    @classmethod
    def from_args(cls, args: Any) -> ChromaObjectiveOptions:
        return cls(FlowMatchingConfig.from_args(args), bool(args.apply_t5_attn_mask), float(args.guidance_scale))

    def validate(self, loss: LossConfig) -> None:
        self.flow.validate(loss)
        if not self.apply_t5_attn_mask:
            raise ValueError(msg(
                "chroma.needs_t5_mask", "Chroma needs --apply_t5_attn_mask (it was trained with T5's padding masked; "
                "sd-scripts refuses --model_type chroma without it too): add --apply_t5_attn_mask",
            ))


class ChromaFamily(DoubleSingleBlockSwap, ModelFamily):
    declarations = DECLARATIONS
    spec = ChromaSpec()
    block_layout = BlockLayout("Chroma", 0, 0, False, lambda name: None)
    objective_options = ChromaObjectiveOptions
    text_options = ChromaTextOptions
    network_layout = CHROMA_NETWORK

    def objective(self, components: Components | None, options: ChromaObjectiveOptions, loss: LossConfig
                  ) -> Objective:
        if options.guidance_scale not in (0.0, DEFAULT_GUIDANCE):  # a value given for it (the GUI hides the field)
            # sd-scripts feeds --guidance_scale to the approximator (its guide requires 0.0 for Chroma); diffusers'
            # ChromaTransformer2DModel always gives it 0, as Chroma was trained.
            logger.warning(msg("chroma.guidance_ignored", "--guidance_scale {value} has no effect on Chroma: its "
                               "approximator always gets guidance 0 (sd-scripts' guide sets --guidance_scale 0.0 "
                               "for Chroma)", value=options.guidance_scale))
        return FlowMatchingObjective(options.flow, loss)

    def recognises(self, unet: nn.Module | None, text_encoder_count: int) -> bool:
        return type(unet).__name__ == "ChromaTransformer2DModel"

    def claims(self, unet: nn.Module | None) -> bool:
        return self.recognises(unet, 0)


FAMILY = ChromaFamily()
