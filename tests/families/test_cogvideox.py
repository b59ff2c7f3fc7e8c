"""The CogVideoX 1.0 text-to-video family on its tiny model: detection, loading, encoding, the DDPM
v-prediction objective as finetrainers trains it, validation videos through CogVideoXPipeline, saving, and PEFT
LoRA files diffusers loads."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file

from backend import families
from backend.families.cogvideox.detection import DETECTION
from backend.families.cogvideox.family import (
    FAMILY,
    LORA_TARGET_MODULES,
    CogVideoXDDPM,
    CogVideoXObjectiveOptions,
    lora_key,
    lora_module_paths,
    training_scheduler,
)
from backend.families.cogvideox.loading import build_modules, config_set, random_modules
from backend.families.detection import FolderConfigs
from backend.families.loaded import family, family_of_modules
from backend.families.video_saving import save_lora
from backend.models.components import Components, PromptEmbeds
from backend.models.detect import detect_model
from backend.models.errors import ModelMismatchError
from backend.objectives.loss import LossConfig, prediction_loss

ARCH = "cogvideox-5b"


@pytest.fixture(scope="module")
def cog(tiny) -> Components:
    return FAMILY.spec.load(tiny.get(ARCH).path)


def _clip(frames: int = 5, size: int = 32, seed: int = 0, width: int | None = None) -> torch.Tensor:
    shape = (1, 3, frames, size, width or size)
    return torch.rand(*shape, generator=torch.Generator().manual_seed(seed)) * 2 - 1


def _embeds(cog: Components, prompts: list[str]) -> PromptEmbeds:
    with torch.no_grad():
        return FAMILY.spec.encode_prompts(cog.text_encoders, FAMILY.spec.tokenize(cog.tokenizers, prompts))


def test_the_declaration_is_a_video_family_without_ddpm_image_options() -> None:
    from backend.options.schema import DDPM_COMMANDS, VIDEO_COMMANDS

    decl = families.declaration("cogvideox")
    assert decl.is_video and decl.video_model_name == "cogvideox" and decl.commands == {"video": "train_video"}
    assert (decl.temporal_compression, decl.spatial_compression, decl.objective) == (4, 8, "ddpm")
    assert not set(VIDEO_COMMANDS) & set(DDPM_COMMANDS)  # sd-scripts' DDPM options stay off the video command
    assert decl.base_model_version(False) == "cogvideox" and decl.native_resolution(False) == 480


def test_both_released_sizes_ship_their_configs() -> None:
    """The shipped configs build the real transformers (on the meta device): 2B with sinusoidal positions, the
    VAE scale 1.15258426 and SNR shift 3; 5B with RoPE, 0.7 and 1."""
    counts = {}
    for size, rope, scale, shift in (("2B", False, 1.15258426, 3.0), ("5B", True, 0.7, 1.0)):
        configs = config_set(size)
        transformer, vae, t5 = build_modules(configs)
        counts[size] = sum(p.numel() for p in transformer.parameters())
        assert configs.unet["text_embed_dim"] == t5.config.d_model == 4096 and vae.config.latent_channels == 16
        assert transformer.config.use_rotary_positional_embeddings is rope and vae.config.scaling_factor == scale
        scheduler = training_scheduler(configs.scheduler)
        assert scheduler.config.snr_shift_scale == shift and scheduler.config.prediction_type == "v_prediction"
        assert scheduler.alphas_cumprod[-1] == 0  # zero terminal SNR
        found = DETECTION.from_folder(FolderConfigs(configs.model_index, configs.unet, tuple(configs.text_encoders)))
        assert found.family == "cogvideox" and f"CogVideoX {size} text-to-video" in found.evidence
    assert 1.6e9 < counts["2B"] < 1.8e9 and 5.4e9 < counts["5B"] < 5.7e9
    with pytest.raises(ValueError, match="2B, 5B"):
        config_set("1.5")


def test_detection_of_cogvideox_and_other_folders(tiny, tmp_path: Path) -> None:
    info = detect_model(tiny.get(ARCH).path)
    assert info.family == "cogvideox" and "CogVideoXTransformer3DModel, 2 blocks, RoPE" in info.evidence
    with pytest.raises(ModelMismatchError, match=r"looks like an SD 1\.x model .* not CogVideoX"):
        FAMILY.spec.load(tiny.get("sd15").path)
    with pytest.raises(ModelMismatchError, match="not FLUX.1"):
        family("flux_dev").spec.load(tiny.get(ARCH).path)
    i2v = tmp_path / "i2v"
    shutil.copytree(tiny.get(ARCH).path, i2v)
    index = json.loads((i2v / "model_index.json").read_text())
    (i2v / "model_index.json").write_text(json.dumps({**index, "_class_name": "CogVideoXImageToVideoPipeline"}))
    with pytest.raises(ModelMismatchError, match="CogVideoXImageToVideoPipeline model; this trainer trains CogVideoX"):
        detect_model(i2v)
    (i2v / "model_index.json").write_text(json.dumps(index))
    config = json.loads((i2v / "transformer" / "config.json").read_text())
    (i2v / "transformer" / "config.json").write_text(json.dumps({**config, "patch_size_t": 2}))
    with pytest.raises(ModelMismatchError, match="CogVideoX 1.5 transformer"):
        detect_model(i2v)
    with pytest.raises(ModelMismatchError, match="Hugging Face model id"):
        FAMILY.spec.load("THUDM/CogVideoX-5b")


def test_a_transformer_file_is_recognised_and_sent_to_the_folder(cog, tmp_path: Path) -> None:
    path = tmp_path / "cogvideox.safetensors"
    save_file({k: v.contiguous() for k, v in cog.unet.state_dict().items()}, str(path))
    assert detect_model(path).family == "cogvideox"
    with pytest.raises(ModelMismatchError, match="trained from a diffusers folder"):
        FAMILY.spec.load(path)


def test_encode_decode_and_predict_shapes(cog) -> None:
    spec, vae = FAMILY.spec, cog.vae
    clip = _clip(frames=9, width=48)
    with torch.no_grad():
        latents = spec.encode_images(vae, clip, [torch.Generator().manual_seed(3)])
        raw = vae.encode(clip).latent_dist.sample(torch.Generator().manual_seed(3))
        assert latents.shape == (1, 16, 3, 4, 6)  # 1 + 8 frames -> 3 latent frames, 32 x 48 px -> 4 x 6
        torch.testing.assert_close(latents, raw * vae.config.scaling_factor)
        assert spec.decode_latents(vae, latents).shape == clip.shape
        assert spec.encode_images(vae, _clip(frames=1)[:, :, 0]).shape == (1, 16, 1, 4, 4)  # an image
        embeds = _embeds(cog, ["a red cat walks"])
        assert embeds.hidden_states.shape == (1, 226, 32) and embeds.attention_mask is None
        assert spec.predict(cog.unet, latents, torch.tensor([500]), embeds).shape == latents.shape
    with pytest.raises(ValueError, match=r"1 \+ 4k frames"):
        spec.encode_images(vae, _clip(frames=4))
    with pytest.raises(ValueError, match="multiples of 16"):
        spec.encode_images(vae, _clip(size=40))


def test_predict_builds_the_pipelines_rope_and_2b_takes_none(cog, tiny) -> None:
    """5B: the RoPE the diffusers pipeline builds for the same size; 2B (sinusoidal positions): no RoPE."""
    from diffusers import CogVideoXPipeline

    from backend.families.cogvideox.spec import rotary_embeddings
    from devtools.tiny_cogvideox import tiny_configs

    pipe = CogVideoXPipeline(tokenizer=cog.tokenizers[0], text_encoder=cog.text_encoders[0], vae=cog.vae,
                             transformer=cog.unet, scheduler=training_scheduler(cog.configs.scheduler))
    ours = rotary_embeddings(cog.unet, 3, 4, 6, torch.device("cpu"))
    theirs = pipe._prepare_rotary_positional_embeddings(32, 48, 3, torch.device("cpu"))
    assert ours is not None and all(torch.equal(a, b) for a, b in zip(ours, theirs, strict=True))
    small = tiny_configs(config_set("2B"), [{"vocab_size": 64, "pad_token_id": 0, "eos_token_id": 1}])
    transformer, _, _ = random_modules(small)
    assert rotary_embeddings(transformer, 3, 4, 6, torch.device("cpu")) is None
    embeds = PromptEmbeds(torch.randn(1, 226, 32))
    with torch.no_grad():
        assert FAMILY.spec.predict(transformer, torch.randn(1, 16, 3, 4, 6), torch.tensor([10]), embeds).shape == (
            1, 16, 3, 4, 6)


def test_a_training_step_is_finetrainers_cogvideox_step(cog) -> None:
    assert family_of_modules(cog.unet, 1) is FAMILY
    options = CogVideoXObjectiveOptions.from_args(object())
    options.validate(LossConfig())
    objective = FAMILY.objective(cog, options, LossConfig())
    scheduler = objective.scheduler
    with torch.no_grad():
        latents = FAMILY.spec.encode_images(cog.vae, torch.cat([_clip(seed=1), _clip(seed=2)]))
    embeds = _embeds(cog, ["a red cat walks", "a dog"])
    seen = {}

    def call(noisy: torch.Tensor, timesteps: torch.Tensor, extras: dict) -> torch.Tensor:
        seen.update(noisy=noisy, timesteps=timesteps)
        return FAMILY.spec.predict(cog.unet, noisy, timesteps, embeds)

    cog.unet.zero_grad()
    generators = [torch.Generator().manual_seed(i) for i in range(2)]
    measured = FAMILY.forward(objective, latents, {}, generators, call)
    # finetrainers: t from the uniform index, then the noise; x_t by add_noise; target the latents.
    t = seen["timesteps"]
    for i in range(2):
        g = torch.Generator().manual_seed(i)
        index = (torch.rand(1, generator=g) * 1000).long()
        noise = torch.randn(latents[i : i + 1].shape, generator=g)
        assert t[i] == 999 - index
        torch.testing.assert_close(seen["noisy"][i : i + 1], scheduler.add_noise(latents[i : i + 1], noise, t[i:i + 1]))
    assert torch.equal(measured.target, latents)
    alphas = scheduler.alphas_cumprod[t].float()  # finetrainers: float32 before 1 / (1 - a)
    torch.testing.assert_close(measured.weights, 1 / (1 - alphas))
    loss = prediction_loss(measured, "l2", None)
    assert torch.isfinite(loss)
    loss.backward()
    grad = cog.unet.transformer_blocks[0].attn1.to_q.weight.grad
    assert grad is not None and grad.abs().sum() > 0
    cog.unet.zero_grad()


def test_the_weighted_x0_loss_is_the_v_prediction_loss() -> None:
    """finetrainers' weight 1 / (1 - a_t) on the latents estimate sqrt(a_t) x_t - sqrt(1 - a_t) v makes the l2
    loss the plain v loss; both ends of the schedule stay finite (zero terminal SNR: a_999 = 0)."""
    from backend.objectives.base import NoisyInput

    objective = CogVideoXDDPM(training_scheduler(config_set("2B").scheduler), LossConfig())
    scheduler = objective.scheduler
    latents, noise = torch.randn(3, 4, 2, 4, 4), torch.randn(3, 4, 2, 4, 4)
    t = torch.tensor([0, 500, 999])
    noisy = NoisyInput(scheduler.add_noise(latents, noise, t), t, latents)
    v_true = scheduler.get_velocity(latents, noise, t)
    v_pred = v_true + 0.1 * torch.randn_like(v_true)
    measured = objective.measure(v_pred, noisy)
    per_sample = measured.weights * (measured.prediction - measured.target).pow(2).mean((1, 2, 3, 4))
    torch.testing.assert_close(per_sample, (v_pred - v_true).pow(2).mean((1, 2, 3, 4)), rtol=1e-3, atol=1e-5)
    assert objective.at_timestep(1000).pinned_timestep == 999 and objective.timestep_range() == (0, 1000)


def test_the_pipeline_renders_a_video(cog) -> None:
    with torch.no_grad():
        frames = FAMILY.spec.render_video(cog, "a red cat walks", frames=9, height=32, width=48, steps=2, seed=0)
        again = FAMILY.spec.render_video(cog, "a red cat walks", frames=9, height=32, width=48, steps=2, seed=0)
    assert len(frames) == 9 and frames[0].size == (48, 32)
    assert all(np.array_equal(np.asarray(a), np.asarray(b)) for a, b in zip(frames, again, strict=True))
    with pytest.raises(ValueError, match=r"1 \+ 8k frames"):
        FAMILY.spec.render_video(cog, "a cat", frames=5, height=32, width=32, steps=2)


def test_a_validation_video_has_the_frames_asked(cog) -> None:
    """The video trainer's validation prompt: 5 frames are rendered as 9 and cut; 9 as they are."""
    from backend.training.sample_prompts import SamplePrompt

    def render(frames: int) -> list:
        prompt = SamplePrompt("a red cat", width=40, height=32, sample_steps=2, scale=6.0,
                              extra={"num_frames": frames})
        with torch.no_grad():
            return FAMILY.spec.render_sample(None, cog, prompt, "ddim", 0, clip_skip=None, max_token_length=None)

    five, nine = render(5), render(9)
    assert len(five) == 5 and len(nine) == 9 and nine[0].size == (32, 32)
    assert all(np.array_equal(np.asarray(a), np.asarray(b)) for a, b in zip(five, nine[:5], strict=True))
    with pytest.raises(ValueError, match=r"1 \+ 4k frames"):
        render(6)


