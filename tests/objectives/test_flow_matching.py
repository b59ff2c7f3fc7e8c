"""The flow-matching objective (backend/objectives/flow_matching.py): tensors only, no model."""

from __future__ import annotations

import dataclasses
import math
from types import SimpleNamespace

import pytest
import torch

from backend.objectives.base import NoisyInput
from backend.objectives.flow_matching import (
    MODE_SCALE_RANGE,
    TIMESTEP_SAMPLINGS,
    FlowMatchingConfig,
    FlowMatchingObjective,
    flux_shift_mu,
    sample_sigmas,
    scheduler_sigmas,
    time_shift,
)
from backend.objectives.loss import LossConfig, prediction_loss

L2 = LossConfig()


def _objective(**options: object) -> FlowMatchingObjective:
    loss = options.pop("loss", L2)
    return FlowMatchingObjective(FlowMatchingConfig(**options), loss)  # type: ignore[arg-type]


def _latents(batch: int = 3, size: int = 8) -> torch.Tensor:
    return torch.randn(batch, 4, size, size, generator=torch.Generator().manual_seed(1))


def _generators(seeds: list[int]) -> list[torch.Generator]:
    return [torch.Generator().manual_seed(s) for s in seeds]


@pytest.mark.parametrize("sampling", TIMESTEP_SAMPLINGS)
@pytest.mark.parametrize("weighting", ["uniform", "logit_normal", "mode"])
def test_every_sampling_gives_one_time_per_sample_in_range(sampling: str, weighting: str) -> None:
    objective = _objective(timestep_sampling=sampling, weighting_scheme=weighting)
    latents = _latents(batch=256)
    noisy = objective.noisy_input(latents, torch.Generator().manual_seed(0))
    assert noisy.model_input.shape == noisy.target.shape == latents.shape
    assert noisy.timesteps.shape == (256,)
    assert noisy.timesteps.dtype == torch.float32
    assert noisy.timesteps.min() >= 0 and noisy.timesteps.max() <= 1000
    assert noisy.timesteps.unique().numel() > 100  # drawn, not constant


def test_uniform_and_sigmoid_spread_as_drawn() -> None:
    gen = torch.Generator().manual_seed(0)
    uniform = sample_sigmas(FlowMatchingConfig(timestep_sampling="uniform"), 20000, 8, 8, torch.device("cpu"), gen)
    assert abs(uniform.mean().item() - 0.5) < 0.01 and abs(uniform.var().item() - 1 / 12) < 0.005
    narrow = FlowMatchingConfig(timestep_sampling="sigmoid", sigmoid_scale=0.1)
    wide = FlowMatchingConfig(timestep_sampling="sigmoid", sigmoid_scale=5.0)
    assert sample_sigmas(narrow, 5000, 8, 8, torch.device("cpu"), gen).std() < 0.05
    assert sample_sigmas(wide, 5000, 8, 8, torch.device("cpu"), gen).std() > 0.3


def test_shift_is_the_discrete_flow_shift_of_a_sigmoid_normal() -> None:
    config = FlowMatchingConfig(timestep_sampling="shift", discrete_flow_shift=3.0, sigmoid_scale=1.5)
    sigmas = sample_sigmas(config, 4, 8, 8, torch.device("cpu"), torch.Generator().manual_seed(7))
    z = torch.randn(4, generator=torch.Generator().manual_seed(7))
    for sigma, normal in zip(sigmas.tolist(), z.tolist(), strict=True):
        s = 1 / (1 + math.exp(-1.5 * normal))
        assert sigma == pytest.approx(3 * s / (1 + 2 * s), rel=1e-6)


def test_sigma_sampling_picks_from_the_shifted_scheduler_table() -> None:
    table = scheduler_sigmas(3.0)
    assert table.shape == (1000,)
    assert table[0].item() == pytest.approx(1.0) and table[-1].item() == pytest.approx(3e-3 / (1 + 2e-3))
    config = FlowMatchingConfig(timestep_sampling="sigma", discrete_flow_shift=3.0)
    sigmas = sample_sigmas(config, 500, 8, 8, torch.device("cpu"), torch.Generator().manual_seed(3))
    assert torch.isin(sigmas, table).all()
    u = torch.rand(500, generator=torch.Generator().manual_seed(3))
    torch.testing.assert_close(sigmas, table[(u * 1000).long()])


