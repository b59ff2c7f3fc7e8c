"""The HunyuanVideo family on its tiny model: detection, loading, the prompt encoding the pipeline does, the
training objective as finetrainers trains it, validation videos through HunyuanVideoPipeline, saving, and PEFT
LoRA files diffusers loads."""

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
from backend.families.hunyuan_video.detection import DETECTION
from backend.families.hunyuan_video.family import FAMILY, PEFT_TARGET_MODULES, peft_key
from backend.families.hunyuan_video.loading import build_modules, shipped_configs
from backend.families.hunyuan_video.prompt import CROP_START, PROMPT_TEMPLATE
from backend.families.hunyuan_video.spec import crop_start
from backend.families.loaded import family, family_of_modules
from backend.families.video_saving import save_lora
from backend.models.components import Components, PromptEmbeds
from backend.models.detect import detect_model
from backend.models.errors import ModelMismatchError
from backend.objectives.finetrainers_flow import FinetrainersFlowMatching
from backend.objectives.loss import LossConfig, prediction_loss

ARCH = "hunyuan-video"
FLOW_ARGS = {"flow_weighting_scheme": "none", "flow_logit_mean": 0.0, "flow_logit_std": 1.0, "flow_mode_scale": 1.29,
             "flow_shift": 1.0, "flow_resolution_shifting": False, "flow_base_seq_len": 256,
             "flow_max_seq_len": 4096, "flow_base_shift": 0.5, "flow_max_shift": 1.15}


@pytest.fixture(scope="module")
def hunyuan(tiny) -> Components:
    return FAMILY.spec.load(tiny.get(ARCH).path)


def _clip(frames: int = 5, size: int = 32, seed: int = 0) -> torch.Tensor:
    return torch.rand(1, 3, frames, size, size, generator=torch.Generator().manual_seed(seed)) * 2 - 1


def _embeds(components: Components, prompts: list[str]) -> PromptEmbeds:
    with torch.no_grad():
        return FAMILY.spec.encode_prompts(components.text_encoders, FAMILY.spec.tokenize(components.tokenizers,
                                                                                         prompts))


def test_the_declaration_is_a_video_family() -> None:
    decl = families.declaration("hunyuan_video")
    assert decl.is_video and decl.video_model_name == "hunyuan_video" and decl.commands == {"video": "train_video"}
    assert (decl.temporal_compression, decl.spatial_compression, decl.objective) == (4, 8, "flow_matching")
    assert decl.base_model_version(False) == "hunyuan-video" and decl.native_resolution(False) == 720


def test_the_shipped_configs_build_the_real_model() -> None:
    """The 13B transformer (on the meta device), Llama 3 8B's width, CLIP-L's pooled width; detection reads them."""
    configs = shipped_configs()
    transformer, vae, llama, clip = build_modules(configs)
    assert 12.5e9 < sum(p.numel() for p in transformer.parameters()) < 13.5e9
    assert configs.unet["text_embed_dim"] == llama.config.hidden_size == 4096
    assert configs.unet["pooled_projection_dim"] == clip.config.hidden_size == 768
    assert vae.config.latent_channels == 16 and vae.config.scaling_factor == pytest.approx(0.476986)
    found = DETECTION.from_folder(FolderConfigs(configs.model_index, configs.unet, tuple(configs.text_encoders)))
    assert found.family == "hunyuan_video" and "20 dual-stream + 40 single-stream" in found.evidence


def test_the_template_is_the_pipelines() -> None:
    from diffusers.pipelines.hunyuan_video.pipeline_hunyuan_video import DEFAULT_PROMPT_TEMPLATE

    assert DEFAULT_PROMPT_TEMPLATE == {"template": PROMPT_TEMPLATE, "crop_start": CROP_START}


