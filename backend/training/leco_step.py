"""One LECO step (train_leco, sdxl_train_leco): a U-Net LoRA trained against the model's own predictions.

Per step, as sd-scripts' LECO scripts (after p1atdev/LECO): one prompt setting is drawn; pure noise is denoised
for a random k of N (--max_denoising_steps) sampling steps with the LoRA at the setting's multiplier and
classifier-free guidance --leco_denoise_guidance_scale on the target prompt; at the timestep reached (k/N of the
way down the 1,000 training timesteps) the frozen model (LoRA multiplier 0) predicts for the positive, neutral
and unconditional prompts, and the LoRA's prediction for the target prompt is pulled towards
neutral -/+ guidance_scale x (positive - unconditional) (erase / enhance), by MSE x the setting's weight
(--min_snr_gamma and the other SNR weightings at that timestep).

Decisions:
- The denoising pass runs without gradients, as the original LECO does: it only makes the latents the step
  trains on. sd-scripts' scripts keep its graph (checkpointed), which costs memory for up to N-1 U-Net passes
  and drives the LoRA through the whole chain as well.
- Its scheduler is the training schedule's DDPM (zero terminal SNR included) with the model's prediction type,
  so a v-prediction model denoises as one; sd-scripts' LECO builds an epsilon DDPM for every model.
- The "guidance 1.0" predictions are the prompt's own prediction: sd-scripts runs the unconditional half too and
  adds 1.0 x (cond - uncond), the same value for twice the work.
- Every draw comes from the step's generator (leco_data.py): resume is exact. After the step the LoRA is back at
  multiplier 1, so samples and the saved file show it at full strength.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from accelerate import Accelerator

from backend.families.seam import ModelFamily
from backend.models.components import Components, PromptEmbeds
from backend.models.spec import ModelSpecification
from backend.objectives.base import Generators
from backend.objectives.ddpm import DDPMObjective
from backend.objectives.loss import LossConfig, apply_timestep_weighting
from backend.training.leco_prompts import PromptSetting
from backend.training.method import TrainingMethod
from backend.training.option_slice import OptionSlice

LATENT_CHANNELS, LATENT_SCALE = 4, 8  # SD 1.x/2.x and SDXL latents: 4 channels, 1/8 of the image


@dataclass(frozen=True)
class LecoConfig(OptionSlice):
    prompts_file: str
    max_denoising_steps: int
    leco_denoise_guidance_scale: float
    noise_offset: float | None


def build_target(setting: PromptSetting, positive: torch.Tensor, neutral: torch.Tensor,
                 unconditional: torch.Tensor) -> torch.Tensor:
    """What the LoRA's prediction for the target prompt is trained towards."""
    offset = setting.guidance_scale * (positive - unconditional)
    return neutral - offset if setting.action == "erase" else neutral + offset