def test_flux_shift_depends_on_the_latent_size() -> None:
    # mu on the line through (256, 0.5) and (4096, 1.15), at the packed token count (h/2)(w/2).
    assert flux_shift_mu(32, 32) == pytest.approx(0.5)
    assert flux_shift_mu(128, 128) == pytest.approx(1.15)
    assert flux_shift_mu(64, 64) == pytest.approx(0.5 + 0.65 * (1024 - 256) / 3840)
    t = torch.tensor([0.25, 0.5, 0.75])
    mu = flux_shift_mu(128, 128)
    expected = [math.exp(mu) / (math.exp(mu) + 1 / v - 1) for v in t.tolist()]
    torch.testing.assert_close(time_shift(mu, 1.0, t), torch.tensor(expected))
    config = FlowMatchingConfig(timestep_sampling="flux_shift")
    small = sample_sigmas(config, 2000, 32, 32, torch.device("cpu"), torch.Generator().manual_seed(0))
    large = sample_sigmas(config, 2000, 128, 128, torch.device("cpu"), torch.Generator().manual_seed(0))
    assert (large > small).all()  # the same draws, shifted further toward noise for a larger image


def test_noisy_input_and_target_algebra() -> None:
    latents = _latents()
    raw = _objective(model_prediction_type="raw", timestep_sampling="uniform")
    noisy = raw.noisy_input(latents, torch.Generator().manual_seed(5))
    noise = torch.randn(latents.shape, generator=torch.Generator().manual_seed(5))
    s = (noisy.timesteps / 1000).view(-1, 1, 1, 1)
    torch.testing.assert_close(noisy.model_input, (1 - s) * latents + s * noise)
    torch.testing.assert_close(noisy.target, noise - latents)
    # The velocity is exactly what raw measures; additive adds the noisy input back.
    assert raw.measure(noise - latents, noisy).prediction.equal(noise - latents)
    additive = _objective(model_prediction_type="additive")
    torch.testing.assert_close(additive.measure(noise, noisy).prediction, noise + noisy.model_input)


def test_sigma_scaled_turns_the_velocity_into_the_latents_with_sd3_weights() -> None:
    latents = _latents()
    objective = _objective(model_prediction_type="sigma_scaled", timestep_sampling="uniform",
                           weighting_scheme="sigma_sqrt")
    noisy = objective.noisy_input(latents, torch.Generator().manual_seed(5))
    noise = torch.randn(latents.shape, generator=torch.Generator().manual_seed(5))
    assert noisy.target.equal(latents)
    measured = objective.measure(noise - latents, noisy)  # a perfect velocity prediction
    torch.testing.assert_close(measured.prediction, latents, atol=1e-5, rtol=1e-5)
    sigmas = noisy.timesteps / 1000
    torch.testing.assert_close(measured.weights, sigmas**-2)
    cosmap = _objective(weighting_scheme="cosmap").weights(noisy.timesteps)
    torch.testing.assert_close(cosmap, 2 / (math.pi * (1 - 2 * sigmas + 2 * sigmas**2)))
    # The weighting belongs to sigma_scaled (sd-scripts' apply_model_prediction_type) and to two schemes.
    assert _objective(model_prediction_type="raw", weighting_scheme="sigma_sqrt").weights(noisy.timesteps) is None
    assert _objective(weighting_scheme="logit_normal").weights(noisy.timesteps) is None


def test_ip_noise_gamma_perturbs_only_the_input() -> None:
    latents = _latents()
    plain = _objective(model_prediction_type="raw").noisy_input(latents, torch.Generator().manual_seed(2))
    perturbed = _objective(model_prediction_type="raw", ip_noise_gamma=0.5).noisy_input(
        latents, torch.Generator().manual_seed(2))
    assert perturbed.target.equal(plain.target) and perturbed.timesteps.equal(plain.timesteps)
    assert not perturbed.model_input.equal(plain.model_input)


@pytest.mark.parametrize("options", [{}, {"ip_noise_gamma": 0.1, "ip_noise_gamma_random_strength": True},
                                     {"timestep_sampling": "flux_shift"}])
def test_a_sample_draws_from_its_own_generator_only(options: dict) -> None:
    objective = _objective(**options)
    latents = _latents(batch=3)
    full = objective.noisy_input(latents, _generators([10, 11, 12]))
    alone = objective.noisy_input(latents[1:2], _generators([11]))
    other_batch = objective.noisy_input(torch.cat([latents[1:2], latents[0:1]]), _generators([11, 99]))
    for field in ("model_input", "timesteps", "target"):
        torch.testing.assert_close(getattr(full, field)[1:2], getattr(alone, field))
        torch.testing.assert_close(getattr(other_batch, field)[0:1], getattr(alone, field))
    assert full.timesteps.unique().numel() == 3
    with pytest.raises(ValueError, match="2 generators for a batch of 3"):
        objective.noisy_input(latents, _generators([1, 2]))


