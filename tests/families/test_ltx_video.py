"""The LTX-Video family on its tiny model: detection, loading, video latents, prediction, the finetrainers
objective, validation videos through LTXPipeline, saving, and PEFT LoRA files the pipeline loads."""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

import numpy
import pytest
import torch
from safetensors.torch import save_file

from backend.families import declaration
from backend.families.loaded import family, family_of_modules
from backend.families.ltx_video.family import FAMILY, PEFT_TARGET_MODULES, LTXFlowMatching, peft_key
from backend.families.ltx_video.spec import pack_latents, unpack_latents
from backend.models.detect import detect_model
from backend.models.errors import ModelMismatchError
from backend.networks.naming import find_targets, identity_name
from backend.objectives.finetrainers_flow import (
    FinetrainersFlowMatching,
    FinetrainersFlowOptions,
    latent_tokens,
)
from backend.objectives.flow_matching import scheduler_sigmas
from backend.objectives.loss import LossConfig, prediction_loss

ARCH = "ltx-video"
CLIP = (9, 64, 64)  # 1 + 8 frames of 64x64: latents [16, 2, 2, 2]


@pytest.fixture(scope="module")
def components(tiny):
    return FAMILY.spec.load(tiny.get(ARCH).path)


def _clip(seed: int = 0, batch: int = 1) -> torch.Tensor:
    return torch.rand(batch, 3, *CLIP, generator=torch.Generator().manual_seed(seed)) * 2 - 1


def test_the_declaration_is_finetrainers_ltx_video() -> None:
    decl = declaration("ltx_video")
    assert decl.is_video and decl.video_model_name == "ltx_video" and dict(decl.commands) == {"video": "train_video"}
    assert (decl.temporal_compression, decl.spatial_compression, decl.objective) == (8, 32, "flow_matching")
    assert decl.epsilon.base_model_version == "ltx-video" and decl.native_resolution(False) == 512


def test_the_tiny_folder_is_detected_and_its_modules_recognised(tiny, components) -> None:
    info = detect_model(tiny.get(ARCH).path)
    assert info.family == "ltx_video" and info.format == "diffusers"
    assert "LTXVideoTransformer3DModel" in info.evidence
    assert family_of_modules(components.unet, len(components.text_encoders)) is FAMILY
    assert sum(f.stat().st_size for f in Path(tiny.get(ARCH).path).rglob("*") if f.is_file()) < 5 * 2**20


def test_another_familys_folder_is_refused(tiny) -> None:
    with pytest.raises(ModelMismatchError, match=r"looks like an SD 1\.x model .* not LTX-Video"):
        FAMILY.spec.load(tiny.get("sd15").path)


def test_other_ltx_pipelines_and_single_files_are_refused(tiny, tmp_path) -> None:
    folder = tmp_path / "upsampler"
    shutil.copytree(tiny.get(ARCH).path, folder)
    index = json.loads((folder / "model_index.json").read_text())
    (folder / "model_index.json").write_text(json.dumps({**index, "_class_name": "LTXLatentUpsamplePipeline"}))
    with pytest.raises(ModelMismatchError, match="LTXLatentUpsamplePipeline model folder; this trainer trains"):
        detect_model(folder)
    single = tmp_path / "ltx.safetensors"
    shutil.copy(Path(tiny.get(ARCH).path) / "transformer" / "diffusion_pytorch_model.safetensors", single)
    with pytest.raises(ModelMismatchError, match="LTX-Video checkpoint file; .* diffusers folder"):
        detect_model(single)
    original = tmp_path / "ltx-video-2b-v0.9.1.safetensors"  # Lightricks' names: transformer and VAE in one file
    save_file({"model.diffusion_model.patchify_proj.weight": torch.zeros(2, 2), "vae.encoder.conv_in.weight":
               torch.zeros(2, 2), "model.diffusion_model.adaln_single.emb.timestep_embedder.linear_1.weight":
               torch.zeros(2, 2)}, str(original))
    with pytest.raises(ModelMismatchError, match="ltx-video-2b-v0.9.1.safetensors is an LTX-Video checkpoint file"):
        detect_model(original)


