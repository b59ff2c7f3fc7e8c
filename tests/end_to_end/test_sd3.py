"""SD 3.5 runs as sd-scripts users write them: sd3_train_network from a single file holding every part, with
SD3's weighting flags, cached text-encoder outputs (dropped per encoder), positional-embedding options and a
sample; the LoRA keys in lora_sd3's layout."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
from safetensors import safe_open

from .helpers import base_flags, run_trainer


def keys_of(path: Path) -> tuple[set[str], dict[str, str]]:
    with safe_open(str(path), "pt") as file:
        return set(file.keys()), file.metadata()


@pytest.fixture(scope="module")
def medium_lora_run(tiny, train_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("sd3-out")
    model = tiny.get("sd3-medium", single_file=True)
    prompts = out / "prompts.txt"
    prompts.write_text("a photo of sks dog --n blurry --w 64 --h 64 --d 5 --s 2 --l 4\n")
    flags = base_flags(
        model.path, train_dir, out, *model.trainer_flags()[2:],
        "--enable_bucket", "--min_bucket_reso", "32", "--max_bucket_reso", "128", "--bucket_reso_steps", "32",
        "--network_module", "networks.lora_sd3", "--network_dim", "4", "--network_alpha", "2",
        "--network_train_unet_only", "--cache_text_encoder_outputs", "--cache_text_encoder_outputs_to_disk",
        "--cache_latents", "--weighting_scheme", "logit_normal", "--logit_mean", "0.0", "--logit_std", "1.0",
        "--training_shift", "3.0", "--t5xxl_max_token_length", "16", "--apply_lg_attn_mask",
        # dropped from the cached outputs per step; random windows of scaled position tables (buckets up to
        # 128 px outgrow the 64 px table: a table of their own)
        "--clip_l_dropout_rate", "0.5", "--t5_dropout_rate", "0.5", "--pos_emb_random_crop_rate", "0.5",
        "--enable_scaled_pos_embed",
        "--max_train_steps", "3", "--learning_rate", "1e-3", "--optimizer_type", "AdamW",
        "--mixed_precision", "bf16", "--save_model_as", "safetensors",
        "--sample_prompts", str(prompts), "--sample_every_n_steps", "3",
    )
    result = run_trainer("sd3_train_network", *flags)
    assert result.returncode == 0, result.stderr[-3000:]
    return out, result


def test_an_sd3_lora_trains_from_a_single_file_with_sd_scripts_flags(medium_lora_run, train_dir):
    out, result = medium_lora_run
    losses = result.losses()
    assert sorted(losses) == [1, 2, 3] and all(math.isfinite(v) for v in losses.values())
    assert sorted(p.name for p in train_dir.rglob("*_sd3_te.npz")), "text-encoder outputs cached as sd-scripts names them"
    assert "random windows at rate 0.5; scaled tables for latent sizes 8" in result.stderr
    (sample,) = [Path(e["path"]) for e in result.of("sample")]
    assert sample.is_file()

    keys, metadata = keys_of(out / "tiny.safetensors")
    for name in ("joint_blocks_0_x_block_attn_qkv", "joint_blocks_0_x_block_attn2_qkv", "joint_blocks_0_context_block_attn_qkv",
                 "joint_blocks_0_context_block_mlp_fc2", "joint_blocks_1_x_block_adaLN_modulation_1",
                 "joint_blocks_1_context_block_adaLN_modulation_1"):
        assert f"lora_unet_{name}.lora_down.weight" in keys, name
    assert "lora_unet_joint_blocks_1_context_block_attn_proj.lora_down.weight" not in keys, "the last context half is pre-only"
    assert not any(key.startswith("lora_te") for key in keys), "--network_train_unet_only"
    assert metadata["ss_base_model_version"] == "5-medium"
    assert metadata["modelspec.architecture"] == "stable-diffusion-3-5-medium/lora"
    assert metadata["ss_network_module"] == "networks.lora_sd3"
    assert "modelspec.prediction_type" not in metadata
    assert metadata["ss_weighting_scheme"] == "logit_normal" and metadata["ss_apply_lg_attn_mask"] == "True"


def test_a_large_folder_lora_trains_both_clips(tiny, train_dir, tmp_path):
    model = tiny.get("sd3-large")
    flags = base_flags(
        model.path, train_dir, tmp_path, "--network_module", "networks.lora", "--network_dim", "4",
        "--max_train_steps", "2", "--learning_rate", "1e-3", "--save_model_as", "safetensors",
        "--t5xxl_max_token_length", "16", "--weighting_scheme", "mode", "--gradient_checkpointing", "--sdpa",
    )
    result = run_trainer("sd3_train_network", *flags)
    assert result.returncode == 0, result.stderr[-3000:]
    keys, metadata = keys_of(tmp_path / "tiny.safetensors")
    assert any(key.startswith("lora_te1_text_model_encoder_layers_0_") for key in keys)
    assert any(key.startswith("lora_te2_text_model_encoder_layers_0_") for key in keys)
    assert not any(key.startswith("lora_te3_") for key in keys), "T5 only with train_t5xxl=True"
    assert not any("attn2" in key for key in keys), "Large has no dual attention"
    assert metadata["modelspec.architecture"] == "stable-diffusion-3-5-large/lora"


def test_an_sd3_fine_tune_writes_a_whole_single_file_that_loads_back(tiny, train_dir, tmp_path):
    import torch

    from backend.families.loaded import get_spec
    from backend.models.detect import detect_model

    model = tiny.get("sd3-medium", single_file=True)
    flags = base_flags(
        model.path, train_dir, tmp_path, *model.trainer_flags()[2:], "--max_train_steps", "2",
        "--learning_rate", "1e-4", "--save_model_as", "safetensors", "--t5xxl_max_token_length", "16",
        "--optimizer_type", "AdamW", "--mixed_precision", "bf16",
    )
    result = run_trainer("sd3_train", *flags)
    assert result.returncode == 0, result.stderr[-3000:]
    saved = tmp_path / "tiny.safetensors"
    keys, metadata = keys_of(saved)
    assert "model.diffusion_model.joint_blocks.0.x_block.attn2.qkv.weight" in keys
    assert any(k.startswith("first_stage_model.") for k in keys) and any(k.startswith("text_encoders.t5xxl.") for k in keys)
    assert metadata["modelspec.architecture"] == "stable-diffusion-3-5-medium"
    assert detect_model(saved).family == "sd3_medium"
    before = get_spec("sd3_medium").load(model.path, tokenizer_cache_dir=model.tokenizer_cache_dir)
    after = get_spec("sd3_medium").load(saved, tokenizer_cache_dir=model.tokenizer_cache_dir)
    changed = [name for name, value in after.unet.state_dict().items()
               if not torch.equal(value, before.unet.state_dict()[name])]
    assert changed, "the MMDiT was trained"


def test_preflight_names_the_parts_a_single_file_lacks(tiny, train_dir, tmp_path):
    import json

    from safetensors.torch import load_file, save_file

    model = tiny.get("sd3-large", single_file=True)
    with safe_open(str(model.path), "pt") as file:
        metadata = file.metadata()
    state = load_file(str(model.path))
    lean = tmp_path / "sd3.5_large.safetensors"  # the MMDiT and VAE, as SAI's own sd3.5_large.safetensors
    save_file({k: v for k, v in state.items() if not k.startswith("text_encoders.")}, str(lean), metadata)
    flags = base_flags(lean, train_dir, tmp_path / "out", "--tokenizer_cache_dir", str(model.tokenizer_cache_dir),
                       "--network_module", "networks.lora", "--preflight")
    result = run_trainer("sd3_train_network", *flags, "--clip_g", str(model.path))
    assert result.returncode == 1
    report = json.loads(result.stdout)
    assert any("without --clip_l --t5xxl: give them as files of their own" in e for e in report["errors"]), report
    assert not any("--vae" in e for e in report["errors"])  # the file holds its VAE