def test_save_round_trips(cog, tmp_path: Path) -> None:
    from diffusers import CogVideoXTransformer3DModel

    trained = {k: v + 0.5 for k, v in cog.unet.state_dict().items()}
    folder = FAMILY.spec.save(cog, tmp_path / "transformer", states={"unet": trained})
    reloaded = CogVideoXTransformer3DModel.from_pretrained(folder).state_dict()
    assert reloaded.keys() == trained.keys() and all(torch.equal(reloaded[k], trained[k]) for k in trained)
    with pytest.raises(ValueError, match="saved as diffusers folders"):
        FAMILY.spec.save(cog, tmp_path / "cog.safetensors")
    pipeline = FAMILY.spec.save_pipeline(cog, tmp_path / "pipeline")
    again = FAMILY.spec.load(pipeline)
    assert detect_model(pipeline).family == "cogvideox"
    for name in ("unet", "vae"):
        mine, theirs = getattr(cog, name).state_dict(), getattr(again, name).state_dict()
        assert all(torch.equal(mine[k], theirs[k]) for k in mine)
    ids = FAMILY.spec.tokenize(again.tokenizers, ["a red cat walks"])
    assert torch.equal(ids[0], FAMILY.spec.tokenize(cog.tokenizers, ["a red cat walks"])[0])


