"""The Wan 2.1 text-to-video family on its tiny model: detection, loading, encoding, the training objective,
validation videos through WanPipeline, saving, and PEFT LoRA files diffusers loads."""

from __future__ import annotations

import json
import shutil
from argparse import Namespace
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file

from backend import families
from backend.families.detection import FolderConfigs
from backend.families.loaded import family, family_of_modules
from backend.families.video_saving import save_lora
from backend.families.wan.detection import DETECTION
from backend.families.wan.family import (
    FAMILY,
    LORA_TARGET_MODULES,
    WanFlowMatching,
    WanObjectiveOptions,
    lora_key,
    lora_module_paths,
)
from backend.families.wan.loading import build_modules, config_set
from backend.models.components import Components, PromptEmbeds
from backend.models.detect import detect_model
from backend.models.errors import ModelMismatchError
from backend.objectives.loss import LossConfig, prediction_loss

ARCH = "wan2.1-t2v-1.3b"


@pytest.fixture(scope="module")
def wan(tiny) -> Components:
    return FAMILY.spec.load(tiny.get(ARCH).path)


def _clip(frames: int = 5, size: int = 32, seed: int = 0) -> torch.Tensor:
    return torch.rand(1, 3, frames, size, size, generator=torch.Generator().manual_seed(seed)) * 2 - 1


def _embeds(wan: Components, prompts: list[str]) -> PromptEmbeds:
    with torch.no_grad():
        return FAMILY.spec.encode_prompts(wan.text_encoders, FAMILY.spec.tokenize(wan.tokenizers, prompts))


def test_the_declaration_is_a_video_family() -> None:
    decl = families.declaration("wan")
    assert decl.is_video and decl.video_model_name == "wan" and decl.commands == {"video": "train_video"}
    assert (decl.temporal_compression, decl.spatial_compression, decl.objective) == (4, 8, "flow_matching")
    assert families.commands("video") == ("train_video",) and "train_video" not in families.commands()
    assert decl.base_model_version(False) == "wan2.1" and decl.native_resolution(False) == 480


def test_both_released_sizes_ship_their_configs() -> None:
    """The shipped configs build the real transformers: 1.3B and 14B parameters (on the meta device)."""
    counts = {}
    for size in ("1.3B", "14B"):
        configs = config_set(size)
        transformer, vae, umt5 = build_modules(configs)
        counts[size] = sum(p.numel() for p in transformer.parameters())
        assert configs.unet["text_dim"] == umt5.config.d_model == 4096 and vae.config.z_dim == 16
    assert 1.3e9 < counts["1.3B"] < 1.5e9 and 13.5e9 < counts["14B"] < 14.5e9
    for size in ("1.3B", "14B"):
        configs = config_set(size)
        found = DETECTION.from_folder(FolderConfigs(configs.model_index, configs.unet, tuple(configs.text_encoders)))
        assert found.family == "wan" and f"Wan 2.1 {size} text-to-video" in found.evidence
    with pytest.raises(ValueError, match="1.3B, 14B"):
        config_set("5B")


def test_detection_of_wan_and_other_folders(tiny, tmp_path: Path) -> None:
    info = detect_model(tiny.get(ARCH).path)
    assert info.family == "wan" and "WanTransformer3DModel, 2 blocks" in info.evidence
    with pytest.raises(ModelMismatchError, match=r"looks like an SD 1\.x model .* not Wan 2\.1 T2V"):
        FAMILY.spec.load(tiny.get("sd15").path)
    with pytest.raises(ModelMismatchError, match="not FLUX.1"):
        family("flux_dev").spec.load(tiny.get(ARCH).path)
    i2v = tmp_path / "i2v"
    shutil.copytree(tiny.get(ARCH).path, i2v)
    index = json.loads((i2v / "model_index.json").read_text())
    (i2v / "model_index.json").write_text(json.dumps({**index, "_class_name": "WanImageToVideoPipeline"}))
    with pytest.raises(ModelMismatchError, match="WanImageToVideoPipeline model; this trainer trains Wan 2.1 text-to"):
        detect_model(i2v)
    with pytest.raises(ModelMismatchError, match="Hugging Face model id"):
        FAMILY.spec.load("Wan-AI/Wan2.1-T2V-1.3B-Diffusers")