def test_at_timestep_pins_the_time_for_every_sample() -> None:
    objective = _objective(timestep_sampling="flux_shift")
    assert objective.timestep_range() == (0, 1000)
    pinned = objective.at_timestep(250)
    latents = _latents()
    noisy = pinned.noisy_input(latents, _generators([1, 2, 3]))
    assert noisy.timesteps.tolist() == [250.0] * 3
    noise = torch.randn(latents[:1].shape, generator=torch.Generator().manual_seed(1))
    torch.testing.assert_close(noisy.model_input[:1], 0.75 * latents[:1] + 0.25 * noise)
    assert objective.pinned_timestep is None  # the training objective is unchanged


def test_huber_threshold_follows_the_schedule_on_the_time_input() -> None:
    timesteps = torch.tensor([0.0, 500.0, 1000.0])
    exponential = LossConfig(loss_type="huber", huber_schedule="exponential", huber_c=0.1, huber_scale=2.0)
    torch.testing.assert_close(_objective(loss=exponential).huber_threshold(timesteps),
                               torch.tensor([2.0, 2.0 * 0.1**0.5, 0.2]))
    constant = LossConfig(loss_type="smooth_l1", huber_schedule="constant", huber_c=0.1, huber_scale=2.0)
    torch.testing.assert_close(_objective(loss=constant).huber_threshold(timesteps), torch.full((3,), 0.2))
    assert _objective().huber_threshold(timesteps) is None


@pytest.mark.parametrize(("options", "loss", "message"), [
    ({"timestep_sampling": "logit"}, None, "timestep_sampling must be one of sigma, uniform"),
    ({"model_prediction_type": "eps"}, None, "model_prediction_type must be one of raw"),
    ({"weighting_scheme": "snr"}, None, "weighting_scheme must be one of"),
    ({"discrete_flow_shift": 0.0}, None, "discrete_flow_shift must be positive"),
    ({"logit_std": -1.0}, None, "logit_std must not be negative"),
    ({"weighting_scheme": "mode", "mode_scale": 2.0}, None, "mode_scale must be between -1 and 1.7519"),
    ({}, LossConfig(loss_type="huber", huber_schedule="snr"), "huber_schedule snr needs a DDPM"),
    ({}, LossConfig(v_parameterization=True), "v_parameterization is a DDPM option"),
])
def test_validate_names_the_option(options: dict, loss: LossConfig | None, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        FlowMatchingConfig(**options).validate(loss)


def test_snr_weightings_are_ignored_not_refused() -> None:
    """sd-scripts' Flux scripts accept them and do nothing; the parser warns (options/value_warnings)."""
    FlowMatchingConfig().validate(LossConfig(min_snr_gamma=5.0, debiased_estimation_loss=True))


def test_defaults_validate_and_mode_sampling_stays_in_range_at_its_limits() -> None:
    FlowMatchingConfig().validate(L2)
    for scale in MODE_SCALE_RANGE:
        config = FlowMatchingConfig(weighting_scheme="mode", mode_scale=scale)
        config.validate()
        sigmas = sample_sigmas(config, 5000, 8, 8, torch.device("cpu"), torch.Generator().manual_seed(0))
        assert sigmas.min() > 0 and sigmas.max() <= 1


def test_from_args_reads_the_sd_scripts_option_names() -> None:
    fields = [f.name for f in dataclasses.fields(FlowMatchingConfig)]
    args = SimpleNamespace(**{name: getattr(FlowMatchingConfig(), name) for name in fields}, unrelated=1)
    args.timestep_sampling, args.discrete_flow_shift = "shift", 3.1582
    config = FlowMatchingConfig.from_args(args)
    assert config.timestep_sampling == "shift" and config.discrete_flow_shift == 3.1582


def test_a_prediction_goes_through_the_shared_loss() -> None:
    objective = _objective(weighting_scheme="sigma_sqrt")
    latents = _latents()
    noisy = objective.noisy_input(latents, torch.Generator().manual_seed(4))
    prediction = torch.zeros_like(latents)
    measured = objective.measure(prediction, noisy)
    loss = prediction_loss(measured, objective.loss_type)
    sigmas = noisy.timesteps / 1000
    per_sample = ((noisy.model_input - latents) ** 2).mean(dim=(1, 2, 3)) * sigmas**-2
    torch.testing.assert_close(loss, per_sample.mean())
    huber = _objective(loss=LossConfig(loss_type="huber", huber_schedule="constant"))
    assert prediction_loss(huber.measure(prediction, noisy), "huber").isfinite()
    assert isinstance(noisy, NoisyInput)
