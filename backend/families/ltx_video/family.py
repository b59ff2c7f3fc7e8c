"""The LTX-Video family (torch side): finetrainers' flow matching over packed video latents, PEFT LoRAs on the
attention projections.

Objective (finetrainers' LTXVideoModelSpecification.forward with its SFT trainer; backend/objectives/
finetrainers_flow.py): sigma from the scheduler's training table (LTX-Video's scheduler trains unshifted: shift
1.0), noisy latents (1 - sigma) x + sigma noise, target noise - x, time sigma x 1000, finetrainers' weighting
schemes. `--flow_resolution_shifting` (LTX-Video's example scripts pass it) shifts sigmas by the clip's latent
token count; finetrainers v0.2 parses it without applying it (see that module).

First-frame conditioning (finetrainers' LTX-Video forward, always on there): in 10 % of steps the first latent
frame is noised less, at min(u x sigma, 0.25) with u uniform, while the transformer is still told the clip's
sigma and the target stays noise - latents for every frame. finetrainers decides once per batch with Python's
`random`; here each sample decides with its own generator, as every other draw of sample i. This is the training
half of image-to-video; `LTXImageToVideoPipeline` (the other half) needs no family change: it loads the same
components. `predict` also takes per-token timesteps ``[B, F' H' W']`` should a step want to tell the first frame
its own time (LTX-Video 0.9.5's conditioning does).

LoRA: finetrainers' default --target_modules "to_q to_k to_v to_out.0" are the Linear layers of every
`LTXAttention` (self-attention attn1 and cross-attention attn2 of each block); its files are diffusers/PEFT
`pytorch_lora_weights.safetensors` with keys `transformer.<module path>.lora_A.weight` / `.lora_B.weight`
(`peft_key`), which `LTXPipeline.load_lora_weights` loads.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import torch

from backend.families.blocks import BlockLayout
from backend.families.ltx_video.declaration import DECLARATIONS
from backend.families.ltx_video.spec import LTXVideoSpec
from backend.families.network_targets import NetworkTargets
from backend.families.seam import ModelFamily
from backend.objectives.base import NoisyInput
from backend.objectives.finetrainers_flow import FinetrainersFlowMatching, FinetrainersFlowOptions

if TYPE_CHECKING:
    from torch import nn

    from backend.models.components import Components
    from backend.objectives.base import Generators, Objective
    from backend.objectives.loss import LossConfig

TRANSFORMER_CLASS = "LTXVideoTransformer3DModel"
# finetrainers' default --target_modules (PEFT suffixes) and the attention classes holding them (diffusers
# >= 0.35 has LTXAttention; older versions the generic Attention with an LTX processor).
PEFT_TARGET_MODULES = ("to_q", "to_k", "to_v", "to_out.0")
ATTENTION_CLASSES = ("LTXAttention", "Attention")
PEFT_PREFIX = "transformer."
# finetrainers' LTXVideoModelSpecification.forward: first_frame_conditioning_p, min_first_frame_sigma.
FIRST_FRAME_CONDITIONING_P = 0.1
MIN_FIRST_FRAME_SIGMA = 0.25


def peft_key(module_path: str, part: str) -> str:
    """A diffusers/PEFT LoRA key: `transformer.<module path>.lora_A.weight` (part "lora_A" or "lora_B")."""
    return f"{PEFT_PREFIX}{module_path}.{part}.weight"


class LTXFlowMatching(FinetrainersFlowMatching):
    """finetrainers' flow matching with LTX-Video's first-frame conditioning (see the module docstring)."""

    def __init__(self, options: FinetrainersFlowOptions, loss: LossConfig, pinned_timestep: int | None = None,
                 first_frame_p: float = FIRST_FRAME_CONDITIONING_P) -> None:
        super().__init__(options, loss, pinned_timestep)
        self.first_frame_p = first_frame_p

    def _draw_clip(self, latents: torch.Tensor, generator: torch.Generator | None
                   ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """The shared draws, then whether the first frame is conditioned and its sigma (after them, so the
        noise and time of a sample stay what the shared objective draws)."""
        noise, sigmas, model_noise = self._draw(latents, generator)
        use = torch.rand(sigmas.shape, device=sigmas.device, generator=generator) < self.first_frame_p
        fraction = torch.rand(sigmas.shape, device=sigmas.device, generator=generator)
        first = torch.where(use, torch.clamp(fraction * sigmas, max=MIN_FIRST_FRAME_SIGMA), sigmas)
        return noise, sigmas, model_noise, first

    def noisy_input(self, latents: torch.Tensor, generator: Generators = None) -> NoisyInput:
        if self.pinned_timestep is not None or latents.ndim != 5 or latents.shape[2] < 2 or self.first_frame_p <= 0:
            return super().noisy_input(latents, generator)
        if isinstance(generator, Sequence):
            if len(generator) != latents.shape[0]:
                raise ValueError(f"{len(generator)} generators for a batch of {latents.shape[0]}")
            draws = [self._draw_clip(latents[i:i + 1], g) for i, g in enumerate(generator)]
            noise, sigmas, model_noise, first = (torch.cat(parts) for parts in zip(*draws, strict=True))
        else:
            noise, sigmas, model_noise, first = self._draw_clip(latents, generator)
        s, f = (x.view(-1, 1, 1, 1, 1) for x in (sigmas, first))
        rest = (1.0 - s) * latents[:, :, 1:] + s * model_noise[:, :, 1:]
        head = (1.0 - f) * latents[:, :, :1] + f * model_noise[:, :, :1]
        model_input = torch.cat([head, rest], dim=2).to(latents.dtype)
        return NoisyInput(model_input, sigmas * 1000, noise - latents)

    def at_timestep(self, timestep: int) -> LTXFlowMatching:
        return LTXFlowMatching(self.options, self.loss, pinned_timestep=timestep, first_frame_p=self.first_frame_p)


class LTXVideoFamily(ModelFamily):
    declarations = DECLARATIONS
    spec = LTXVideoSpec()
    block_layout = BlockLayout("LTX-Video", 0, 0, False, lambda name: None)  # no per-block network options
    network_targets = NetworkTargets(denoiser=ATTENTION_CLASSES, denoiser_conv=(), text_encoder=())
    objective_options = FinetrainersFlowOptions

    def objective(self, components: Components | None, options: FinetrainersFlowOptions, loss: LossConfig
                  ) -> Objective:
        return LTXFlowMatching(options, loss)

    def recognises(self, unet: nn.Module | None, text_encoder_count: int) -> bool:
        return type(unet).__name__ == TRANSFORMER_CLASS

    def claims(self, unet: nn.Module | None) -> bool:
        return self.recognises(unet, 0)

    def native_module_name(self, path: str) -> str:
        """Lightricks' names: the attention and FFN paths are the same; four pieces differ (diffusers'
        convert_ltx_to_diffusers.py renames)."""
        renames = {"proj_in": "patchify_proj", "time_embed": "adaln_single", "norm_q": "q_norm", "norm_k": "k_norm"}
        return ".".join(renames.get(part, part) for part in path.split("."))


FAMILY = LTXVideoFamily()