def test_a_clip_encodes_to_normalised_latents(components) -> None:
    vae, spec = components.vae, FAMILY.spec
    with torch.no_grad():
        latents = spec.encode_images(vae, _clip(), torch.Generator().manual_seed(3))
        raw = vae.encode(_clip()).latent_dist.sample(torch.Generator().manual_seed(3))
    assert latents.shape == (1, 16, 2, 2, 2)
    expected = (raw - vae.latents_mean.view(1, -1, 1, 1, 1)) / vae.latents_std.view(1, -1, 1, 1, 1)
    torch.testing.assert_close(latents, expected)
    with torch.no_grad():  # one generator per clip: clip i drawn from generator i, whatever the batch
        pair = spec.encode_images(vae, _clip(batch=2), [torch.Generator().manual_seed(s) for s in (3, 4)])
    torch.testing.assert_close(pair[:1], latents)
    with torch.no_grad():
        assert spec.decode_latents(vae, latents).shape == (1, 3, *CLIP)


def test_invalid_clip_shapes_are_refused_with_the_fix(components) -> None:
    with pytest.raises(ValueError, match=r"1 \+ 8k frames .* got 8 frames of 64x64.* 1 frames of 64x64"):
        FAMILY.spec.encode_images(components.vae, torch.zeros(1, 3, 8, 64, 64))
    with pytest.raises(ValueError, match="got 9 frames of 48x64"):
        FAMILY.spec.encode_images(components.vae, torch.zeros(1, 3, 9, 48, 64))


def test_packing_round_trips() -> None:
    latents = torch.randn(2, 16, 3, 4, 6)
    tokens = pack_latents(latents)
    assert tokens.shape == (2, 3 * 4 * 6, 16)
    assert torch.equal(tokens[0, 1], latents[0, :, 0, 0, 1])  # frame, row, column order; channels last
    assert torch.equal(unpack_latents(tokens, 3, 4, 6), latents)
    assert torch.equal(unpack_latents(pack_latents(latents, 2, 1), 3, 2, 3, 2, 1), latents)


def test_prompts_and_prediction(components) -> None:
    spec = FAMILY.spec
    ids = spec.tokenize(components.tokenizers, ["a cat walks on the beach", "a dog"])
    assert ids[0].shape == ids[1].shape == (2, 128) and ids[1][0].sum() > ids[1][1].sum() > 0
    with torch.no_grad():
        embeds = spec.encode_prompts(components.text_encoders, ids)
        latents = torch.randn(2, 16, 2, 2, 2)
        out = spec.predict(components.unet, latents, torch.tensor([900.0, 100.0]), embeds)
        again = spec.predict(components.unet, latents[1:], torch.tensor([100.0]), _index(embeds, 1))
    assert embeds.hidden_states.shape == (2, 128, 32) and embeds.attention_mask is not None
    assert out.shape == latents.shape and torch.isfinite(out).all()
    torch.testing.assert_close(out[1:], again, rtol=1e-4, atol=1e-5)  # per sample: time and mask stay its own


def _index(embeds, i):
    from backend.models.components import PromptEmbeds

    return PromptEmbeds(embeds.hidden_states[i:i + 1], None, embeds.attention_mask[i:i + 1])


def test_one_training_loss_reaches_the_transformer(components) -> None:
    spec, transformer = FAMILY.spec, components.unet
    options = FinetrainersFlowOptions(flow_weighting_scheme="logit_normal")
    options.validate(LossConfig())
    objective = FAMILY.objective(components, options, LossConfig())
    with torch.no_grad():
        latents = spec.encode_images(components.vae, _clip(), torch.Generator().manual_seed(0))
        embeds = spec.encode_prompts(components.text_encoders, spec.tokenize(components.tokenizers, ["a cat"]))
    transformer.zero_grad()
    measured = FAMILY.forward(objective, latents, {}, [torch.Generator().manual_seed(1)],
                              lambda noisy, t, extras: spec.predict(transformer, noisy, t, embeds, **extras))
    loss = prediction_loss(measured, "l2", None).mean()
    loss.backward()
    assert torch.isfinite(loss)
    assert transformer.transformer_blocks[0].attn1.to_q.weight.grad.abs().sum() > 0
    transformer.zero_grad()