def test_detection_of_hunyuan_and_other_folders(tiny, hunyuan, tmp_path: Path) -> None:
    info = detect_model(tiny.get(ARCH).path)
    assert info.family == "hunyuan_video" and "2 dual-stream + 2 single-stream blocks" in info.evidence
    with pytest.raises(ModelMismatchError, match=r"looks like an SD 1\.x model .* not HunyuanVideo"):
        FAMILY.spec.load(tiny.get("sd15").path)
    with pytest.raises(ModelMismatchError, match="not FLUX.1"):
        family("flux_dev").spec.load(tiny.get(ARCH).path)
    i2v = tmp_path / "i2v"
    shutil.copytree(tiny.get(ARCH).path, i2v)
    index = json.loads((i2v / "model_index.json").read_text())
    (i2v / "model_index.json").write_text(json.dumps({**index, "_class_name": "HunyuanVideoImageToVideoPipeline"}))
    with pytest.raises(ModelMismatchError, match="HunyuanVideoImageToVideoPipeline model folder; this trainer trains"):
        detect_model(i2v)
    (i2v / "model_index.json").write_text(json.dumps(index))
    config = json.loads((i2v / "transformer" / "config.json").read_text())
    (i2v / "transformer" / "config.json").write_text(json.dumps({**config, "image_condition_type": "latent_concat"}))
    with pytest.raises(ModelMismatchError, match="image-to-video model"):
        detect_model(i2v)
    with pytest.raises(ModelMismatchError, match="Hugging Face model id"):
        FAMILY.spec.load("hunyuanvideo-community/HunyuanVideo")
    single = tmp_path / "hunyuan_video_t2v.safetensors"
    save_file({f"model.diffusion_model.{k}": v.contiguous() for k, v in hunyuan.unet.state_dict().items()},
              str(single))
    with pytest.raises(ModelMismatchError, match="loads HunyuanVideo from a diffusers folder"):
        FAMILY.spec.load(single)


def test_prompts_are_encoded_as_the_pipeline_encodes_them(hunyuan) -> None:
    embeds = _embeds(hunyuan, ["a red cat walks", "a dog"])
    assert embeds.hidden_states.shape == (2, 256, 32) and embeds.pooled.shape == (2, 32)
    assert embeds.attention_mask.shape == (2, 256) and embeds.attention_mask[0].sum() > embeds.attention_mask[1].sum()
    pipe = FAMILY.spec.pipeline(hunyuan)
    with torch.no_grad():
        theirs, pooled, mask = pipe.encode_prompt(
            ["a red cat walks", "a dog"], prompt_template=FAMILY.spec.prompt_template(hunyuan.tokenizers[0]),
            device=torch.device("cpu"))
    torch.testing.assert_close(embeds.hidden_states, theirs)
    torch.testing.assert_close(embeds.pooled, pooled)
    assert torch.equal(embeds.attention_mask.bool(), mask.bool())
    assert crop_start(hunyuan.tokenizers[0]) + 256 == FAMILY.spec.tokenize(hunyuan.tokenizers, ["x"])[0].shape[1]


def test_encode_decode_and_predict_shapes(hunyuan) -> None:
    spec, vae = FAMILY.spec, hunyuan.vae
    clip = _clip()
    with torch.no_grad():
        latents = spec.encode_images(vae, clip, [torch.Generator().manual_seed(3)])
        raw = vae.encode(clip).latent_dist.sample(torch.Generator().manual_seed(3))
        assert latents.shape == (1, 16, 2, 4, 4)  # 1 + 4 frames -> 2 latent frames, 32 px -> 4
        torch.testing.assert_close(latents, raw * vae.config.scaling_factor)
        assert spec.decode_latents(vae, latents).shape == clip.shape
        embeds = _embeds(hunyuan, ["a red cat walks"])
        prediction = spec.predict(hunyuan.unet, latents, torch.tensor([500.0]), embeds)
        assert prediction.shape == latents.shape
        # The guidance embedding is fed: another guidance changes the prediction.
        assert not torch.equal(prediction, spec.predict(hunyuan.unet, latents, torch.tensor([500.0]), embeds,
                                                        guidance=6.0))
    with pytest.raises(ValueError, match=r"1 \+ 4k frames"):
        spec.encode_images(vae, _clip(frames=4))
    with pytest.raises(ValueError, match="multiples of 16"):
        spec.encode_images(vae, _clip(size=40))
    with pytest.raises(ValueError, match="lack the pooled output"):
        spec.predict(hunyuan.unet, latents, torch.tensor([500.0]), PromptEmbeds(embeds.hidden_states))