def test_a_transformer_file_is_recognised_and_sent_to_the_folder(wan, tmp_path: Path) -> None:
    path = tmp_path / "wan_t2v.safetensors"
    save_file({f"model.diffusion_model.{k}": v.contiguous() for k, v in wan.unet.state_dict().items()}, str(path))
    assert detect_model(path).family == "wan"
    with pytest.raises(ModelMismatchError, match="trained from a diffusers folder"):
        FAMILY.spec.load(path)


def test_encode_decode_and_predict_shapes(wan) -> None:
    spec, vae = FAMILY.spec, wan.vae
    clip = _clip()
    with torch.no_grad():
        latents = spec.encode_images(vae, clip, [torch.Generator().manual_seed(3)])
        raw = vae.encode(clip).latent_dist.sample(torch.Generator().manual_seed(3))
        assert latents.shape == (1, 16, 2, 4, 4)  # 1 + 4 frames -> 2 latent frames, 32 px -> 4
        mean = torch.tensor(vae.config.latents_mean).view(1, -1, 1, 1, 1)
        std = torch.tensor(vae.config.latents_std).view(1, -1, 1, 1, 1)
        torch.testing.assert_close(latents, (raw - mean) / std)
        assert spec.decode_latents(vae, latents).shape == clip.shape
        embeds = _embeds(wan, ["a red cat walks"])
        assert embeds.hidden_states.shape == (1, 512, 32) and embeds.attention_mask is None
        assert embeds.hidden_states[0, 10:].abs().sum() == 0  # past the prompt's tokens: zeros
        assert spec.predict(wan.unet, latents, torch.tensor([500.0]), embeds).shape == latents.shape
    with pytest.raises(ValueError, match=r"1 \+ 4k frames"):
        spec.encode_images(vae, _clip(frames=4))
    with pytest.raises(ValueError, match="multiples of 16"):
        spec.encode_images(vae, _clip(size=40))


def test_a_training_step_through_the_family(wan) -> None:
    assert family_of_modules(wan.unet, 1) is FAMILY
    args = Namespace(flow_weighting_scheme="logit_normal", flow_logit_mean=0.0, flow_logit_std=1.0,
                     flow_mode_scale=1.29)
    options = WanObjectiveOptions.from_args(args)
    options.validate(LossConfig())
    objective = FAMILY.objective(wan, options, LossConfig())
    with torch.no_grad():
        latents = FAMILY.spec.encode_images(wan.vae, torch.cat([_clip(seed=1), _clip(seed=2)]))
    embeds = _embeds(wan, ["a red cat walks", "a dog"])
    seen = {}

    def call(noisy: torch.Tensor, timesteps: torch.Tensor, extras: dict) -> torch.Tensor:
        seen.update(noisy=noisy, timesteps=timesteps)
        return FAMILY.spec.predict(wan.unet, noisy, timesteps, embeds)

    wan.unet.zero_grad()
    measured = FAMILY.forward(objective, latents, {}, [torch.Generator().manual_seed(i) for i in range(2)], call)
    # finetrainers: x_t = (1 - s) latents + s noise, target noise - latents, raw prediction.
    sigmas = (seen["timesteps"] / 1000).view(-1, 1, 1, 1, 1)
    noise = measured.target + latents
    torch.testing.assert_close(seen["noisy"], (1 - sigmas) * latents + sigmas * noise)
    loss = prediction_loss(measured, "l2", None)
    assert torch.isfinite(loss)
    loss.backward()
    grad = wan.unet.blocks[0].attn1.to_q.weight.grad
    assert grad is not None and grad.abs().sum() > 0
    wan.unet.zero_grad()
    weighted = WanFlowMatching(WanObjectiveOptions.from_args(Namespace(**{**vars(args), "flow_weighting_scheme":
                                                                          "sigma_sqrt"})).flow, LossConfig())
    assert torch.allclose(weighted.weights(torch.tensor([500.0])), torch.tensor([4.0]))


def test_the_pipeline_renders_a_video(wan) -> None:
    with torch.no_grad():
        frames = FAMILY.spec.render_video(wan, "a red cat walks", frames=5, height=32, width=48, steps=2, seed=0)
        again = FAMILY.spec.render_video(wan, "a red cat walks", frames=5, height=32, width=48, steps=2, seed=0)
    assert len(frames) == 5 and frames[0].size == (48, 32)
    assert all(np.array_equal(np.asarray(a), np.asarray(b)) for a, b in zip(frames, again, strict=True))
    with pytest.raises(ValueError, match=r"1 \+ 4k frames"):
        FAMILY.spec.render_video(wan, "a cat", frames=2, height=32, width=32, steps=2)


