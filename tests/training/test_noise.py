from __future__ import annotations

import random as python_rng
from argparse import Namespace

import pytest
import torch

from backend.objectives.noise import (
    NoiseConfig,
    apply_noise_offset,
    create_noise_scheduler,
    get_noisy_latents_and_targets,
    make_noise,
    pyramid_noise_like,
    sample_timesteps,
)


def _channel_mean_spread(noise: torch.Tensor) -> float:
    return noise.mean(dim=(2, 3)).std().item()


def test_scheduler_matches_sd_scripts(noise_scheduler) -> None:
    betas = torch.linspace(0.00085**0.5, 0.012**0.5, 1000, dtype=torch.float64) ** 2
    alphas_cumprod = torch.cumprod(1 - betas, 0)
    assert torch.allclose(noise_scheduler.alphas_cumprod.double(), alphas_cumprod, rtol=1e-5)
    snr = alphas_cumprod / (1 - alphas_cumprod)
    assert torch.allclose(noise_scheduler.all_snr.double(), snr, rtol=1e-4)


def test_zero_terminal_snr() -> None:
    plain = create_noise_scheduler()
    zero = create_noise_scheduler(zero_terminal_snr=True)
    assert zero.alphas_cumprod[-1].item() == 0.0
    assert plain.alphas_cumprod[-1].item() > 0
    assert zero.alphas_cumprod[0].item() == pytest.approx(plain.alphas_cumprod[0].item(), rel=1e-5)
    assert torch.all(zero.alphas_cumprod[1:] <= zero.alphas_cumprod[:-1])
    assert torch.allclose(zero.alphas_cumprod, torch.cumprod(zero.alphas, 0))
    # the SNR table keeps the original schedule (sd-scripts computes it before the rescale)
    assert torch.equal(zero.all_snr, plain.all_snr)
    # the last timestep is pure noise
    latents = torch.ones(1, 4, 8, 8)
    noise = torch.randn(1, 4, 8, 8)
    assert torch.allclose(zero.add_noise(latents, noise, torch.tensor([999])), noise, atol=1e-6)


def test_noise_offset_shifts_channel_means(generator: torch.Generator) -> None:
    latents = torch.zeros(16, 4, 16, 16)
    plain = make_noise(latents, NoiseConfig(), generator)
    offset = make_noise(latents, NoiseConfig(noise_offset=1.0), generator)
    assert plain.shape == offset.shape == latents.shape
    assert _channel_mean_spread(plain) < 0.2
    assert _channel_mean_spread(offset) > 0.5


def test_adaptive_noise_scale_formula() -> None:
    latents = torch.full((2, 4, 4, 4), -2.0)
    noise = torch.zeros(2, 4, 4, 4)
    out = apply_noise_offset(latents, noise, 0.1, 0.5, torch.Generator().manual_seed(0))
    shift = torch.randn((2, 4, 1, 1), generator=torch.Generator().manual_seed(0))
    assert torch.allclose(out, (0.1 + 0.5 * 2.0) * shift.expand(2, 4, 4, 4))
    # a negative adaptive scale cannot make the offset negative
    clamped = apply_noise_offset(latents, noise, 0.1, -1.0, torch.Generator().manual_seed(0))
    assert torch.count_nonzero(clamped) == 0


def test_noise_offset_random_strength_is_at_most_the_offset(generator: torch.Generator) -> None:
    latents = torch.zeros(16, 4, 16, 16)
    full = make_noise(latents, NoiseConfig(noise_offset=1.0), torch.Generator().manual_seed(3))
    random = make_noise(latents, NoiseConfig(noise_offset=1.0, noise_offset_random_strength=True), generator)
    assert _channel_mean_spread(random) < _channel_mean_spread(full) * 1.5


