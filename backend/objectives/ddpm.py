"""DDPM: 1000 discrete timesteps, the model predicts the noise (epsilon) or the velocity (v).

sd-scripts' objective for SD 1.x/2.x and SDXL: noise (with the offset/multires/input-perturbation
options of `noise.py`) added by the model's DDPM schedule at a uniform timestep, target epsilon or v,
per-sample weights from the SNR table (min-SNR-gamma, debiased estimation, v-prediction scaling) and
the huber threshold's schedule (`loss.py`).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import torch

from backend.objectives.base import Generators, NoisyInput, Objective
from backend.objectives.loss import LossConfig, apply_timestep_weighting, huber_threshold
from backend.objectives.noise import NoiseConfig, get_noisy_latents_and_targets


@dataclass(frozen=True)
class DDPMOptions:
    """What the DDPM objective reads of a run's options: the noise options and --zero_terminal_snr."""

    noise: NoiseConfig = NoiseConfig()
    zero_terminal_snr: bool = False

    @classmethod
    def from_args(cls, args: Any) -> DDPMOptions:
        return cls(NoiseConfig.from_args(args), bool(args.zero_terminal_snr))

    def validate(self, loss: LossConfig) -> None:
        self.noise.validate()


class DDPMObjective(Objective):
    def __init__(self, noise_scheduler: Any, noise: NoiseConfig, loss: LossConfig) -> None:
        self.noise_scheduler = noise_scheduler  # diffusers DDPMScheduler with `all_snr` (noise.create_noise_scheduler)
        self.noise = noise
        self.loss = loss
        self.loss_type = loss.loss_type
        self._weighted = bool(loss.min_snr_gamma or loss.scale_v_pred_loss_like_noise_pred
                              or loss.v_pred_like_loss or loss.debiased_estimation_loss)

    def noisy_input(self, latents: torch.Tensor, generator: Generators = None) -> NoisyInput:
        noisy = get_noisy_latents_and_targets(latents, self.noise_scheduler, self.noise, generator)
        return NoisyInput(noisy.noisy_latents, noisy.timesteps, noisy.target)

    def weights(self, timesteps: torch.Tensor) -> torch.Tensor | None:
        if not self._weighted:
            return None
        ones = torch.ones(timesteps.shape[0], device=timesteps.device)
        weighted = apply_timestep_weighting(ones, timesteps, self.noise_scheduler, self.loss)
        return weighted

    def huber_threshold(self, timesteps: torch.Tensor) -> torch.Tensor | None:
        return huber_threshold(self.loss, timesteps, self.noise_scheduler)

    def timestep_range(self) -> tuple[int, int]:
        return self.noise.timestep_range(self.noise_scheduler.config.num_train_timesteps)

    def at_timestep(self, timestep: int) -> DDPMObjective:
        pinned = dataclasses.replace(self.noise, min_timestep=timestep, max_timestep=timestep)
        return DDPMObjective(self.noise_scheduler, pinned, self.loss)
