"""SD 3.5's specification and family on the tiny model: prompts encoded as diffusers' StableDiffusion3Pipeline
encodes them (CLIP-L+G penultimate states padded to T5's width, then T5; both pooled projections), the
cache file round trip, and SD3's flow-matching objective (weighting density, --training_shift, integer
timesteps, preconditioned prediction against the latents)."""

from __future__ import annotations

import pytest
import torch

from backend.families.loaded import family, family_of_modules
from backend.families.sd3.family import Sd3FlowMatching, Sd3ObjectiveOptions
from backend.families.sd3.spec import Sd3Spec, Sd3TextOptions
from backend.objectives.flow_matching import FlowMatchingConfig
from backend.objectives.loss import LossConfig
from tests.tiny_models import TinyModels


def _components(tiny: TinyModels):
    model = tiny.get("sd3-medium", single_file=True)
    return family("sd3_medium").spec.load(model.path, tokenizer_cache_dir=model.tokenizer_cache_dir)


def test_prompts_are_encoded_as_the_sd3_pipeline_encodes_them(tiny: TinyModels) -> None:
    components = _components(tiny)
    spec = Sd3Spec().configured(Sd3TextOptions(16, False, False), components)
    prompts = ["a photo of a cat", "a dog"]
    with torch.no_grad():
        ours = spec.encode_prompts(components.text_encoders, spec.tokenize(components.tokenizers, prompts))
        pipeline = spec.pipeline(components)
        embeds, _, pooled, _ = pipeline.encode_prompt(prompts, prompts, prompts, do_classifier_free_guidance=False,
                                                      max_sequence_length=16)
    assert ours.hidden_states.shape == (2, 77 + 16, 64) and ours.pooled.shape == (2, 64)
    torch.testing.assert_close(ours.hidden_states, embeds)
    torch.testing.assert_close(ours.pooled, pooled)
    assert family_of_modules(components.unet, 3) is family("sd3_medium")


def test_the_text_cache_keeps_sd_scripts_arrays_and_gives_the_embeds_back(tiny: TinyModels) -> None:
    components = _components(tiny)
    spec = Sd3Spec().configured(Sd3TextOptions(None, True, False), components)
    assert spec.t5_length == 256 and spec.lg_mask
    with torch.no_grad():
        embeds = spec.encode_prompts(components.text_encoders, spec.tokenize(components.tokenizers, ["a cat"]))
    cache = spec.text_cache_file(components)
    assert cache.suffix == "_sd3_te.npz"
    one = type(embeds)(embeds.hidden_states[0], embeds.pooled[0])
    arrays = cache.to_arrays(one)
    assert arrays["lg_out"].shape == (77, 64) and arrays["t5_out"].shape == (256, 64)
    back = cache.from_arrays(arrays, torch.float32)
    assert torch.equal(back.hidden_states, one.hidden_states) and torch.equal(back.pooled, one.pooled)


def test_sd3_objective_draws_shifted_integer_timesteps_and_preconditions() -> None:
    loss = LossConfig()
    flow = FlowMatchingConfig(model_prediction_type="sigma_scaled", weighting_scheme="logit_normal")
    plain, shifted = Sd3FlowMatching(flow, loss, 1.0), Sd3FlowMatching(flow, loss, 3.0)
    latents = torch.zeros(4096, 1, 1, 1)
    noisy = plain.noisy_input(latents, torch.Generator().manual_seed(0))
    high = shifted.noisy_input(latents, torch.Generator().manual_seed(0))
    assert torch.equal(noisy.timesteps, noisy.timesteps.floor()) and noisy.timesteps.max() < 1000
    assert high.timesteps.mean() > noisy.timesteps.mean() + 100  # shift 3 trains more at high noise
    assert torch.equal(noisy.target, latents)  # sigma_scaled: measured against the latents
    prediction = plain.measure(torch.ones_like(latents), noisy)
    sigmas = noisy.timesteps.view(-1, 1, 1, 1) / 1000
    torch.testing.assert_close(prediction.prediction, -sigmas + noisy.model_input)
    pinned = plain.at_timestep(250).noisy_input(latents, torch.Generator().manual_seed(0))
    assert torch.all(pinned.timesteps == 250)


def test_objective_options_come_from_sd3_flags() -> None:
    from backend.options import parse_args

    args = parse_args("sd3_train_network", ["--pretrained_model_name_or_path", "/m.safetensors", "--train_data_dir",
                                            "/d", "--output_dir", "/o", "--weighting_scheme", "sigma_sqrt",
                                            "--training_shift", "3.0"])
    options = Sd3ObjectiveOptions.from_args(args)
    assert options.training_shift == 3.0 and options.flow.weighting_scheme == "sigma_sqrt"
    objective = family("sd3_large").objective(None, options, LossConfig())
    assert isinstance(objective, Sd3FlowMatching)
    weights = objective.weights(torch.tensor([500.0]))
    assert weights is not None and torch.allclose(weights, torch.tensor([4.0]))


def test_timestep_bounds_are_sd3s_own() -> None:
    """sd3_train_utils draws t in [min_timestep, max_timestep); validation spaces its timesteps inside them."""
    from backend.options import parse_args
    from backend.options.schema import all_options

    args = parse_args("sd3_train_network", ["--pretrained_model_name_or_path", "/m.safetensors", "--train_data_dir",
                                            "/d", "--output_dir", "/o", "--min_timestep", "200", "--max_timestep",
                                            "400"])
    options = Sd3ObjectiveOptions.from_args(args)
    objective = family("sd3_medium").objective(None, options, LossConfig())
    assert objective.timestep_range() == (200, 400)
    drawn = objective.noisy_input(torch.zeros(512, 1, 1, 1), torch.Generator().manual_seed(0)).timesteps
    assert drawn.min() >= 200 and drawn.max() < 400
    assert objective.at_timestep(300).timestep_range() == (200, 400)
    bad = Sd3ObjectiveOptions(options.flow, 1.0, 500, 400)
    with pytest.raises(ValueError, match=r"need 0 <= min_timestep \(500\) < max_timestep \(400\)"):
        bad.validate(LossConfig())
    assert "flux_train_network" in all_options()["min_timestep"].ignored_on  # sd-scripts' Flux sampler ignores it