def test_multires_noise(generator: torch.Generator) -> None:
    noise = torch.randn(2, 4, 32, 32, generator=generator)
    python_rng.seed(5)  # the shrink factors: Python's RNG, which the loop reseeds per batch
    pyramid = pyramid_noise_like(
        noise, iterations=6, discount=0.3, generator=torch.Generator().manual_seed(1)
    )
    python_rng.seed(5)
    again = pyramid_noise_like(noise, iterations=6, discount=0.3, generator=torch.Generator().manual_seed(1))
    assert pyramid.shape == noise.shape
    assert torch.equal(pyramid, again)  # reproducible with a generator and a seeded Python RNG
    assert not torch.allclose(pyramid, noise)
    assert pyramid.std().item() == pytest.approx(1.0, abs=1e-5)
    assert noise.std().item() != pytest.approx(
        1.0, abs=1e-5
    )  # the input was not modified in place to unit std

    # low-frequency content (clear with a high discount): neighbouring pixels correlate, unlike white noise
    def neighbour_corr(x: torch.Tensor) -> float:
        a, b = x[..., :, :-1].flatten(), x[..., :, 1:].flatten()
        return torch.corrcoef(torch.stack([a, b]))[0, 1].item()

    strong = pyramid_noise_like(noise, iterations=6, discount=0.9, generator=torch.Generator().manual_seed(1))
    assert neighbour_corr(strong) > neighbour_corr(noise) + 0.2


def test_sample_timesteps(generator: torch.Generator) -> None:
    t = sample_timesteps(256, 100, 200, generator=generator)
    assert t.dtype == torch.long and t.min() >= 100 and t.max() < 200
    assert torch.equal(sample_timesteps(3, 500, 500), torch.tensor([500, 500, 500]))


def test_noisy_latents_and_targets(noise_scheduler) -> None:
    latents = torch.randn(4, 4, 8, 8, generator=torch.Generator().manual_seed(0))
    config = NoiseConfig(min_timestep=10, max_timestep=20)
    batch = get_noisy_latents_and_targets(latents, noise_scheduler, config, torch.Generator().manual_seed(5))
    assert batch.timesteps.min() >= 10 and batch.timesteps.max() < 20
    assert torch.equal(batch.target, batch.noise)
    assert torch.allclose(
        batch.noisy_latents, noise_scheduler.add_noise(latents, batch.noise, batch.timesteps)
    )
    again = get_noisy_latents_and_targets(latents, noise_scheduler, config, torch.Generator().manual_seed(5))
    assert torch.equal(again.noisy_latents, batch.noisy_latents)

    v_batch = get_noisy_latents_and_targets(
        latents, noise_scheduler, NoiseConfig(v_parameterization=True), torch.Generator().manual_seed(5)
    )
    expected_v = noise_scheduler.get_velocity(latents, v_batch.noise, v_batch.timesteps)
    assert torch.allclose(v_batch.target, expected_v)


def test_input_perturbation_changes_input_not_target(noise_scheduler) -> None:
    latents = torch.randn(4, 4, 8, 8)
    config = NoiseConfig(ip_noise_gamma=0.1)
    batch = get_noisy_latents_and_targets(latents, noise_scheduler, config, torch.Generator().manual_seed(5))
    clean = noise_scheduler.add_noise(latents, batch.noise, batch.timesteps)
    assert torch.equal(batch.target, batch.noise)
    assert not torch.allclose(batch.noisy_latents, clean)


def test_noise_config_validation_and_from_args() -> None:
    with pytest.raises(ValueError, match="requires noise_offset"):
        NoiseConfig(adaptive_noise_scale=0.01).validate()
    with pytest.raises(ValueError, match="min_timestep"):
        NoiseConfig(min_timestep=500, max_timestep=100).validate()
    with pytest.raises(ValueError, match="below 1000"):
        NoiseConfig(min_timestep=1000, max_timestep=1000).validate()
    NoiseConfig(min_timestep=999, max_timestep=999).validate()
    fields = {name: None for name in NoiseConfig.__dataclass_fields__}
    args = Namespace(**{**fields, "noise_offset_random_strength": False, "ip_noise_gamma_random_strength": False,
                        "multires_noise_discount": 0.3, "v_parameterization": False, "noise_offset": 0.05, "other": 1})  # fmt: skip
    assert NoiseConfig.from_args(args).noise_offset == 0.05
