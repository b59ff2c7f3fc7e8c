"""A sample's random draws in the training step (VAE posterior sample, noise and its options, timestep)
come from its own generator, so they do not depend on the batch, or the process, that holds it."""

from __future__ import annotations

import random
from types import SimpleNamespace

import torch

from backend.families.loaded import get_spec
from backend.models.loading import load_components
from backend.objectives.noise import NoiseConfig, NoisyBatch, get_noisy_latents_and_targets
from backend.training.step import sample_generators, seed_step_random

SPLITS = [(0, 2), (2, 3), (3, 5)]  # one process's batch of 5, as three processes' shares


def run_on(process_index: int, seed: int = 7) -> SimpleNamespace:
    """What sample_generators reads of a run: the seed, and the process it runs on."""
    accelerator = SimpleNamespace(device=torch.device("cpu"), process_index=process_index)
    return SimpleNamespace(seed=seed, accelerator=accelerator)


def test_noise_timesteps_and_their_options_do_not_depend_on_the_batch_split(noise_scheduler) -> None:
    config = NoiseConfig(
        noise_offset=0.1, noise_offset_random_strength=True, adaptive_noise_scale=0.01, multires_noise_iterations=3,
        ip_noise_gamma=0.1, ip_noise_gamma_random_strength=True, min_timestep=100, max_timestep=900,
        v_parameterization=True,
    )
    latents = torch.randn(5, 4, 16, 16, generator=torch.Generator().manual_seed(0))
    python_state = random.getstate()
    whole = get_noisy_latents_and_targets(latents, noise_scheduler, config, sample_generators(run_on(0), 2, range(5)))
    parts = [
        get_noisy_latents_and_targets(latents[a:b], noise_scheduler, config, sample_generators(run_on(rank), 2, range(a, b)))
        for rank, (a, b) in enumerate(SPLITS)
    ]
    for field in NoisyBatch._fields:
        assert torch.equal(getattr(whole, field), torch.cat([getattr(part, field) for part in parts])), field
    assert random.getstate() == python_state, "multires levels come from the sample's seed, not the global RNG"
    assert len(set(whole.timesteps.tolist())) > 1 and not torch.equal(whole.noise[0], whole.noise[1])
    other_epoch = get_noisy_latents_and_targets(latents, noise_scheduler, config, sample_generators(run_on(0), 3, range(5)))
    assert not torch.equal(other_epoch.noise, whole.noise)


def test_vae_posterior_sample_does_not_depend_on_the_batch_split(tiny) -> None:
    components = load_components(tiny.get("sd15").path)
    spec = get_spec(components.family)
    images = torch.rand(5, 3, 32, 32, generator=torch.Generator().manual_seed(1)) * 2 - 1
    with torch.no_grad():
        whole = spec.encode_images(components.vae, images, sample_generators(run_on(0), 1, range(5)))
        parts = [spec.encode_images(components.vae, images[a:b], sample_generators(run_on(1), 1, range(a, b)))
                 for a, b in SPLITS]
        mean = components.vae.encode(images).latent_dist.mean * components.vae.config.scaling_factor
    torch.testing.assert_close(torch.cat(parts), whole, rtol=1e-5, atol=1e-5)
    assert (whole - mean).abs().mean() > 1e-3, "a sample, not the posterior mean"


def test_per_step_choices_are_the_same_on_every_process() -> None:
    draws = []
    for process in (0, 1):
        seed_step_random(run_on(process), epoch=2, batch_index=5)
        draws.append(random.random())
    seed_step_random(run_on(0), epoch=2, batch_index=6)
    assert draws[0] == draws[1] != random.random()