def test_the_objective_samples_sigmas_as_finetrainers() -> None:
    latents = torch.randn(4, 16, 2, 4, 4)
    loss = LossConfig()
    plain = FinetrainersFlowMatching(FinetrainersFlowOptions(), loss)
    noisy = plain.noisy_input(latents, torch.Generator().manual_seed(0))
    sigmas = noisy.timesteps / 1000
    # Unshifted table values k / 1000, the raw velocity target, no weights for "none".
    assert torch.allclose(noisy.timesteps, noisy.timesteps.round()) and sigmas.max() <= 1
    assert all(float(s) in set(scheduler_sigmas(1.0).tolist()) for s in sigmas)
    s = sigmas.view(-1, 1, 1, 1, 1)
    noise = (noisy.model_input - (1 - s) * latents) / s
    torch.testing.assert_close(noisy.target, noise - latents, rtol=1e-4, atol=1e-4)
    assert plain.weights(noisy.timesteps) is None
    # sigma_sqrt weights the raw loss (finetrainers' compute_loss_weighting_for_sd3), unlike sd-scripts' objective.
    weighted = FinetrainersFlowMatching(FinetrainersFlowOptions(flow_weighting_scheme="sigma_sqrt"), loss)
    torch.testing.assert_close(weighted.weights(noisy.timesteps), sigmas**-2)
    # Resolution shifting: the same draws moved by the shift for F x H x W = 32 tokens.
    shifting = FinetrainersFlowOptions(flow_resolution_shifting=True)
    shifted = FinetrainersFlowMatching(shifting, loss).noisy_input(latents, torch.Generator().manual_seed(0))
    mu = shifting.resolution.shift(latent_tokens(latents))
    assert latent_tokens(latents) == 32 and mu == pytest.approx(0.5 + 0.65 * (32 - 256) / 3840)
    torch.testing.assert_close(shifted.timesteps / 1000, sigmas * mu / (1 + (mu - 1) * sigmas))
    flags = argparse.Namespace(flow_weighting_scheme="mode", flow_logit_mean=0.0, flow_logit_std=1.0,
                               flow_mode_scale=1.0, flow_shift=3.0, flow_resolution_shifting=False,
                               flow_base_seq_len=256, flow_max_seq_len=4096, flow_base_shift=0.5, flow_max_shift=1.15)
    config = FinetrainersFlowOptions.from_args(flags).config  # finetrainers' flags -> the shared sampler's
    assert (config.timestep_sampling, config.discrete_flow_shift, config.weighting_scheme, config.mode_scale,
            config.model_prediction_type) == ("sigma", 3.0, "mode", 1.0, "raw")
    with pytest.raises(ValueError, match="flow_weighting_scheme must be one of none, sigma_sqrt"):
        FinetrainersFlowOptions(flow_weighting_scheme="uniform").validate()


def test_first_frame_conditioning_noises_the_first_latent_frame_less() -> None:
    latents, loss, options = torch.randn(3, 16, 3, 2, 2), LossConfig(), FinetrainersFlowOptions()

    def gens() -> list[torch.Generator]:
        return [torch.Generator().manual_seed(seed) for seed in (5, 6, 7)]

    base = FinetrainersFlowMatching(options, loss).noisy_input(latents, gens())
    never = LTXFlowMatching(options, loss, first_frame_p=0.0).noisy_input(latents, gens())
    assert torch.equal(never.model_input, base.model_input) and torch.equal(never.timesteps, base.timesteps)
    always = LTXFlowMatching(options, loss, first_frame_p=1.0).noisy_input(latents, gens())
    # The same noise and time as without it (drawn first); the target and the later frames unchanged.
    assert torch.equal(always.timesteps, base.timesteps) and torch.equal(always.target, base.target)
    torch.testing.assert_close(always.model_input[:, :, 1:], base.model_input[:, :, 1:])
    noise, x = base.target + latents, latents
    for i, sigma in enumerate(base.timesteps / 1000):
        head, direction = always.model_input[i, :, :1] - x[i, :, :1], noise[i, :, :1] - x[i, :, :1]
        first_sigma = float((head * direction).sum() / (direction * direction).sum())
        torch.testing.assert_close(always.model_input[i, :, :1], x[i, :, :1] + first_sigma * direction)
        assert 0 <= first_sigma <= min(float(sigma), 0.25) + 1e-5
    assert FAMILY.objective(None, options, loss).first_frame_p == 0.1  # finetrainers' first_frame_conditioning_p


def test_the_pipeline_renders_a_video(components) -> None:
    frames = FAMILY.spec.render_video(components, "a cat", 9, 64, 64, steps=2, guidance=3.0, seed=0)
    assert len(frames) == 9 and frames[0].size == (64, 64)
    image = FAMILY.spec.render_video(components, "a cat", 1, 32, 64, steps=2, guidance=1.0, seed=0)  # an image
    assert len(image) == 1 and image[0].size == (64, 32)