def test_a_training_step_through_the_family(hunyuan) -> None:
    assert family_of_modules(hunyuan.unet, 2) is FAMILY
    options = FAMILY.objective_options.from_args(Namespace(**{**FLOW_ARGS, "flow_weighting_scheme": "logit_normal"}))
    options.validate(LossConfig())
    objective = FAMILY.objective(hunyuan, options, LossConfig())
    assert isinstance(objective, FinetrainersFlowMatching)
    with torch.no_grad():
        latents = FAMILY.spec.encode_images(hunyuan.vae, torch.cat([_clip(seed=1), _clip(seed=2)]))
    embeds = _embeds(hunyuan, ["a red cat walks", "a dog"])
    seen = {}

    def call(noisy: torch.Tensor, timesteps: torch.Tensor, extras: dict) -> torch.Tensor:
        seen.update(noisy=noisy, timesteps=timesteps)
        return FAMILY.spec.predict(hunyuan.unet, noisy, timesteps, embeds)

    hunyuan.unet.zero_grad()
    measured = FAMILY.forward(objective, latents, {}, [torch.Generator().manual_seed(i) for i in range(2)], call)
    # finetrainers: x_t = (1 - s) latents + s noise, target noise - latents, raw prediction.
    sigmas = (seen["timesteps"] / 1000).view(-1, 1, 1, 1, 1)
    noise = measured.target + latents
    torch.testing.assert_close(seen["noisy"], (1 - sigmas) * latents + sigmas * noise)
    loss = prediction_loss(measured, "l2", None)
    assert torch.isfinite(loss)
    loss.backward()
    for grad in (hunyuan.unet.transformer_blocks[0].attn.to_q.weight.grad,
                 hunyuan.unet.single_transformer_blocks[0].attn.to_q.weight.grad,
                 hunyuan.unet.time_text_embed.guidance_embedder.linear_1.weight.grad):
        assert grad is not None and grad.abs().sum() > 0
    hunyuan.unet.zero_grad()


def test_the_pipeline_renders_a_video(hunyuan) -> None:
    with torch.no_grad():
        frames = FAMILY.spec.render_video(hunyuan, "a red cat walks", frames=5, height=32, width=48, steps=2)
        again = FAMILY.spec.render_video(hunyuan, "a red cat walks", frames=5, height=32, width=48, steps=2)
    assert len(frames) == 5 and frames[0].size == (48, 32)
    assert all(np.array_equal(np.asarray(a), np.asarray(b)) for a, b in zip(frames, again, strict=True))
    with pytest.raises(ValueError, match=r"1 \+ 4k frames"):
        FAMILY.spec.render_video(hunyuan, "a cat", frames=2, height=32, width=32, steps=2)


def test_save_round_trips(hunyuan, tmp_path: Path) -> None:
    from diffusers import HunyuanVideoTransformer3DModel

    trained = {k: v + 0.5 for k, v in hunyuan.unet.state_dict().items()}
    folder = FAMILY.spec.save(hunyuan, tmp_path / "transformer", states={"unet": trained})
    reloaded = HunyuanVideoTransformer3DModel.from_pretrained(folder).state_dict()
    assert reloaded.keys() == trained.keys() and all(torch.equal(reloaded[k], trained[k]) for k in trained)
    with pytest.raises(ValueError, match="saved as diffusers folders"):
        FAMILY.spec.save(hunyuan, tmp_path / "hunyuan.safetensors")
    pipeline = FAMILY.spec.save_pipeline(hunyuan, tmp_path / "pipeline")
    again = FAMILY.spec.load(pipeline)
    assert detect_model(pipeline).family == "hunyuan_video"
    for name in ("unet", "vae"):
        mine, theirs = getattr(hunyuan, name).state_dict(), getattr(again, name).state_dict()
        assert all(torch.equal(mine[k], theirs[k]) for k in mine)
    ids = FAMILY.spec.tokenize(again.tokenizers, ["a red cat walks"])
    assert all(torch.equal(a, b) for a, b in zip(ids, FAMILY.spec.tokenize(hunyuan.tokenizers, ["a red cat walks"]),
                                                 strict=True))


