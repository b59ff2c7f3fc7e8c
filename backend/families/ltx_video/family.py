"""The LTX-Video family (torch side): finetrainers' flow matching over packed video latents, PEFT LoRAs on the
attention projections.

Objective (finetrainers' LTXVideoModelSpecification.forward with its SFT trainer; backend/objectives/
finetrainers_flow.py): sigma from the scheduler's training table (LTX-Video's scheduler trains unshifted: shift
1.0), noisy latents (1 - sigma) x + sigma noise, target noise - x, time sigma x 1000, finetrainers' weighting
schemes. `--flow_resolution_shifting` (LTX-Video's example scripts pass it) shifts sigmas by the clip's latent
token count; finetrainers v0.2 parses it without applying it (see that module).

Not here yet: finetrainers' first-frame conditioning for LTX-Video (in 10 % of steps the first latent frame gets
its own sigma, at most 0.25 and below the clip's, and the transformer a per-token timestep) -- the image-to-video
step. `predict` already takes per-token timesteps ``[B, F' H' W']``; the step would draw the per-frame sigmas in
`forward` and measure the loss on the frames after the first, as LTXImageToVideoPipeline conditions on it.

LoRA: finetrainers' default --target_modules "to_q to_k to_v to_out.0" are the Linear layers of every
`LTXAttention` (self-attention attn1 and cross-attention attn2 of each block); its files are diffusers/PEFT
`pytorch_lora_weights.safetensors` with keys `transformer.<module path>.lora_A.weight` / `.lora_B.weight`
(`peft_key`), which `LTXPipeline.load_lora_weights` loads.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from backend.families.blocks import BlockLayout
from backend.families.ltx_video.declaration import DECLARATIONS
from backend.families.ltx_video.spec import LTXVideoSpec
from backend.families.network_targets import NetworkTargets
from backend.families.seam import ModelFamily
from backend.objectives.finetrainers_flow import FinetrainersFlowMatching, FinetrainersFlowOptions

if TYPE_CHECKING:
    from torch import nn

    from backend.models.components import Components
    from backend.objectives.base import Objective
    from backend.objectives.loss import LossConfig

TRANSFORMER_CLASS = "LTXVideoTransformer3DModel"
# finetrainers' default --target_modules (PEFT suffixes) and the attention classes holding them (diffusers
# >= 0.35 has LTXAttention; older versions the generic Attention with an LTX processor).
PEFT_TARGET_MODULES = ("to_q", "to_k", "to_v", "to_out.0")
ATTENTION_CLASSES = ("LTXAttention", "Attention")
PEFT_PREFIX = "transformer."


def peft_key(module_path: str, part: str) -> str:
    """A diffusers/PEFT LoRA key: `transformer.<module path>.lora_A.weight` (part "lora_A" or "lora_B")."""
    return f"{PEFT_PREFIX}{module_path}.{part}.weight"


class LTXVideoFamily(ModelFamily):
    declarations = DECLARATIONS
    spec = LTXVideoSpec()
    block_layout = BlockLayout("LTX-Video", 0, 0, False, lambda name: None)  # no per-block network options
    network_targets = NetworkTargets(denoiser=ATTENTION_CLASSES, denoiser_conv=(), text_encoder=())
    objective_options = FinetrainersFlowOptions

    def objective(self, components: Components | None, options: FinetrainersFlowOptions, loss: LossConfig
                  ) -> Objective:
        return FinetrainersFlowMatching(options, loss)

    def recognises(self, unet: nn.Module | None, text_encoder_count: int) -> bool:
        return type(unet).__name__ == TRANSFORMER_CLASS

    def claims(self, unet: nn.Module | None) -> bool:
        return self.recognises(unet, 0)


FAMILY = LTXVideoFamily()