def draw_resolution(setting: PromptSetting, generator: torch.Generator) -> tuple[int, int]:
    """(height, width): the setting's, or with dynamic_resolution (square settings, as sd-scripts) a random
    multiple of 64 between half and all of it in each direction."""
    height, width = setting.resolution
    if not setting.dynamic_resolution or height != width:
        return height, width
    low, high = max(1, height // 2 // 64), height // 64
    draws = torch.randint(low, high + 1, (2,), generator=generator, device=generator.device).tolist()
    return draws[0] * 64, draws[1] * 64


def draw_size_conditioning(setting: PromptSetting, height: int, width: int,
                           generator: torch.Generator) -> dict[str, torch.Tensor]:
    """SDXL's size/crop conditioning as the data layer records it (original, crop, target): the image's own size,
    or with dynamic_crops an original 1-3x as large and a random crop of it (sd-scripts' get_add_time_ids)."""
    original, crop = (height, width), (0, 0)
    if setting.dynamic_crops:
        scale = torch.rand(1, generator=generator, device=generator.device).item() * 2 + 1
        original = (int(height * scale), int(width * scale))
        top = torch.randint(0, max(original[0] - height, 1), (1,), generator=generator, device=generator.device)
        left = torch.randint(0, max(original[1] - width, 1), (1,), generator=generator, device=generator.device)
        crop = (int(top.item()), int(left.item()))
    rows = setting.batch_size
    return {"original_sizes_hw": torch.tensor([original] * rows), "crop_top_lefts": torch.tensor([crop] * rows),
            "target_sizes_hw": torch.tensor([(height, width)] * rows)}


def repeat_embeds(embeds: PromptEmbeds, rows: int) -> PromptEmbeds:
    return PromptEmbeds(
        embeds.hidden_states.expand(rows, *embeds.hidden_states.shape[1:]),
        None if embeds.pooled is None else embeds.pooled.expand(rows, *embeds.pooled.shape[1:]),
        None if embeds.attention_mask is None else embeds.attention_mask.expand(rows, -1),
    )


@dataclass(frozen=True)
class LecoModel:
    """What a LECO step runs: the model and its network, as the run built them."""

    accelerator: Accelerator
    family: ModelFamily
    spec: ModelSpecification
    components: Components
    method: TrainingMethod  # its forward wraps the trained prediction
    network: Any  # the network module's object: set_multiplier
    weight_dtype: torch.dtype


class LecoStep:
    """The loss of one LECO step (the loop calls it in place of step.batch_loss)."""

    def __init__(self, config: LecoConfig, model: LecoModel, settings: list[PromptSetting],
                 embeds: dict[str, PromptEmbeds], objective: DDPMObjective, loss: LossConfig,
                 prediction_type: str) -> None:
        self.config = config
        self.model = model
        self.settings = settings
        self.embeds = embeds  # each prompt of the settings, encoded once (batch of 1)
        self.objective = objective
        self.loss = loss
        self.network = model.network
        # The sampling pass's scheduler: the training schedule (with --zero_terminal_snr's betas) and the model's
        # prediction type, its own copy (set_timesteps changes it).
        self.scheduler = copy.deepcopy(objective.noise_scheduler)
        self.scheduler.register_to_config(prediction_type=prediction_type)
        self.train_timesteps = objective.noise_scheduler.config.num_train_timesteps

    def __call__(self, batch: dict, generators: Generators) -> torch.Tensor:
        assert isinstance(generators, list) and len(generators) == 1  # one draw per batch (leco_data.py)
        generator = generators[0]
        run = self.model
        device = run.accelerator.device
        setting = self.settings[int(torch.randint(len(self.settings), (1,), generator=generator,
                                                  device=generator.device).item())]
        steps = self.config.max_denoising_steps
        denoise_to = int(torch.randint(1, steps, (1,), generator=generator, device=generator.device).item())
        height, width = draw_resolution(setting, generator)
        shape = (setting.batch_size, LATENT_CHANNELS, height // LATENT_SCALE, width // LATENT_SCALE)
        latents = torch.randn(shape, generator=generator, device=generator.device).to(device)
        latents = latents * self.scheduler.init_noise_sigma
        if self.config.noise_offset:
            offset = torch.randn((*shape[:2], 1, 1), generator=generator, device=generator.device).to(device)
            latents = latents + self.config.noise_offset * offset
        extras = run.family.conditioning_extras(draw_size_conditioning(setting, height, width, generator))

        def predict(prompt: str, noisy: torch.Tensor, timestep: torch.Tensor) -> torch.Tensor:
            rows = noisy.shape[0]
            timesteps = timestep.to(device).reshape(-1).expand(rows)
            with run.accelerator.autocast():
                return run.spec.predict(run.components.unet, noisy.to(run.weight_dtype), timesteps,
                                        repeat_embeds(self.embeds[prompt], rows), **extras)

        self.network.set_multiplier(setting.multiplier)
        with torch.no_grad():
            latents = self.denoise(predict, setting, latents, denoise_to, generator)
            timestep = self.timestep_after(denoise_to).to(device)
            self.network.set_multiplier(0.0)
            positive = predict(setting.positive, latents, timestep).float()
            neutral = predict(setting.neutral, latents, timestep).float()
            unconditional = predict(setting.unconditional, latents, timestep).float()
        self.network.set_multiplier(setting.multiplier)
        try:
            prediction = run.method.forward(lambda: predict(setting.target, latents, timestep))
        finally:
            self.network.set_multiplier(1.0)
        target = build_target(setting, positive, neutral, unconditional)
        loss = torch.nn.functional.mse_loss(prediction.float(), target, reduction="none").mean(dim=(1, 2, 3))
        loss = apply_timestep_weighting(loss, timestep.expand(loss.shape[0]), self.objective.noise_scheduler,
                                        self.loss)
        return loss.mean() * setting.weight

    def denoise(self, predict: Callable[[str, torch.Tensor, torch.Tensor], torch.Tensor], setting: PromptSetting,
                latents: torch.Tensor, denoise_to: int, generator: torch.Generator) -> torch.Tensor:
        """`denoise_to` of --max_denoising_steps sampling steps from pure noise, guided towards the target prompt."""
        scheduler = self.scheduler
        scheduler.set_timesteps(self.config.max_denoising_steps, device=latents.device)
        scale = self.config.leco_denoise_guidance_scale
        for timestep in scheduler.timesteps[:denoise_to]:
            model_input = scheduler.scale_model_input(latents, timestep)
            conditional = predict(setting.target, model_input, timestep).float()
            unconditional = predict(setting.unconditional, model_input, timestep).float()
            guided = unconditional + scale * (conditional - unconditional)
            # The step's variance noise from the step's generator (on its device), so resume is exact.
            latents = scheduler.step(guided, timestep, latents.float(), generator=generator).prev_sample
        return latents

    def timestep_after(self, denoise_to: int) -> torch.Tensor:
        """The training timestep k/N of the way down from the noisiest (sd-scripts: timesteps[int(k*1000/N)])."""
        index = int(denoise_to * self.train_timesteps / self.config.max_denoising_steps)
        return torch.tensor([self.train_timesteps - 1 - index], dtype=torch.long)