def test_a_validation_video_starts_from_its_image(components, tmp_path) -> None:
    """An image-to-video row (`extra["image"]`) renders through LTXImageToVideoPipeline: the first frame
    follows the image (two images give two first frames), the text-only render differs."""
    import numpy as np
    from PIL import Image

    from backend.training.sample_prompts import SamplePrompt

    def render(image: str | None) -> list:
        extra = {"num_frames": 9, **({"image": image} if image else {})}
        prompt = SamplePrompt(prompt="a cat", index=0, width=64, height=64, seed=0, sample_steps=2, scale=1.0,
                              extra=extra)
        return FAMILY.spec.render_sample(FAMILY.spec.pipeline(components), components, prompt, "euler", 0,
                                         clip_skip=None, max_token_length=None)

    paths = []
    for name, colour in (("red", (230, 20, 20)), ("blue", (20, 20, 230))):
        paths.append(tmp_path / f"{name}.png")
        Image.new("RGB", (64, 64), colour).save(paths[-1])
    red, blue, text = render(str(paths[0])), render(str(paths[1])), render(None)
    assert len(red) == 9 and red[0].size == (64, 64)
    first = [np.asarray(video[0], dtype=np.float32) for video in (red, blue, text)]
    assert np.abs(first[0] - first[1]).mean() > 1 and np.abs(first[0] - first[2]).mean() > 1


def test_save_round_trips(components, tmp_path) -> None:
    from diffusers import LTXPipeline, LTXVideoTransformer3DModel

    spec = FAMILY.spec
    assert "diffusers folders" in spec.save_refusal(tmp_path / "model.safetensors")
    states = {"unet": {k: v + 1 for k, v in components.unet.state_dict().items()}}
    folder = spec.save_pipeline(components, tmp_path / "whole", states=states)
    reloaded = family("ltx_video").spec.load(folder)
    for name, value in reloaded.unet.state_dict().items():
        assert torch.equal(value, states["unet"][name]), name
    for mine, theirs in ((components.vae, reloaded.vae), (components.text_encoders[0], reloaded.text_encoders[0])):
        assert all(torch.equal(v, theirs.state_dict()[k]) for k, v in mine.state_dict().items())
    assert isinstance(LTXPipeline.from_pretrained(folder), LTXPipeline)
    transformer_folder = spec.save(components, tmp_path / "transformer")
    assert (transformer_folder / "diffusion_pytorch_model.safetensors").is_file()
    loaded = LTXVideoTransformer3DModel.from_pretrained(transformer_folder)
    assert all(torch.equal(v, loaded.state_dict()[k]) for k, v in components.unet.state_dict().items())


def test_a_peft_lora_on_the_targets_loads_in_the_pipeline(tiny, tmp_path) -> None:
    from peft import LoraConfig
    from peft.utils import get_peft_model_state_dict

    spec = FAMILY.spec
    fresh = spec.load(tiny.get(ARCH).path)  # its own modules: the adapter must not leak into other tests
    transformer = fresh.unet
    # The family's network targets are finetrainers' default --target_modules, in every attention.
    targets = [t.diffusers_name for t in find_targets(transformer, "", FAMILY.network_targets.denoiser, identity_name)]
    wanted = sorted(f"{path}" for path, _ in transformer.named_modules() if path.endswith(PEFT_TARGET_MODULES))
    assert sorted(name.replace("_", ".").lstrip(".") for name in targets) == sorted(p.replace("_", ".") for p in wanted)
    assert len(wanted) == 2 * 2 * 4  # 2 blocks x (attn1, attn2) x (to_q, to_k, to_v, to_out.0)
    before = spec.render_video(fresh, "a cat", 9, 64, 64, steps=2, guidance=1.0, seed=0)

    transformer.add_adapter(LoraConfig(r=4, lora_alpha=4, target_modules=list(PEFT_TARGET_MODULES),
                                       init_lora_weights=False))
    state = get_peft_model_state_dict(transformer)
    transformer.delete_adapters("default")
    keys = {f"transformer.{k}": v for k, v in state.items()}
    assert peft_key("transformer_blocks.0.attn2.to_out.0", "lora_A") in keys and len(keys) == 2 * len(wanted)
    save_file({k: v.contiguous() for k, v in keys.items()}, str(tmp_path / "pytorch_lora_weights.safetensors"))

    pipeline = spec.pipeline(fresh)
    pipeline.load_lora_weights(tmp_path, weight_name="pytorch_lora_weights.safetensors")
    after = spec.render_video(fresh, "a cat", 9, 64, 64, steps=2, guidance=1.0, seed=0, pipeline=pipeline)
    assert any((numpy.asarray(a) != numpy.asarray(b)).any() for a, b in zip(before, after, strict=True))
