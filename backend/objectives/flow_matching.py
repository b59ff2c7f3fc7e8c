"""Flow matching (rectified flow): the noisy input is a straight line between latents and noise.

sd-scripts' objective for its flow models (library/flux_train_utils.py, sd3_train_network.py at
48d368fa), with diffusers' SD3 helpers (training_utils.py):

- time: sigma in [0, 1] per sample, drawn as `timestep_sampling` says
  (`get_noisy_model_input_and_timesteps`); the model's time input is sigma x 1000;
- noisy input: (1 - sigma) * latents + sigma * noise (plus sigma * gamma * xi with ip_noise_gamma);
- target: noise - latents (the velocity); with model_prediction_type sigma_scaled the prediction is
  preconditioned to prediction * (-sigma) + noisy input (an estimate of the latents, EDM section 5)
  and measured against the latents, as SD3 does;
- weights: `compute_loss_weighting_for_sd3` (sigma_sqrt, cosmap) under sigma_scaled only, as
  sd-scripts' `apply_model_prediction_type`.

No family uses it yet: the Flux and SD3 families will return it from `ModelFamily.objective`, and
declare its command-line options (`FlowMatchingConfig`'s field names, sd-scripts' flags) in their
declarations. Differences from sd-scripts, on purpose: every draw of sample i comes from generator i
when the loop gives one each (`noise.py`), so ip_noise_gamma's random strength is per sample;
`at_timestep` really pins the time (sd-scripts' Flux sampler ignores min/max_timestep);
sigma_scaled is measured against the latents as sd-scripts' SD3 script does (its Flux script keeps
noise - latents as the target there too, which does not match the preconditioned prediction).
Not here yet: SD3's own sampler (sd3_train_utils.get_noisy_model_input_and_timesteps: the density
shifted by --training_shift inside min/max_timestep, integer timesteps).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cache
from typing import Any

import torch

from backend.messages import msg
from backend.objectives.base import Generators, NoisyInput, Objective, Prediction
from backend.objectives.loss import LossConfig

NUM_TRAIN_TIMESTEPS = 1000
TIMESTEP_SAMPLINGS = ("sigma", "uniform", "sigmoid", "shift", "flux_shift")
MODEL_PREDICTION_TYPES = ("raw", "additive", "sigma_scaled")
# "uniform" and "none" behave the same (sd-scripts' default is "uniform").
WEIGHTING_SCHEMES = ("sigma_sqrt", "logit_normal", "mode", "cosmap", "none", "uniform")
# The SD3 paper's mode sampling is a monotone map of [0, 1] onto itself only for s in [-1, 2/(pi-2)].
MODE_SCALE_RANGE = (-1.0, 2.0 / (math.pi - 2.0))


@dataclass(frozen=True)
class FlowMatchingConfig:
    """The flow-matching options, named and defaulted as sd-scripts' flags."""

    timestep_sampling: str = "sigma"
    sigmoid_scale: float = 1.0
    discrete_flow_shift: float = 3.0
    model_prediction_type: str = "sigma_scaled"
    weighting_scheme: str = "uniform"
    logit_mean: float = 0.0
    logit_std: float = 1.0
    mode_scale: float = 1.29
    ip_noise_gamma: float | None = None
    ip_noise_gamma_random_strength: bool = False

    @classmethod
    def from_args(cls, args: Any) -> FlowMatchingConfig:
        return cls(**{name: getattr(args, name) for name in cls.__dataclass_fields__})

    def validate(self, loss: LossConfig | None = None) -> None:
        """Raise ValueError for options this objective cannot use (and, given `loss`, loss options)."""
        for option, value, choices in (
            ("timestep_sampling", self.timestep_sampling, TIMESTEP_SAMPLINGS),
            ("model_prediction_type", self.model_prediction_type, MODEL_PREDICTION_TYPES),
            ("weighting_scheme", self.weighting_scheme, WEIGHTING_SCHEMES),
        ):
            if value not in choices:
                raise ValueError(msg("preflight.flow.choice", "{option} must be one of {choices}, not {value}",
                                     option=option, choices=", ".join(choices), value=repr(value)))
        if self.discrete_flow_shift <= 0:
            raise ValueError(msg("preflight.flow.shift", "discrete_flow_shift must be positive, got {value}",
                                 value=self.discrete_flow_shift))
        if self.logit_std < 0:
            raise ValueError(msg("preflight.flow.logit_std", "logit_std must not be negative, got {value}",
                                 value=self.logit_std))
        low, high = MODE_SCALE_RANGE
        if self.weighting_scheme == "mode" and not low <= self.mode_scale <= high:
            raise ValueError(msg("preflight.flow.mode_scale", "mode_scale must be between {low} and {high} "
                                 "(beyond them the mode sampling leaves [0, 1]), got {value}",
                                 low=f"{low:g}", high=f"{high:.4f}", value=self.mode_scale))
        if loss is not None:
            _validate_loss(loss)


