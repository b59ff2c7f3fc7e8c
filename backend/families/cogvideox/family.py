"""The CogVideoX 1.0 family (torch side): T5 conditioning, the expert transformer over video latents, the DDPM
v-prediction objective as finetrainers trains CogVideoX, and LoRA on the attention projections by their diffusers
module paths (the PEFT layout of `pytorch_lora_weights.safetensors`)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch

from backend.families.blocks import BlockLayout
from backend.families.cogvideox.declaration import DECLARATIONS
from backend.families.cogvideox.detection import TRANSFORMER_CLASS
from backend.families.cogvideox.spec import CogVideoXSpec
from backend.families.network_targets import NetworkTargets
from backend.families.seam import ModelFamily, ModuleNameMap
from backend.objectives.base import Generators, NoisyInput, Objective, Prediction
from backend.objectives.loss import LossConfig, huber_threshold

if TYPE_CHECKING:
    from torch import nn

    from backend.models.components import Components

# finetrainers' default --target_modules: the query, key, value and output projections of every attention
# (CogVideoX's blocks have one, attn1, over the joined text and video tokens).
LORA_TARGET_MODULES = ("to_q", "to_k", "to_v", "to_out.0")


def training_scheduler(config: Mapping[str, Any]) -> Any:
    """The model's CogVideoXDDIMScheduler from its scheduler config (finetrainers loads the folder's scheduler):
    scaled-linear betas, the SNR shift (`snr_shift_scale` 3.0 for 2B, 1.0 for 5B), zero terminal SNR."""
    from diffusers import CogVideoXDDIMScheduler

    return CogVideoXDDIMScheduler.from_config(dict(config))


@dataclass(frozen=True)
class CogVideoXObjectiveOptions:
    """finetrainers reads none of its flags for CogVideoX's objective (--flow_* apply to flow matching only):
    uniform timesteps, the 1 / (1 - alphas_cumprod) weight."""

    @classmethod
    def from_args(cls, args: Any) -> CogVideoXObjectiveOptions:
        return cls()

    def validate(self, loss: LossConfig) -> None:
        return None


class CogVideoXDDPM(Objective):
    """finetrainers' CogVideoX training step (sft_trainer + CogVideoXModelSpecification.forward):

    - a step t uniform over the scheduler's 1000 (u ~ U[0, 1), the index floor(1000 u) into the table 999..0),
      then the noise, each sample from its own generator where the loop gives one each;
    - x_t = scheduler.add_noise(latents, noise, t);
    - the transformer's v estimate turned into a latents estimate with scheduler.get_velocity(v, x_t, t)
      (sqrt(a_t) x_t - sqrt(1 - a_t) v), measured against the latents;
    - each sample weighted by 1 / (1 - alphas_cumprod[t]) (which makes the l2 loss the plain v-prediction loss).

    finetrainers passes t through sigma = t / 1000 and back with a float32 truncation, which moves a few steps
    down by one; here the drawn step is used as drawn."""

    def __init__(self, scheduler: Any, loss: LossConfig, pinned_timestep: int | None = None) -> None:
        self.scheduler = scheduler
        self.loss = loss
        self.loss_type = loss.loss_type
        self.pinned_timestep = pinned_timestep  # validation: every sample at this step
        self.steps = int(scheduler.config.num_train_timesteps)

    def _draw(self, latents: torch.Tensor, generator: torch.Generator | None) -> tuple[torch.Tensor, torch.Tensor]:
        n, device = latents.shape[0], latents.device
        if self.pinned_timestep is not None:
            timesteps = torch.full((n,), self.pinned_timestep, device=device, dtype=torch.long)
        else:
            u = torch.rand(n, device=device, generator=generator)
            timesteps = self.steps - 1 - (u * self.steps).long().clamp(0, self.steps - 1)
        noise = torch.randn(latents.shape, device=device, dtype=latents.dtype, generator=generator)
        return timesteps, noise

    def noisy_input(self, latents: torch.Tensor, generator: Generators = None) -> NoisyInput:
        if isinstance(generator, Sequence):
            if len(generator) != latents.shape[0]:
                raise ValueError(f"{len(generator)} generators for a batch of {latents.shape[0]}")
            draws = [self._draw(latents[i : i + 1], g) for i, g in enumerate(generator)]
            timesteps, noise = (torch.cat(parts) for parts in zip(*draws, strict=True))
        else:
            timesteps, noise = self._draw(latents, generator)
        noisy = self.scheduler.add_noise(latents, noise, timesteps)
        return NoisyInput(noisy.to(latents.dtype), timesteps, latents)

    def measure(self, prediction: torch.Tensor, noisy: NoisyInput) -> Prediction:
        estimate = self.scheduler.get_velocity(prediction, noisy.model_input, noisy.timesteps)
        return super().measure(estimate, noisy)

    def weights(self, timesteps: torch.Tensor) -> torch.Tensor | None:
        alphas = self.scheduler.alphas_cumprod.to(timesteps.device)[timesteps.long()].float()
        return 1 / (1 - alphas)

    def huber_threshold(self, timesteps: torch.Tensor) -> torch.Tensor | None:
        return huber_threshold(self.loss, timesteps.long(), self.scheduler)

    def timestep_range(self) -> tuple[int, int]:
        return 0, self.steps

    def at_timestep(self, timestep: int) -> CogVideoXDDPM:
        return CogVideoXDDPM(self.scheduler, self.loss, pinned_timestep=min(timestep, self.steps - 1))


def lora_key(module_path: str, matrix: str) -> str:
    """A LoRA tensor's key in diffusers' `pytorch_lora_weights.safetensors` ("A" or "B")."""
    return f"transformer.{module_path}.lora_{matrix}.weight"


def lora_module_paths(transformer: nn.Module, targets: tuple[str, ...] = LORA_TARGET_MODULES) -> list[str]:
    """The transformer's Linear layers PEFT wraps for `targets` (module names matched as path suffixes)."""
    return [name for name, module in transformer.named_modules()
            if isinstance(module, torch.nn.Linear) and any(name == t or name.endswith("." + t) for t in targets)]


class CogVideoXFamily(ModelFamily):
    declarations = DECLARATIONS
    spec = CogVideoXSpec()
    block_layout = BlockLayout("CogVideoX", 0, 0, False, lambda name: None)  # no per-block network options
    # Every Linear in the attentions: to_q, to_k, to_v, to_out.0 (finetrainers' default targets).
    network_targets = NetworkTargets(denoiser=("Attention",), denoiser_conv=(), text_encoder=())
    objective_options = CogVideoXObjectiveOptions

    def objective(self, components: Components | None, options: CogVideoXObjectiveOptions, loss: LossConfig
                  ) -> Objective:
        from backend.models.configs import load_arch_configs

        config = (components.configs.scheduler if components is not None
                  else load_arch_configs(DECLARATIONS[0].epsilon.config_set).scheduler)
        return CogVideoXDDPM(training_scheduler(config), loss)

    def recognises(self, unet: nn.Module | None, text_encoder_count: int) -> bool:
        return type(unet).__name__ == TRANSFORMER_CLASS

    def claims(self, unet: nn.Module | None) -> bool:
        return self.recognises(unet, 0)

    def network_module_names(self, unet: nn.Module) -> ModuleNameMap | None:
        """The diffusers module paths (`transformer_blocks.0.attn1.to_q`), as PEFT and diffusers' LoRA files
        name them."""
        return lambda name: name


FAMILY = CogVideoXFamily()
