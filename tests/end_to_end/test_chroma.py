"""Chroma runs as sd-scripts users write them: flux_train_network --model_type chroma from the Chroma file
plus FLUX.1's --ae and --t5xxl (no --clip_l), --apply_t5_attn_mask, cached T5 outputs and a sample with true
CFG; the LoRA carries sd-scripts' lora_flux names and Chroma's metadata and loads back by --network_weights;
a fine-tune writes a BFL Chroma transformer that loads back; mismatched --model_type is refused."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
from safetensors import safe_open

from backend.families.loaded import get_spec
from backend.models.detect import detect_model

from .helpers import base_flags, make_images, run_trainer


def keys_of(path: Path) -> tuple[set[str], dict[str, str]]:
    with safe_open(str(path), "pt") as file:
        return set(file.keys()), file.metadata()


def chroma_flags(model, train_dir: Path, out: Path, *extra: str) -> list[str]:
    return base_flags(
        model.path, train_dir, out, *model.trainer_flags()[2:], "--model_type", "chroma", "--apply_t5_attn_mask",
        "--t5xxl_max_token_length", "16", "--guidance_scale", "0.0", "--timestep_sampling", "sigmoid",
        "--save_model_as", "safetensors", *extra,
    )


@pytest.fixture(scope="module")
def chroma_lora_run(tiny, tmp_path_factory):
    root = tmp_path_factory.mktemp("chroma-data") / "train"
    make_images(root / "2_sks dog", 2, sizes=[(64, 64), (64, 96)])
    out = tmp_path_factory.mktemp("chroma-out")
    model = tiny.get("chroma", single_file=True)
    prompts = out / "prompts.txt"
    prompts.write_text("a photo of sks dog --n low quality --w 64 --h 64 --d 5 --s 2 --l 4.0 --g 0\n")
    flags = chroma_flags(
        model, root, out, "--network_module", "networks.lora", "--network_dim", "4", "--network_alpha", "2",
        "--network_train_unet_only", "--cache_text_encoder_outputs", "--cache_text_encoder_outputs_to_disk",
        "--cache_latents", "--max_train_steps", "3", "--learning_rate", "1e-3", "--optimizer_type", "AdamW",
        "--gradient_checkpointing", "--sample_prompts", str(prompts), "--sample_every_n_steps", "3",
    )
    result = run_trainer("flux_train_network", *flags)
    assert result.returncode == 0, result.stderr[-3000:]
    return model, root, out, result


def test_a_chroma_lora_trains_from_the_files_sd_scripts_takes(chroma_lora_run):
    _, root, out, result = chroma_lora_run
    losses = result.losses()
    assert sorted(losses) == [1, 2, 3] and all(math.isfinite(v) for v in losses.values())
    assert sorted(p.name for p in root.rglob("*_chroma_te.npz")), "T5 outputs cached beside the images"
    assert not list(root.rglob("*_flux_te.npz")), "a FLUX.1 run never reads Chroma's T5 outputs as its own"
    (sample,) = [Path(e["path"]) for e in result.of("sample")]
    assert sample.is_file()

    keys, metadata = keys_of(out / "tiny.safetensors")
    assert "lora_unet_double_blocks_0_img_attn_qkv.lora_down.weight" in keys
    assert "lora_unet_single_blocks_1_linear1.lora_up.weight" in keys
    assert not any("_mod_" in key or "modulation" in key for key in keys), "Chroma has no modulation Linears"
    assert not any(key.startswith("lora_te") for key in keys), "--network_train_unet_only"
    assert metadata["ss_base_model_version"] == "chroma"
    assert metadata["modelspec.architecture"] == "chroma/lora"
    assert metadata["modelspec.implementation"] == "https://huggingface.co/lodestones/Chroma"
    assert metadata["ss_model_type"] == "chroma" and metadata["ss_apply_t5_attn_mask"] == "True"


def test_a_chroma_lora_continues_by_network_weights(chroma_lora_run, tmp_path):
    """Also: FLUX.1-only settings sd-scripts ignores for Chroma (--clip_l, a guidance scale) are said to be ignored."""
    model, root, out, _ = chroma_lora_run
    flags = chroma_flags(model, root, tmp_path, "--network_module", "networks.lora", "--network_dim", "4",
                         "--network_alpha", "2", "--network_train_unet_only", "--max_train_steps", "1",
                         "--learning_rate", "1e-3", "--network_weights", str(out / "tiny.safetensors"),
                         "--clip_l", str(model.part_files["t5xxl"]), "--guidance_scale", "1.0")
    result = run_trainer("flux_train_network", *flags)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "lora_unet_double_blocks_0_img_attn_qkv.lora_down.weight" in keys_of(tmp_path / "tiny.safetensors")[0]
    said = result.stdout + result.stderr
    assert "--clip_l: Chroma has no such part; ignored" in said
    assert "--guidance_scale 1.0 has no effect on Chroma" in said


def test_a_chroma_fine_tune_writes_a_bfl_transformer_that_loads_back(tiny, train_dir, tmp_path):
    model = tiny.get("chroma", single_file=True)
    flags = chroma_flags(
        model, train_dir, tmp_path, "--max_train_steps", "2", "--learning_rate", "1e-4",
        # the shipped chroma_finetune_48gb preset's memory settings
        "--optimizer_type", "Adafactor", "--optimizer_args", "scale_parameter=False", "relative_step=False",
        "warmup_init=False", "--fused_backward_pass", "--mixed_precision", "bf16", "--full_bf16",
        "--gradient_checkpointing",
    )
    result = run_trainer("flux_train", *flags)
    assert result.returncode == 0, result.stderr[-3000:]
    saved = tmp_path / "tiny.safetensors"
    keys, metadata = keys_of(saved)
    assert "distilled_guidance_layer.in_proj.weight" in keys and "double_blocks.0.img_attn.qkv.weight" in keys
    assert metadata["modelspec.architecture"] == "chroma"
    assert detect_model(saved).family == "chroma"
    files = {"ae": str(model.part_files["ae"]), "t5xxl": str(model.part_files["t5xxl"])}
    before = get_spec("chroma").load(model.path, files=files, tokenizer_cache_dir=model.tokenizer_cache_dir)
    after = get_spec("chroma").load(saved, files=files, tokenizer_cache_dir=model.tokenizer_cache_dir)
    assert any(not torch.equal(value, before.unet.state_dict()[name])
               for name, value in after.unet.state_dict().items()), "the transformer was trained"


@pytest.mark.parametrize(("arch", "given", "wanted"), [("chroma", "flux", "chroma"), ("flux-schnell", "chroma", "flux")])
def test_a_model_type_the_file_contradicts_is_refused(tiny, train_dir, tmp_path, arch, given, wanted):
    model = tiny.get(arch, single_file=True)
    flags = base_flags(model.path, train_dir, tmp_path, *model.trainer_flags()[2:], "--model_type", given,
                       "--apply_t5_attn_mask", "--max_train_steps", "1")
    result = run_trainer("flux_train_network", *flags)
    assert result.returncode != 0
    assert f"--model_type is {given} (given or its default); use --model_type {wanted}" in result.stderr, (
        result.stderr[-2000:])


def test_chroma_without_the_t5_mask_is_refused(tiny, train_dir, tmp_path):
    model = tiny.get("chroma", single_file=True)
    flags = base_flags(model.path, train_dir, tmp_path, *model.trainer_flags()[2:], "--model_type", "chroma",
                       "--max_train_steps", "1")
    result = run_trainer("flux_train_network", *flags)
    assert result.returncode != 0 and "Chroma needs --apply_t5_attn_mask" in result.stderr, result.stderr[-2000:]