def test_save_round_trips(wan, tiny, tmp_path: Path) -> None:
    from diffusers import WanTransformer3DModel

    trained = {k: v + 0.5 for k, v in wan.unet.state_dict().items()}
    folder = FAMILY.spec.save(wan, tmp_path / "transformer", states={"unet": trained})
    reloaded = WanTransformer3DModel.from_pretrained(folder).state_dict()
    assert reloaded.keys() == trained.keys() and all(torch.equal(reloaded[k], trained[k]) for k in trained)
    with pytest.raises(ValueError, match="saved as diffusers folders"):
        FAMILY.spec.save(wan, tmp_path / "wan.safetensors")
    pipeline = FAMILY.spec.save_pipeline(wan, tmp_path / "pipeline")
    again = FAMILY.spec.load(pipeline)
    assert detect_model(pipeline).family == "wan"
    for name in ("unet", "vae"):
        mine, theirs = getattr(wan, name).state_dict(), getattr(again, name).state_dict()
        assert all(torch.equal(mine[k], theirs[k]) for k in mine)
    ids = FAMILY.spec.tokenize(again.tokenizers, ["a red cat walks"])
    assert torch.equal(ids[0], FAMILY.spec.tokenize(wan.tokenizers, ["a red cat walks"])[0])


def test_a_peft_lora_file_loads_in_the_diffusers_pipeline(tiny, tmp_path: Path) -> None:
    from diffusers import WanPipeline
    from peft import LoraConfig
    from peft.utils import get_peft_model_state_dict

    components = FAMILY.spec.load(tiny.get(ARCH).path)
    transformer = components.unet
    paths = lora_module_paths(transformer)
    assert len(paths) == 2 * 2 * len(LORA_TARGET_MODULES)  # 2 blocks x (attn1, attn2) x 4 projections
    torch.manual_seed(0)
    transformer.add_adapter(LoraConfig(r=4, lora_alpha=4, target_modules=list(LORA_TARGET_MODULES),
                                       init_lora_weights=False))
    peft_state = get_peft_model_state_dict(transformer)
    written = save_lora(tmp_path / "lora", peft_state, metadata={"ss_network_dim": "4"})
    assert written.name == "pytorch_lora_weights.safetensors"
    state = load_file(str(written))
    assert set(state) == {lora_key(p, m) for p in paths for m in ("A", "B")}
    assert all(torch.equal(state[f"transformer.{k}"], v) for k, v in peft_state.items())

    pipe = WanPipeline.from_pretrained(tiny.get(ARCH).path)
    fresh = FAMILY.spec.load(tiny.get(ARCH).path)
    with torch.no_grad():
        before = FAMILY.spec.render_video(fresh, "a red cat", 1, 32, 32, 2, seed=0, pipeline=pipe)
        pipe.load_lora_weights(str(tmp_path / "lora"))
        after = FAMILY.spec.render_video(fresh, "a red cat", 1, 32, 32, 2, seed=0, pipeline=pipe)
    assert not np.array_equal(np.asarray(before[0]), np.asarray(after[0]))
    with safe_open(str(written), "pt") as opened:
        assert opened.metadata()["ss_network_dim"] == "4"


@pytest.mark.parametrize("scheme", ["none", "logit_normal", "mode"])
def test_sigmas_are_drawn_as_finetrainers_draws_them_for_wan(scheme: str) -> None:
    """finetrainers' prepare_sigmas: u from the scheme's density, an index into FlowMatchEulerDiscreteScheduler()'s
    (unshifted) sigmas."""
    from diffusers import FlowMatchEulerDiscreteScheduler
    from diffusers.training_utils import compute_density_for_timestep_sampling

    from backend.objectives.flow_matching import sample_sigmas

    config = WanObjectiveOptions.from_args(Namespace(flow_weighting_scheme=scheme, flow_logit_mean=0.2,
                                                     flow_logit_std=1.1, flow_mode_scale=1.29)).flow
    ours = sample_sigmas(config, 64, 4, 4, torch.device("cpu"), torch.Generator().manual_seed(5))
    u = compute_density_for_timestep_sampling(scheme, 64, logit_mean=0.2, logit_std=1.1, mode_scale=1.29,
                                              generator=torch.Generator().manual_seed(5))
    theirs = FlowMatchEulerDiscreteScheduler().sigmas[(u * 1000).long().clamp(max=999)]
    torch.testing.assert_close(ours, theirs.float())