def test_a_peft_lora_file_loads_in_the_diffusers_pipeline(tiny, tmp_path: Path) -> None:
    from diffusers import CogVideoXPipeline
    from peft import LoraConfig
    from peft.utils import get_peft_model_state_dict

    components = FAMILY.spec.load(tiny.get(ARCH).path)
    transformer = components.unet
    paths = lora_module_paths(transformer)
    assert len(paths) == 2 * len(LORA_TARGET_MODULES)  # 2 blocks x attn1 x 4 projections
    torch.manual_seed(0)
    transformer.add_adapter(LoraConfig(r=4, lora_alpha=4, target_modules=list(LORA_TARGET_MODULES),
                                       init_lora_weights=False))
    peft_state = get_peft_model_state_dict(transformer)
    written = save_lora(tmp_path / "lora", peft_state, metadata={"ss_network_dim": "4"})
    assert written.name == "pytorch_lora_weights.safetensors"
    state = load_file(str(written))
    assert set(state) == {lora_key(p, m) for p in paths for m in ("A", "B")}
    assert all(torch.equal(state[f"transformer.{k}"], v) for k, v in peft_state.items())

    pipe = CogVideoXPipeline.from_pretrained(tiny.get(ARCH).path)
    fresh = FAMILY.spec.load(tiny.get(ARCH).path)
    with torch.no_grad():
        before = FAMILY.spec.render_video(fresh, "a red cat", 1, 32, 32, 2, seed=0, pipeline=pipe)
        pipe.load_lora_weights(str(tmp_path / "lora"))
        after = FAMILY.spec.render_video(fresh, "a red cat", 1, 32, 32, 2, seed=0, pipeline=pipe)
    assert not np.array_equal(np.asarray(before[0]), np.asarray(after[0]))
    with safe_open(str(written), "pt") as opened:
        assert opened.metadata()["ss_network_dim"] == "4"
