"""Noise, timesteps and targets for diffusion training (sd-scripts semantics, pure functions).

`get_noisy_latents_and_targets` is what the training step calls; the pieces are public for tests
and for trainers that need only some of them. Every random draw takes an optional
`torch.Generator` (on the latents' device), so a step can be reproducible without touching the
global RNG. The training step passes one generator per sample: each sample's noise, offsets,
multires levels, timestep and input perturbation are then drawn from its own generator alone, so
they do not depend on which batch (or process) the sample is in.

The training noise scheduler is sd-scripts' DDPMScheduler (scaled_linear 0.00085..0.012, 1000
steps). Its SNR table (`all_snr`) is computed before `--zero_terminal_snr` rescales the betas,
exactly as sd-scripts orders it, so the min-SNR / debiased weights keep their usual values (and
never divide by the zero SNR of the last step); only the noising itself uses the rescaled schedule.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, NamedTuple

import torch
import torch.nn.functional as F

from backend.messages import msg

if TYPE_CHECKING:  # diffusers is imported where a scheduler is built: preflight validates a NoiseConfig without it
    from diffusers import DDPMScheduler

# One generator for the batch, one per sample (drawn sample by sample, then concatenated), or the global RNG.
Generators = torch.Generator | Sequence[torch.Generator] | None

NUM_TRAIN_TIMESTEPS = 1000
BETA_START = 0.00085
BETA_END = 0.012


@dataclass(frozen=True)
class NoiseConfig:
    noise_offset: float | None = None
    noise_offset_random_strength: bool = False
    adaptive_noise_scale: float | None = None
    multires_noise_iterations: int | None = None
    multires_noise_discount: float = 0.3
    ip_noise_gamma: float | None = None
    ip_noise_gamma_random_strength: bool = False
    min_timestep: int | None = None
    max_timestep: int | None = None
    v_parameterization: bool = False

    @classmethod
    def from_args(cls, args: Any) -> NoiseConfig:
        return cls(**{name: getattr(args, name) for name in cls.__dataclass_fields__})

    def validate(self, num_train_timesteps: int = NUM_TRAIN_TIMESTEPS) -> None:
        if self.adaptive_noise_scale is not None and self.noise_offset is None:
            raise ValueError(msg("preflight.noise.adaptive_needs_offset", "adaptive_noise_scale requires "
                                 "noise_offset"))
        low, high = self.timestep_range(num_train_timesteps)
        if not 0 <= low <= high <= num_train_timesteps:
            raise ValueError(msg("preflight.noise.timestep_range", "need 0 <= min_timestep ({low}) <= max_timestep "
                                 "({high}) <= {total}", low=low, high=high, total=num_train_timesteps))
        if low == high == num_train_timesteps:
            raise ValueError(msg("preflight.noise.timestep_at_end", "min_timestep = max_timestep must be below "
                                 "{total}", total=num_train_timesteps))

    def timestep_range(self, num_train_timesteps: int) -> tuple[int, int]:
        low = 0 if self.min_timestep is None else self.min_timestep
        high = num_train_timesteps if self.max_timestep is None else self.max_timestep
        return low, high


def create_noise_scheduler(zero_terminal_snr: bool = False) -> DDPMScheduler:
    """The training scheduler sd-scripts uses for SD 1.x/2.x/SDXL, with `all_snr` attached."""
    from diffusers import DDPMScheduler

    scheduler = DDPMScheduler(
        beta_start=BETA_START,
        beta_end=BETA_END,
        beta_schedule="scaled_linear",
        num_train_timesteps=NUM_TRAIN_TIMESTEPS,
        clip_sample=False,
    )
    scheduler.all_snr = snr_table(scheduler.alphas_cumprod)
    if zero_terminal_snr:
        apply_zero_terminal_snr(scheduler)
    return scheduler


def snr_table(alphas_cumprod: torch.Tensor) -> torch.Tensor:
    """SNR(t) = alpha_bar / (1 - alpha_bar) for every training timestep."""
    return alphas_cumprod / (1.0 - alphas_cumprod)


def apply_zero_terminal_snr(scheduler: DDPMScheduler) -> None:
    """Rescale the betas so the last timestep has SNR 0 (https://arxiv.org/abs/2305.08891, Alg. 1).

    Sets `betas`, `alphas` and `alphas_cumprod` in place; `alphas_cumprod[-1]` becomes exactly 0.
    """
    sqrt_bar = scheduler.alphas_cumprod.sqrt()
    first, last = sqrt_bar[0].clone(), sqrt_bar[-1].clone()
    sqrt_bar = (sqrt_bar - last) * (first / (first - last))  # shift last to 0, keep the first value
    alphas_bar = sqrt_bar**2
    alphas = torch.cat([alphas_bar[:1], alphas_bar[1:] / alphas_bar[:-1]])
    scheduler.betas = 1.0 - alphas
    scheduler.alphas = alphas
    scheduler.alphas_cumprod = torch.cumprod(alphas, dim=0)


def _rand_scalar(device: torch.device, generator: torch.Generator | None) -> torch.Tensor:
    return torch.rand(1, device=device, generator=generator)


def apply_noise_offset(
    latents: torch.Tensor,
    noise: torch.Tensor,
    offset: float | torch.Tensor,
    adaptive_noise_scale: float | None = None,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Add a random per-sample, per-channel constant (https://www.crosslabs.org/blog/diffusion-with-offset-noise).

    With `adaptive_noise_scale`, the offset grows by that factor times |mean| of each latent channel
    (clamped at 0 so a negative scale cannot flip it).
    """
    if adaptive_noise_scale is not None:
        latent_mean = latents.mean(dim=(2, 3), keepdim=True).abs()
        offset = torch.clamp(offset + adaptive_noise_scale * latent_mean, min=0.0)
    shift = torch.randn(
        (latents.shape[0], latents.shape[1], 1, 1),
        device=latents.device,
        dtype=noise.dtype,
        generator=generator,
    )
    return noise + offset * shift


def pyramid_noise_like(
    noise: torch.Tensor, iterations: int, discount: float = 0.3, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Multi-resolution noise: add upsampled low-resolution noise, weight discount**i, renormalise to unit std.

    Each level shrinks by a random factor in [2, 4) (as sd-scripts), down to 1x1 at most. The std is
    that of `noise` as given: the batch's in sd-scripts, one sample's when the loop draws per sample.
    """
    b, c, h, w = noise.shape
    out = noise.clone()
    # Shrink factors drawn on the host (the shapes must be known there, and a draw on the GPU would
    # stall it once per step): from a Python RNG seeded by the generator's seed, else the global one.
    rng = random.Random(generator.initial_seed()) if generator is not None else random
    factors = [rng.random() * 2 + 2 for _ in range(iterations)]
    for i, r in enumerate(factors):
        hn, wn = max(1, int(h / r**i)), max(1, int(w / r**i))
        low = torch.randn((b, c, hn, wn), device=noise.device, dtype=noise.dtype, generator=generator)
        out = out + F.interpolate(low, size=(h, w), mode="bilinear") * discount**i
        if hn == 1 or wn == 1:
            break
    return out / out.std()


def sample_timesteps(
    batch_size: int,
    low: int,
    high: int,
    device: torch.device | str = "cpu",
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Uniform integer timesteps in [low, high); all equal to `high` when low >= high (sd-scripts)."""
    gen_device = generator.device if generator is not None else torch.device("cpu")
    if low < high:
        timesteps = torch.randint(low, high, (batch_size,), device=gen_device, generator=generator)
    else:
        timesteps = torch.full((batch_size,), high, device=gen_device)
    return timesteps.long().to(device)


def make_noise(
    latents: torch.Tensor, config: NoiseConfig, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Gaussian noise shaped like `latents`, with noise offset and multires noise as configured."""
    noise = torch.randn(latents.shape, device=latents.device, dtype=latents.dtype, generator=generator)
    if config.noise_offset:
        offset: float | torch.Tensor = config.noise_offset
        if config.noise_offset_random_strength:
            offset = _rand_scalar(latents.device, generator) * config.noise_offset
        noise = apply_noise_offset(latents, noise, offset, config.adaptive_noise_scale, generator)
    if config.multires_noise_iterations:
        noise = pyramid_noise_like(
            noise, config.multires_noise_iterations, config.multires_noise_discount, generator
        )
    return noise


class NoisyBatch(NamedTuple):
    noisy_latents: torch.Tensor
    timesteps: torch.Tensor
    noise: torch.Tensor  # the noise the model must predict (without input perturbation)
    target: torch.Tensor  # noise, or the velocity for v-parameterization


def _draw(
    latents: torch.Tensor, config: NoiseConfig, low: int, high: int, generator: torch.Generator | None
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(noise, timesteps, the noise the model sees) for `latents`, all from `generator`, in a fixed order."""
    noise = make_noise(latents, config, generator)
    timesteps = sample_timesteps(latents.shape[0], low, high, latents.device, generator)
    model_noise = noise
    if config.ip_noise_gamma:
        strength: float | torch.Tensor = config.ip_noise_gamma
        if config.ip_noise_gamma_random_strength:
            strength = _rand_scalar(latents.device, generator) * config.ip_noise_gamma
        perturbation = torch.randn(
            latents.shape, device=latents.device, dtype=latents.dtype, generator=generator
        )
        model_noise = noise + strength * perturbation
    return noise, timesteps, model_noise


def get_noisy_latents_and_targets(
    latents: torch.Tensor,
    noise_scheduler: DDPMScheduler,
    config: NoiseConfig,
    generator: Generators = None,
) -> NoisyBatch:
    """Draw noise and timesteps, noise the latents (forward diffusion) and compute the training target.

    Input-perturbation noise (`ip_noise_gamma`, https://arxiv.org/abs/2301.11706) perturbs only
    what goes into the model; the target stays the unperturbed noise.

    With a sequence of generators (one per sample), every draw is made per sample: the random
    strengths of noise_offset and ip_noise_gamma, sd-scripts' one value per batch, are then one per
    sample, and multires noise is normalised per sample.
    """
    low, high = config.timestep_range(noise_scheduler.config.num_train_timesteps)
    if isinstance(generator, Sequence):
        if len(generator) != latents.shape[0]:
            raise ValueError(f"{len(generator)} generators for a batch of {latents.shape[0]}")
        draws = [_draw(latents[i : i + 1], config, low, high, g) for i, g in enumerate(generator)]
        noise, timesteps, model_noise = (torch.cat(parts) for parts in zip(*draws, strict=True))
    else:
        noise, timesteps, model_noise = _draw(latents, config, low, high, generator)
    noisy_latents = noise_scheduler.add_noise(latents, model_noise, timesteps)

    target = noise_scheduler.get_velocity(latents, noise, timesteps) if config.v_parameterization else noise
    return NoisyBatch(noisy_latents, timesteps, noise, target)
