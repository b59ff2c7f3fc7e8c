"""The SD 3.5 family (torch side): CLIP-L + CLIP-G + T5 conditioning, the MMDiT over 2x2 latent patches, SD3's
flow-matching objective, and networks named by SAI's module names (sd-scripts' lora_sd3)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

import torch

from backend.families.blocks import BlockLayout
from backend.families.sd3.declaration import DECLARATIONS
from backend.families.sd3.network import SD3_NETWORK
from backend.families.sd3.spec import Sd3Spec, Sd3TextOptions
from backend.families.seam import ModelCall, ModelFamily
from backend.messages import msg
from backend.objectives.base import Generators, NoisyInput, Prediction
from backend.objectives.flow_matching import (
    NUM_TRAIN_TIMESTEPS,
    FlowMatchingConfig,
    FlowMatchingObjective,
    density_sample,
    discrete_shift,
)
from backend.objectives.loss import LossConfig

if TYPE_CHECKING:
    from torch import nn

    from backend.models.components import Components
    from backend.objectives.base import Objective


@dataclass(frozen=True)
class Sd3ObjectiveOptions:
    """What SD 3.5 training reads of the options: the weighting scheme's density, --training_shift and the
    timestep bounds. sd-scripts' SD3 trainer always preconditions the output (sigma_scaled) against the latents."""

    flow: FlowMatchingConfig
    training_shift: float = 1.0
    min_timestep: int = 0
    max_timestep: int = NUM_TRAIN_TIMESTEPS
    pos_emb_random_crop_rate: float = 0.0  # pos_embed.py: the MMDiT's position table, cropped at random
    enable_scaled_pos_embed: bool = False  # pos_embed.py: a scaled position table per training resolution

    @classmethod
    def from_args(cls, args: Any) -> Sd3ObjectiveOptions:
        flow = FlowMatchingConfig(model_prediction_type="sigma_scaled", weighting_scheme=args.weighting_scheme,
                                  logit_mean=args.logit_mean, logit_std=args.logit_std, mode_scale=args.mode_scale)
        low = 0 if args.min_timestep is None else int(args.min_timestep)
        high = NUM_TRAIN_TIMESTEPS if args.max_timestep is None else int(args.max_timestep)
        return cls(flow, float(args.training_shift), low, high, float(args.pos_emb_random_crop_rate),
                   bool(args.enable_scaled_pos_embed))

    def validate(self, loss: LossConfig) -> None:
        self.flow.validate(loss)
        if self.training_shift <= 0:
            raise ValueError(msg("preflight.sd3.training_shift", "training_shift must be positive, got {value}",
                                 value=self.training_shift))
        if not 0 <= self.min_timestep < self.max_timestep <= NUM_TRAIN_TIMESTEPS:
            raise ValueError(msg("preflight.sd3.timestep_range", "need 0 <= min_timestep ({low}) < max_timestep "
                                 "({high}) <= 1000", low=self.min_timestep, high=self.max_timestep))