def _huber_snr_error() -> ValueError:
    return ValueError(msg("preflight.flow.huber_snr", "huber_schedule snr needs a DDPM noise schedule; use "
                          "exponential or constant with flow matching"))


def _validate_loss(loss: LossConfig) -> None:
    if loss.loss_type in ("huber", "smooth_l1") and loss.huber_schedule == "snr":
        raise _huber_snr_error()
    # The SNR weightings (min_snr_gamma, ...) have no effect here; the option parser says so, as sd-scripts
    # accepts them. v-prediction would be a different model: refused.
    if loss.v_parameterization:
        raise ValueError(msg("preflight.flow.v_parameterization", "v_parameterization is a DDPM option; a "
                             "flow-matching model predicts the velocity itself, remove it"))


# --- time: the samplers of sd-scripts' get_noisy_model_input_and_timesteps ---------------------------


def time_shift(mu: float, sigma: float, t: torch.Tensor) -> torch.Tensor:
    """Flux's resolution-dependent shift: e^mu / (e^mu + (1/t - 1)^sigma)."""
    return math.exp(mu) / (math.exp(mu) + (1 / t - 1) ** sigma)


def lin_function(x1: float = 256, y1: float = 0.5, x2: float = 4096, y2: float = 1.15) -> Callable[[float], float]:
    """The line through (x1, y1) and (x2, y2) (Flux: mu from the packed image's token count)."""
    slope = (y2 - y1) / (x2 - x1)
    return lambda x: slope * x + (y1 - slope * x1)


