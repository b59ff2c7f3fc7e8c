"""FLUX.1 runs as sd-scripts users write them: flux_train_network from the BFL files people have
(transformer, --ae, --clip_l, --t5xxl) with the recommended flow-matching flags, cached text-encoder
outputs and samples with distilled guidance; a LoRA on a diffusers schnell folder that trains CLIP-L
too; a full fine-tune that writes a BFL transformer file which loads back."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
from safetensors import safe_open

from backend.families.loaded import get_spec
from backend.models.detect import detect_model

from .helpers import base_flags, run_trainer


def keys_of(path: Path) -> tuple[set[str], dict[str, str]]:
    with safe_open(str(path), "pt") as file:
        return set(file.keys()), file.metadata()


@pytest.fixture(scope="module")
def dev_lora_run(tiny, train_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("flux-out")
    model = tiny.get("flux-dev", single_file=True)
    prompts = out / "prompts.txt"
    prompts.write_text("a photo of sks dog --w 64 --h 64 --d 5 --s 2 --g 3.5\n")
    flags = base_flags(
        model.path, train_dir, out, *model.trainer_flags()[2:],
        "--enable_bucket", "--min_bucket_reso", "32", "--max_bucket_reso", "128", "--bucket_reso_steps", "32",
        "--network_module", "networks.lora", "--network_dim", "4", "--network_alpha", "2",
        "--network_train_unet_only", "--cache_text_encoder_outputs", "--cache_text_encoder_outputs_to_disk",
        "--cache_latents", "--timestep_sampling", "shift", "--discrete_flow_shift", "3.1582",
        "--model_prediction_type", "raw", "--guidance_scale", "1.0", "--t5xxl_max_token_length", "16",
        "--max_train_steps", "3", "--learning_rate", "1e-3", "--optimizer_type", "AdamW",
        "--mixed_precision", "bf16", "--save_model_as", "safetensors",
        "--sample_prompts", str(prompts), "--sample_every_n_steps", "3",
    )
    result = run_trainer("flux_train_network", *flags)
    assert result.returncode == 0, result.stderr[-3000:]
    return out, result


def test_a_flux_lora_trains_from_bfl_files_with_sd_scripts_flags(dev_lora_run, train_dir):
    out, result = dev_lora_run
    losses = result.losses()
    assert sorted(losses) == [1, 2, 3] and all(math.isfinite(v) for v in losses.values())
    assert sorted(p.name for p in train_dir.rglob("*_flux_te.npz")), "T5/CLIP outputs cached as sd-scripts names them"
    (sample,) = [Path(e["path"]) for e in result.of("sample")]
    assert sample.is_file()

    keys, metadata = keys_of(out / "tiny.safetensors")
    assert "lora_unet_double_blocks_0_img_attn_qkv.lora_down.weight" in keys
    assert "lora_unet_single_blocks_0_linear1.lora_up.weight" in keys
    assert not any(key.startswith("lora_te") for key in keys), "--network_train_unet_only"
    assert metadata["ss_base_model_version"] == "flux1"
    assert metadata["modelspec.architecture"] == "flux-1-dev/lora"
    assert metadata["modelspec.implementation"] == "https://github.com/black-forest-labs/flux"
    assert "modelspec.prediction_type" not in metadata
    assert metadata["ss_guidance_scale"] == "1.0" and metadata["ss_timestep_sampling"] == "shift"
    assert metadata["ss_model_prediction_type"] == "raw"


def test_a_schnell_folder_lora_trains_clip_l_too(tiny, train_dir, tmp_path):
    model = tiny.get("flux-schnell")
    flags = base_flags(
        model.path, train_dir, tmp_path, "--network_module", "networks.lora", "--network_dim", "4",
        "--max_train_steps", "2", "--learning_rate", "1e-3", "--save_model_as", "safetensors",
        "--t5xxl_max_token_length", "16", "--apply_t5_attn_mask", "--timestep_sampling", "sigmoid",
    )
    result = run_trainer("flux_train_network", *flags)
    assert result.returncode == 0, result.stderr[-3000:]
    keys, metadata = keys_of(tmp_path / "tiny.safetensors")
    assert any(key.startswith("lora_te1_text_model_encoder_layers_0_") for key in keys), sorted(keys)[:5]
    assert not any(key.startswith("lora_te3_") for key in keys), "T5 only with train_t5xxl=True"
    assert metadata["modelspec.architecture"] == "flux-1-schnell/lora"
    assert metadata["ss_apply_t5_attn_mask"] == "True"


def test_a_flux_fine_tune_writes_a_bfl_transformer_that_loads_back(tiny, train_dir, tmp_path):
    model = tiny.get("flux-dev", single_file=True)
    flags = base_flags(
        model.path, train_dir, tmp_path, *model.trainer_flags()[2:], "--max_train_steps", "2",
        "--learning_rate", "1e-4", "--save_model_as", "safetensors", "--t5xxl_max_token_length", "16",
        # the shipped flux_dev_finetune_48gb preset's memory settings
        "--optimizer_type", "Adafactor", "--optimizer_args", "scale_parameter=False", "relative_step=False",
        "warmup_init=False", "--fused_backward_pass", "--mixed_precision", "bf16", "--full_bf16",
    )
    result = run_trainer("flux_train", *flags)
    assert result.returncode == 0, result.stderr[-3000:]
    saved = tmp_path / "tiny.safetensors"
    keys, metadata = keys_of(saved)
    assert "double_blocks.0.img_attn.qkv.weight" in keys and not any(k.startswith("vae.") for k in keys)
    assert metadata["modelspec.architecture"] == "flux-1-dev"
    info = detect_model(saved)
    assert info.family == "flux_dev"
    flags_files = dict(zip(model.trainer_flags()[2::2], model.trainer_flags()[3::2], strict=False))
    files = {name.removeprefix("--"): value for name, value in flags_files.items() if name != "--tokenizer_cache_dir"}
    before = get_spec("flux_dev").load(model.path, files=files, tokenizer_cache_dir=model.tokenizer_cache_dir)
    after = get_spec("flux_dev").load(saved, files=files, tokenizer_cache_dir=model.tokenizer_cache_dir)
    changed = [name for name, value in after.unet.state_dict().items()
               if not torch.equal(value, before.unet.state_dict()[name])]
    assert changed, "the transformer was trained"