class Sd3FlowMatching(FlowMatchingObjective):
    """sd3_train_utils.get_noisy_model_input_and_timesteps: u from the weighting scheme's density, shifted by
    --training_shift, made an integer timestep in [min_timestep, max_timestep), sigma = t / 1000."""

    def __init__(self, config: FlowMatchingConfig, loss: LossConfig, training_shift: float,
                 pinned_timestep: int | None = None, bounds: tuple[int, int] = (0, NUM_TRAIN_TIMESTEPS),
                 pos_crop_rate: float = 0.0) -> None:
        super().__init__(config, loss, pinned_timestep)
        self.training_shift = training_shift
        self.bounds = bounds
        self.pos_crop_rate = pos_crop_rate  # --pos_emb_random_crop_rate: Sd3Family.forward draws the windows

    def _draw(self, latents: torch.Tensor, generator: torch.Generator | None
              ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        device, n = latents.device, latents.shape[0]
        noise = torch.randn(latents.shape, device=device, dtype=latents.dtype, generator=generator)
        if self.pinned_timestep is not None:
            sigmas = torch.full((n,), self.pinned_timestep / NUM_TRAIN_TIMESTEPS, device=device)
        else:
            u = discrete_shift(density_sample(self.config, n, device, generator), self.training_shift)
            low, high = self.bounds
            sigmas = (u * (high - low) + low).long().float() / NUM_TRAIN_TIMESTEPS
        return noise, sigmas, noise

    def noisy_input(self, latents: torch.Tensor, generator: Generators = None) -> NoisyInput:
        """The model's time input is the integer timestep itself (sigma x 1000 without float error)."""
        noisy = super().noisy_input(latents, generator)
        return replace(noisy, timesteps=noisy.timesteps.round())

    def timestep_range(self) -> tuple[int, int]:
        return self.bounds

    def at_timestep(self, timestep: int) -> Sd3FlowMatching:
        return Sd3FlowMatching(self.config, self.loss, self.training_shift, timestep, self.bounds, self.pos_crop_rate)


class Sd3Family(ModelFamily):
    declarations = DECLARATIONS
    spec = Sd3Spec()
    # sd-scripts has no U-Net-style block weights for SD3 (it selects blocks with train_block_indices).
    block_layout = BlockLayout("SD 3.5", 0, 0, False, lambda name: None)
    objective_options = Sd3ObjectiveOptions
    text_options = Sd3TextOptions
    network_layout = SD3_NETWORK

    def objective(self, components: Components | None, options: Sd3ObjectiveOptions, loss: LossConfig
                  ) -> Objective:
        return Sd3FlowMatching(options.flow, loss, options.training_shift,
                               bounds=(options.min_timestep, options.max_timestep),
                               pos_crop_rate=options.pos_emb_random_crop_rate)

    def prepare_training(self, components: Components, options: Sd3ObjectiveOptions,
                         resolutions: Sequence[tuple[int, int]]) -> None:
        """--pos_emb_random_crop_rate, --enable_scaled_pos_embed: the MMDiT's pos_embed made pos_embed.py's."""
        if options.pos_emb_random_crop_rate > 0 or options.enable_scaled_pos_embed:
            from backend.families.sd3.pos_embed import install, latent_sizes

            sizes = latent_sizes(resolutions) if options.enable_scaled_pos_embed else None
            install(components.unet, options.pos_emb_random_crop_rate, sizes)

    def forward(self, objective: Objective, latents: torch.Tensor, batch: Mapping[str, Any],
                generator: Generators, call: ModelCall) -> Prediction:
        noisy = objective.noisy_input(latents, generator)
        extras = {}
        if isinstance(objective, Sd3FlowMatching) and objective.pos_crop_rate > 0:
            from backend.families.sd3.pos_embed import crop_draws

            # after the noise: the same noise and timesteps as without cropping
            extras["pos_embed_crop"] = crop_draws(latents.shape[0], latents.device, generator)
        return objective.measure(call(noisy.model_input, noisy.timesteps, extras), noisy)

    def recognises(self, unet: nn.Module | None, text_encoder_count: int) -> bool:
        return type(unet).__name__ == "SD3Transformer2DModel"

    def claims(self, unet: nn.Module | None) -> bool:
        return self.recognises(unet, 0)

    # --blocks_to_swap: sd-scripts' MMDiT.enable_block_swap swaps the last N joint blocks (diffusers'
    # transformer_blocks) and keeps two on the GPU: at most 36 for Large (38 blocks), 22 for Medium (24).
    def swap_groups(self, denoiser: nn.Module) -> list[list[nn.Module]]:
        return [list(denoiser.transformer_blocks)]

    def swap_group_sizes(self, config: Mapping[str, Any]) -> list[int]:
        size = config.get("num_layers")
        return [size] if isinstance(size, int) else []


FAMILY = Sd3Family()