def flux_shift_mu(height: int, width: int) -> float:
    """mu for latents of height x width: Flux packs 2x2 latent pixels into one token."""
    return lin_function(y1=0.5, y2=1.15)((height // 2) * (width // 2))


def discrete_shift(sigmas: torch.Tensor, shift: float) -> torch.Tensor:
    """shift * s / (1 + (shift - 1) * s): moves sigmas toward 1 (noisier) for shift > 1."""
    return sigmas * shift / (1 + (shift - 1) * sigmas)


@cache  # read-only: indexed, never written
def scheduler_sigmas(shift: float, num_train_timesteps: int = NUM_TRAIN_TIMESTEPS) -> torch.Tensor:
    """FlowMatchEulerDiscreteScheduler's training table: (N, N-1, ..., 1) / N, shifted (on the CPU)."""
    steps = torch.linspace(1, num_train_timesteps, num_train_timesteps, dtype=torch.float32).flip(0)
    return discrete_shift(steps / num_train_timesteps, shift)


def density_sample(config: FlowMatchingConfig, n: int, device: torch.device,
                   generator: torch.Generator | None) -> torch.Tensor:
    """u in [0, 1] per `weighting_scheme` (compute_density_for_timestep_sampling)."""
    if config.weighting_scheme == "logit_normal":
        u = torch.randn(n, device=device, generator=generator) * config.logit_std + config.logit_mean
        return torch.sigmoid(u)
    u = torch.rand(n, device=device, generator=generator)
    if config.weighting_scheme == "mode":
        u = 1 - u - config.mode_scale * (torch.cos(math.pi * u / 2) ** 2 - 1 + u)
    return u


def sample_sigmas(config: FlowMatchingConfig, n: int, height: int, width: int,
                  device: torch.device, generator: torch.Generator | None) -> torch.Tensor:
    """n sigmas in [0, 1] (float32) for latents of height x width, drawn on `device`."""
    scheme = config.timestep_sampling
    if scheme == "uniform":
        return torch.rand(n, device=device, generator=generator)
    if scheme == "sigmoid":
        return torch.sigmoid(config.sigmoid_scale * torch.randn(n, device=device, generator=generator))
    if scheme in ("shift", "flux_shift"):
        sigmas = torch.sigmoid(torch.randn(n, device=device, generator=generator) * config.sigmoid_scale)
        if scheme == "shift":
            return discrete_shift(sigmas, config.discrete_flow_shift)
        return time_shift(flux_shift_mu(height, width), 1.0, sigmas)
    # "sigma": an index into the shifted scheduler table, drawn per weighting_scheme. The clamp keeps
    # u = 1 (mode sampling at u = 0) on the last entry where sd-scripts would index past the table.
    u = density_sample(config, n, device, generator)
    indices = (u * NUM_TRAIN_TIMESTEPS).long().clamp(0, NUM_TRAIN_TIMESTEPS - 1)
    return scheduler_sigmas(config.discrete_flow_shift).to(device)[indices]


def loss_weighting(weighting_scheme: str, sigmas: torch.Tensor) -> torch.Tensor:
    """compute_loss_weighting_for_sd3: sigma^-2 (sigma_sqrt), 2 / (pi (1 - 2s + 2s^2)) (cosmap), else 1."""
    if weighting_scheme == "sigma_sqrt":
        return (sigmas**-2.0).float()
    if weighting_scheme == "cosmap":
        return 2 / (math.pi * (1 - 2 * sigmas + 2 * sigmas**2))
    return torch.ones_like(sigmas)


# --- the objective ---------------------------------------------------------------------------------


def _expand(sigmas: torch.Tensor, ndim: int) -> torch.Tensor:
    return sigmas.view(-1, *([1] * (ndim - 1)))


class FlowMatchingObjective(Objective):
    def __init__(self, config: FlowMatchingConfig, loss: LossConfig, pinned_timestep: int | None = None) -> None:
        self.config = config
        self.loss = loss
        self.loss_type = loss.loss_type
        self.pinned_timestep = pinned_timestep  # validation: every sample at sigma = t / 1000

    def _draw(self, latents: torch.Tensor, generator: torch.Generator | None
              ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(noise, sigmas, the noise the model sees) in sd-scripts' order: noise, time, xi, strength."""
        device = latents.device
        noise = torch.randn(latents.shape, device=device, dtype=latents.dtype, generator=generator)
        n, height, width = latents.shape[0], latents.shape[-2], latents.shape[-1]
        if self.pinned_timestep is not None:
            sigmas = torch.full((n,), self.pinned_timestep / NUM_TRAIN_TIMESTEPS, device=device)
        else:
            sigmas = sample_sigmas(self.config, n, height, width, device, generator)
        model_noise = noise
        if self.config.ip_noise_gamma:
            xi = torch.randn(latents.shape, device=device, dtype=latents.dtype, generator=generator)
            strength: float | torch.Tensor = self.config.ip_noise_gamma
            if self.config.ip_noise_gamma_random_strength:
                strength = torch.rand(1, device=device, generator=generator) * self.config.ip_noise_gamma
            model_noise = noise + strength * xi
        return noise, sigmas, model_noise

    def noisy_input(self, latents: torch.Tensor, generator: Generators = None) -> NoisyInput:
        if isinstance(generator, Sequence):
            if len(generator) != latents.shape[0]:
                raise ValueError(f"{len(generator)} generators for a batch of {latents.shape[0]}")
            draws = [self._draw(latents[i : i + 1], g) for i, g in enumerate(generator)]
            noise, sigmas, model_noise = (torch.cat(parts) for parts in zip(*draws, strict=True))
        else:
            noise, sigmas, model_noise = self._draw(latents, generator)
        s = _expand(sigmas, latents.ndim)
        model_input = ((1.0 - s) * latents + s * model_noise).to(latents.dtype)
        target = latents if self.config.model_prediction_type == "sigma_scaled" else noise - latents
        return NoisyInput(model_input, sigmas * NUM_TRAIN_TIMESTEPS, target)

    def measure(self, prediction: torch.Tensor, noisy: NoisyInput) -> Prediction:
        """apply_model_prediction_type: raw as is, additive + noisy input, sigma_scaled to a latents estimate."""
        kind = self.config.model_prediction_type
        if kind == "additive":
            prediction = prediction + noisy.model_input
        elif kind == "sigma_scaled":
            sigmas = _expand(noisy.timesteps.float() / NUM_TRAIN_TIMESTEPS, prediction.ndim)
            prediction = prediction * (-sigmas) + noisy.model_input
        return super().measure(prediction, noisy)

    def weights(self, timesteps: torch.Tensor) -> torch.Tensor | None:
        scheme = self.config.weighting_scheme
        if self.config.model_prediction_type != "sigma_scaled" or scheme not in ("sigma_sqrt", "cosmap"):
            return None
        return loss_weighting(scheme, timesteps.float() / NUM_TRAIN_TIMESTEPS)

    def huber_threshold(self, timesteps: torch.Tensor) -> torch.Tensor | None:
        """sd-scripts' get_huber_threshold_if_needed on the time input (0..1000); no snr schedule here."""
        loss = self.loss
        if loss.loss_type not in ("huber", "smooth_l1"):
            return None
        if loss.huber_schedule == "exponential":
            alpha = -math.log(loss.huber_c) / NUM_TRAIN_TIMESTEPS
            return torch.exp(-alpha * timesteps.float()) * loss.huber_scale
        if loss.huber_schedule == "constant":
            return torch.full((timesteps.shape[0],), loss.huber_c * loss.huber_scale, device=timesteps.device)
        raise _huber_snr_error()

    def timestep_range(self) -> tuple[int, int]:
        return 0, NUM_TRAIN_TIMESTEPS

    def at_timestep(self, timestep: int) -> FlowMatchingObjective:
        return FlowMatchingObjective(self.config, self.loss, pinned_timestep=timestep)
