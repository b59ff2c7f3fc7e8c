"""Prompt encoding, latents, prediction and diffusers pipelines on every tiny family."""

from __future__ import annotations

import pytest
import torch

from backend.families.loaded import get_spec
from backend.families.sdxl.spec import make_time_ids
from backend.models.loading import load_components
from tests.tiny_models import TinyModels

PROMPTS = ["a photo of a cat", "a long prompt, " * 30]


@pytest.mark.parametrize(
    "arch, max_len, shape, pooled",
    [
        ("sd15", None, (2, 77, 32), None),
        ("sd15", 150, (2, 152, 32), None),
        ("sd2", 225, (2, 227, 32), None),
        ("sdxl", None, (2, 77, 96), (2, 32)),
        ("sdxl", 225, (2, 227, 96), (2, 32)),
    ],
)
def test_encode_prompt_shapes(
    arch: str, max_len: int | None, shape: tuple, pooled: tuple | None, tiny: TinyModels
) -> None:
    components = load_components(tiny.get(arch).path)
    spec = get_spec(components.family)
    with torch.no_grad():
        embeds = spec.encode_prompts(
            components.text_encoders, spec.tokenize(components.tokenizers, PROMPTS, max_len)
        )
    assert tuple(embeds.hidden_states.shape) == shape
    assert (None if embeds.pooled is None else tuple(embeds.pooled.shape)) == pooled


def test_single_chunk_matches_plain_encoder_and_clip_skip(tiny: TinyModels) -> None:
    components = load_components(tiny.get("sd15").path)
    spec = get_spec("sd1")
    ids = spec.tokenize(components.tokenizers, PROMPTS[:1])
    te = components.text_encoders[0]
    with torch.no_grad():
        default = spec.encode_prompts(components.text_encoders, ids).hidden_states
        skipped = spec.encode_prompts(components.text_encoders, ids, clip_skip=2).hidden_states
        assert torch.equal(default, te(ids[0][:, 0])[0])
    assert not torch.allclose(default, skipped)


def test_sdxl_rejects_clip_skip_beyond_penultimate(tiny: TinyModels) -> None:
    components = load_components(tiny.get("sdxl").path)
    spec = get_spec("sdxl")
    with pytest.raises(ValueError, match="penultimate"):
        spec.encode_prompts(
            components.text_encoders, spec.tokenize(components.tokenizers, ["x"]), clip_skip=3
        )


@pytest.mark.parametrize("arch", ["sd15", "sd2-v", "sdxl"])
def test_latents_and_prediction(arch: str, tiny: TinyModels) -> None:
    components = load_components(tiny.get(arch).path)
    spec = get_spec(components.family)
    images = torch.rand(2, 3, 64, 64) * 2 - 1
    with torch.no_grad():
        latents = spec.encode_images(components.vae, images, generator=torch.Generator().manual_seed(0))
        assert latents.shape == (2, 4, 8, 8)
        assert spec.decode_latents(components.vae, latents).shape == (2, 3, 64, 64)
        embeds = spec.encode_prompts(components.text_encoders, spec.tokenize(components.tokenizers, PROMPTS))
        time_ids = make_time_ids([(64, 64)] * 2, [(0, 0)] * 2, [(64, 64)] * 2) if arch == "sdxl" else None
        out = spec.predict(components.unet, latents, torch.tensor([10, 500]), embeds, time_ids)
    assert out.shape == latents.shape
    scheduler = components.noise_scheduler()
    assert scheduler.config.prediction_type == ("v_prediction" if arch == "sd2-v" else "epsilon")
    assert components.vae.config.scaling_factor == (0.13025 if arch == "sdxl" else 0.18215)


@pytest.mark.parametrize("arch", ["sd15", "sd2", "sd2-v", "sdxl"])
def test_diffusers_pipeline_runs_from_tiny_folder(arch: str, tiny: TinyModels) -> None:
    from diffusers import DiffusionPipeline

    pipe = DiffusionPipeline.from_pretrained(str(tiny.get(arch).path), local_files_only=True)
    expected = "StableDiffusionXLPipeline" if arch == "sdxl" else "StableDiffusionPipeline"
    assert type(pipe).__name__ == expected
    result = pipe("a cat", num_inference_steps=1, height=64, width=64, output_type="np", guidance_scale=1.0)
    assert result.images.shape == (1, 64, 64, 3)


def test_spec_pipeline_shares_modules(tiny: TinyModels) -> None:
    components = load_components(tiny.get("sdxl").path)
    pipe = get_spec("sdxl").pipeline(components)
    assert pipe.unet is components.unet
    latents = pipe("a cat", num_inference_steps=1, height=64, width=64, output_type="latent").images
    assert latents.shape == (1, 4, 8, 8)


def test_latents_follow_the_vaes_shift_and_scale(tiny: TinyModels) -> None:
    """A 16-channel-style VAE with a shift factor (Flux, SD3): encode subtracts it before scaling,
    decode adds it back; SD's VAE (no shift) keeps plain scaling."""
    components = load_components(tiny.get("sd15").path)
    spec, vae = get_spec("sd1"), components.vae
    images = torch.rand(1, 3, 64, 64) * 2 - 1
    with torch.no_grad():
        plain = spec.encode_images(vae, images, torch.Generator().manual_seed(0))
        vae.register_to_config(shift_factor=0.25)
        shifted = spec.encode_images(vae, images, torch.Generator().manual_seed(0))
        assert torch.allclose(shifted, plain - 0.25 * vae.config.scaling_factor, atol=1e-6)
        decoded = spec.decode_latents(vae, shifted)
        vae.register_to_config(shift_factor=None)
        assert torch.allclose(decoded, spec.decode_latents(vae, plain), atol=1e-5)