def test_a_peft_lora_file_loads_in_the_diffusers_pipeline(tiny, tmp_path: Path) -> None:
    from peft import LoraConfig
    from peft.utils import get_peft_model_state_dict

    components = FAMILY.spec.load(tiny.get(ARCH).path)
    transformer = components.unet
    torch.manual_seed(0)
    transformer.add_adapter(LoraConfig(r=4, lora_alpha=4, target_modules=list(PEFT_TARGET_MODULES),
                                       init_lora_weights=False))
    peft_state = get_peft_model_state_dict(transformer)
    # Dual-stream (4 projections), single-stream (to_q/k/v: their output is the block's proj_out) and the refiner.
    paths = {k.rsplit(".lora_", 1)[0] for k in peft_state}
    assert "transformer_blocks.0.attn.to_out.0" in paths and "single_transformer_blocks.1.attn.to_v" in paths
    assert "context_embedder.token_refiner.refiner_blocks.0.attn.to_q" in paths
    written = save_lora(tmp_path / "lora", peft_state, metadata={"ss_network_dim": "4"})
    assert written.name == "pytorch_lora_weights.safetensors"
    state = load_file(str(written))
    assert set(state) == {peft_key(p, part) for p in paths for part in ("lora_A", "lora_B")}

    fresh = FAMILY.spec.load(tiny.get(ARCH).path)
    pipe = FAMILY.spec.pipeline(fresh)
    with torch.no_grad():
        before = FAMILY.spec.render_video(fresh, "a red cat", 1, 32, 32, 2, pipeline=pipe)
        pipe.load_lora_weights(str(tmp_path / "lora"))
        after = FAMILY.spec.render_video(fresh, "a red cat", 1, 32, 32, 2, pipeline=pipe)
    assert not np.array_equal(np.asarray(before[0]), np.asarray(after[0]))
    with safe_open(str(written), "pt") as opened:
        assert opened.metadata()["ss_network_dim"] == "4"


def test_lora_files_are_told_from_ltx_videos() -> None:
    """Both name dual-stream blocks `transformer.transformer_blocks.N`; HunyuanVideo's single-stream blocks and
    token refiner tell its files apart, and an LTX-Video file stays LTX-Video's alone."""
    from backend.families import network_files

    lora = [peft_key(p, "lora_A") for p in ("transformer_blocks.0.attn.to_q", "single_transformer_blocks.0.attn.to_q",
                                            "single_transformer_blocks.1.attn.to_k",
                                            "context_embedder.token_refiner.refiner_blocks.0.attn.to_q")]
    assert network_files.layouts_of_network_keys(lora)[0] == "hunyuan_video"
    assert network_files.layouts_of_network_keys([peft_key("transformer_blocks.0.attn1.to_q", "lora_A")]) == [
        "ltx_video"]


def test_an_original_transformer_file_is_sent_to_the_folder() -> None:
    """Tencent's own names (`double_blocks.N.img_attn_qkv`), as in mp_rank_00_model_states.pt's state."""
    shapes = {"img_in.proj.weight": (3072, 16, 1, 2, 2), "double_blocks.0.img_attn_qkv.weight": (9216, 3072),
              "txt_in.individual_token_refiner.blocks.0.self_attn_qkv.weight": (9216, 3072)}
    message = DETECTION.part_message({f"module.{k}": v for k, v in shapes.items()}, "hunyuan.pt")
    assert message is not None and "loads HunyuanVideo from a diffusers folder" in message
    assert DETECTION.part_message({"double_blocks.0.img_attn.qkv.weight": (9216, 3072)}, "flux.safetensors") is None


def test_the_tiny_llama_tokenizer_keeps_llama_3s_conventions(hunyuan) -> None:
    tokenizer = hunyuan.tokenizers[0]
    ids = tokenizer(["a red cat", "a red cat walks far"], padding="longest").input_ids
    assert ids[0][0] == ids[1][0] == tokenizer.bos_token_id  # BOS before every sequence
    assert ids[0][-1] == tokenizer.pad_token_id != tokenizer.eos_token_id  # padded on the right with <pad>
    for special in ("<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>"):
        assert len(tokenizer(special, add_special_tokens=False).input_ids) == 1
    assert tokenizer.decode(tokenizer("zebra ünïcode!", add_special_tokens=False).input_ids) == "zebra ünïcode!"
