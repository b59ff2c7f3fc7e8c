"""Flow matching as finetrainers (~v0.2) trains its flow-matching video models (LTX-Video, Wan, HunyuanVideo).

finetrainers' SFT trainer (trainer/sft_trainer/trainer.py, utils/diffusion.py):
- sigmas: `prepare_sigmas` draws u per --flow_weighting_scheme (none: uniform; logit_normal with
  --flow_logit_mean/--flow_logit_std; mode with --flow_mode_scale) and indexes the model's
  `FlowMatchEulerDiscreteScheduler` training table, (N..1)/N shifted by the scheduler's `shift`: exactly the
  shared objective's "sigma" sampling (`FlowMatchingConfig.timestep_sampling="sigma"`, `discrete_flow_shift`);
- noisy input (1 - sigma) * latents + sigma * noise, target noise - latents (the raw velocity);
- time input sigma * 1000 (finetrainers truncates it to an integer; the table's sigmas are k/1000, so
  unshifted draws are integers anyway);
- loss weights `compute_loss_weighting_for_sd3(sigmas, scheme)`: sigma^-2 for sigma_sqrt, the cosmap weight,
  else 1 -- applied to the raw velocity loss, where the shared objective weights only sigma_scaled predictions.

Two flags finetrainers parses but its v0.2 trainer never applies (args.py: "TODO(aryan): We don't support this
yet"; its schedulers are built with the default shift 1.0): --flow_shift and --flow_resolution_shifting. Here
--flow_shift shifts the table as documented ("(shift * sigma) / (1 + (shift - 1) * sigma)"), and
--flow_resolution_shifting shifts each draw by the shift its `resolution_dependent_timestep_flow_shift` computes
from the latent token count (F x H x W; linear from --flow_base_shift at --flow_base_seq_len tokens to
--flow_max_shift at --flow_max_seq_len), which is what that function means to do.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch

from backend.messages import msg
from backend.objectives.flow_matching import (
    FlowMatchingConfig,
    FlowMatchingObjective,
    discrete_shift,
    lin_function,
    loss_weighting,
)
from backend.objectives.loss import LossConfig

# finetrainers' --flow_weighting_scheme choices.
FLOW_WEIGHTING_SCHEMES = ("none", "sigma_sqrt", "logit_normal", "mode", "cosmap")


@dataclass(frozen=True)
class ResolutionShift:
    """finetrainers' --flow_base_seq_len, --flow_max_seq_len, --flow_base_shift, --flow_max_shift."""

    base_seq_len: int = 256
    max_seq_len: int = 4096
    base_shift: float = 0.5
    max_shift: float = 1.15

    def shift(self, tokens: int) -> float:
        return lin_function(self.base_seq_len, self.base_shift, self.max_seq_len, self.max_shift)(tokens)


@dataclass(frozen=True)
class FinetrainersFlowOptions:
    """The flow-matching options of finetrainers' command (its flag names and defaults)."""

    flow_weighting_scheme: str = "none"
    flow_logit_mean: float = 0.0
    flow_logit_std: float = 1.0
    flow_mode_scale: float = 1.29
    flow_shift: float = 1.0
    flow_resolution_shifting: bool = False
    resolution: ResolutionShift = field(default_factory=ResolutionShift)

    @classmethod
    def from_args(cls, args: Any) -> FinetrainersFlowOptions:
        resolution = ResolutionShift(int(args.flow_base_seq_len), int(args.flow_max_seq_len),
                                     float(args.flow_base_shift), float(args.flow_max_shift))
        return cls(str(args.flow_weighting_scheme), float(args.flow_logit_mean), float(args.flow_logit_std),
                   float(args.flow_mode_scale), float(args.flow_shift), bool(args.flow_resolution_shifting),
                   resolution)

    @property
    def config(self) -> FlowMatchingConfig:
        """The shared objective's config doing finetrainers' sampling ("none" is the shared "uniform")."""
        scheme = "uniform" if self.flow_weighting_scheme == "none" else self.flow_weighting_scheme
        return FlowMatchingConfig(timestep_sampling="sigma", discrete_flow_shift=self.flow_shift,
                                  model_prediction_type="raw", weighting_scheme=scheme,
                                  logit_mean=self.flow_logit_mean, logit_std=self.flow_logit_std,
                                  mode_scale=self.flow_mode_scale)

    def validate(self, loss: LossConfig | None = None) -> None:
        if self.flow_weighting_scheme not in FLOW_WEIGHTING_SCHEMES:
            raise ValueError(msg("preflight.flow.choice", "{option} must be one of {choices}, not {value}",
                                 option="flow_weighting_scheme", choices=", ".join(FLOW_WEIGHTING_SCHEMES),
                                 value=repr(self.flow_weighting_scheme)))
        if self.flow_shift <= 0:
            raise ValueError(msg("preflight.flow.finetrainers_shift", "--flow_shift must be positive, got {value}",
                                 value=self.flow_shift))
        res = self.resolution
        if self.flow_resolution_shifting and not (0 < res.base_seq_len < res.max_seq_len):
            raise ValueError(msg("preflight.flow.seq_lens", "--flow_base_seq_len ({base}) must be positive and below "
                                 "--flow_max_seq_len ({max})", base=res.base_seq_len, max=res.max_seq_len))
        self.config.validate(loss)


def latent_tokens(latents: torch.Tensor) -> int:
    """The token count finetrainers' resolution shift reads: H x W of images, F x H x W of videos."""
    return int(torch.tensor(latents.shape[2:]).prod())


class FinetrainersFlowMatching(FlowMatchingObjective):
    """The shared flow-matching objective with finetrainers' loss weights and optional resolution shift."""

    def __init__(self, options: FinetrainersFlowOptions, loss: LossConfig, pinned_timestep: int | None = None) -> None:
        super().__init__(options.config, loss, pinned_timestep)
        self.options = options

    def _draw(self, latents: torch.Tensor, generator: torch.Generator | None
              ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        noise, sigmas, model_noise = super()._draw(latents, generator)
        if self.options.flow_resolution_shifting and self.pinned_timestep is None:
            sigmas = discrete_shift(sigmas, self.options.resolution.shift(latent_tokens(latents)))
        return noise, sigmas, model_noise

    def weights(self, timesteps: torch.Tensor) -> torch.Tensor | None:
        scheme = self.options.flow_weighting_scheme
        if scheme not in ("sigma_sqrt", "cosmap"):
            return None
        return loss_weighting(scheme, timesteps.float() / 1000)

    def at_timestep(self, timestep: int) -> FinetrainersFlowMatching:
        return FinetrainersFlowMatching(self.options, self.loss, pinned_timestep=timestep)

