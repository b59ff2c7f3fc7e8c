"""The HunyuanVideo family (torch side): Llama + CLIP-L conditioning, the dual/single-stream video transformer over
unpacked latents, finetrainers' flow matching, and PEFT LoRAs on the attention projections.

Objective (finetrainers' HunyuanVideoModelSpecification.forward with its SFT trainer; backend/objectives/
finetrainers_flow.py): sigma from `FlowMatchEulerDiscreteScheduler()`'s training table (shift 1.0; --flow_shift
shifts it, --flow_resolution_shifting by the clip's latent token count), noisy latents (1 - sigma) x + sigma noise,
target noise - x, time sigma x 1000, finetrainers' weighting schemes; the guidance embedding is given 1.0 (x 1000)
by the spec's predict. The sampling scheduler's shift 7.0 is for inference only, as in finetrainers.

LoRA: finetrainers' default --target_modules "to_q to_k to_v to_out.0" are the Linear layers of every attention
(the dual-stream blocks' joint attention, the single-stream blocks' attention and the token refiner's); its files
are diffusers/PEFT `pytorch_lora_weights.safetensors` with keys `transformer.<module path>.lora_A.weight` /
`.lora_B.weight`, which `HunyuanVideoPipeline.load_lora_weights` loads.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from backend.families.blocks import BlockLayout
from backend.families.hunyuan_video.declaration import DECLARATIONS
from backend.families.hunyuan_video.detection import TRANSFORMER_CLASS
from backend.families.hunyuan_video.spec import HunyuanVideoSpec
from backend.families.network_targets import NetworkTargets
from backend.families.seam import ModelFamily, ModuleNameMap
from backend.objectives.finetrainers_flow import FinetrainersFlowMatching, FinetrainersFlowOptions

if TYPE_CHECKING:
    from torch import nn

    from backend.models.components import Components
    from backend.objectives.base import Objective
    from backend.objectives.loss import LossConfig

# finetrainers' default --target_modules (PEFT suffixes) and the attention classes holding them (diffusers' generic
# Attention with HunyuanVideo's processors; a later HunyuanVideoAttention by name).
PEFT_TARGET_MODULES = ("to_q", "to_k", "to_v", "to_out.0")
ATTENTION_CLASSES = ("Attention", "HunyuanVideoAttention")


def peft_key(module_path: str, part: str) -> str:
    """A diffusers/PEFT LoRA key: `transformer.<module path>.lora_A.weight` (part "lora_A" or "lora_B")."""
    return f"transformer.{module_path}.{part}.weight"


class HunyuanVideoFamily(ModelFamily):
    declarations = DECLARATIONS
    spec = HunyuanVideoSpec()
    block_layout = BlockLayout("HunyuanVideo", 0, 0, False, lambda name: None)  # no per-block network options
    network_targets = NetworkTargets(denoiser=ATTENTION_CLASSES, denoiser_conv=(), text_encoder=())
    objective_options = FinetrainersFlowOptions

    def objective(self, components: Components | None, options: FinetrainersFlowOptions, loss: LossConfig
                  ) -> Objective:
        return FinetrainersFlowMatching(options, loss)

    def recognises(self, unet: nn.Module | None, text_encoder_count: int) -> bool:
        return type(unet).__name__ == TRANSFORMER_CLASS

    def claims(self, unet: nn.Module | None) -> bool:
        return self.recognises(unet, 0)

    def network_module_names(self, unet: nn.Module) -> ModuleNameMap | None:
        """The diffusers module paths (`transformer_blocks.0.attn.to_q`), as PEFT and diffusers' LoRA files name
        them."""
        return lambda name: name


FAMILY = HunyuanVideoFamily()
