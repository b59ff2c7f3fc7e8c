"""sd-scripts' model and run-position flags on the tiny models: --vae, --base_weights(_multiplier), --initial_step /
--initial_epoch / --skip_until_initial_step, --disable_mmap_load_safetensors, --highvram, and the flags sd-scripts
parses but ignores on some commands (--fp8_base on a fine-tune, --fused_backward_pass on a network)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from diffusers import AutoencoderKL
from safetensors import safe_open
from safetensors.torch import save_file

from backend.families.loaded import family
from backend.models.keymap_vae import vae_to_original
from backend.networks.loader import create_network, load_network_module
from backend.options.arguments import parse_args
from backend.training.base_weights import BaseWeightsConfig, merge_base_weights
from backend.training.preflight import build_plan

from .finetune_helpers import weights
from .helpers import base_flags, run_trainer


@pytest.fixture(scope="module")
def lora_file(tiny, tmp_path_factory) -> Path:
    """A LoRA for the tiny SD 1.5 whose every module changes the model (random up weights, not zeros)."""
    components = family("sd1").spec.load(tiny.get("sd15").path)
    torch.manual_seed(5)
    network = create_network(load_network_module("networks.lora"), 1.0, 4, 2.0, components.vae,
                             components.text_encoders[0], components.unet)
    with torch.no_grad():
        for name, parameter in network.named_parameters():
            if "lora_up" in name:
                parameter.normal_(std=0.5)
    path = tmp_path_factory.mktemp("base-weights") / "style.safetensors"
    network.save_weights(str(path), None, {})
    return path


def _outputs(components) -> tuple[torch.Tensor, torch.Tensor]:
    torch.manual_seed(0)
    ids = torch.randint(0, 100, (1, 77))
    text = components.text_encoders[0](ids).last_hidden_state
    latents = torch.randn(1, components.unet.config.in_channels, 8, 8)
    with torch.no_grad():
        return text, components.unet(latents, 500, encoder_hidden_states=text).sample


def test_base_weights_merge_as_the_network_hooked_in_at_its_multiplier(tiny, lora_file):
    spec, path = family("sd1").spec, tiny.get("sd15").path
    plain = _outputs(spec.load(path))
    hooked = spec.load(path)
    network, state = load_network_module("networks.lora").create_network_from_weights(
        0.5, lora_file, hooked.vae, hooked.text_encoders[0], hooked.unet, for_inference=True)
    network.apply_to(hooked.text_encoders[0], hooked.unet, True, True)
    network.load_weights_sd(state)
    merged = spec.load(path)
    merge_base_weights(BaseWeightsConfig("networks.lora", [str(lora_file)], [0.5]), merged)
    for with_hooks, with_merge, without in zip(_outputs(hooked), _outputs(merged), plain, strict=True):
        torch.testing.assert_close(with_merge, with_hooks, atol=1e-4, rtol=1e-4)
        assert not torch.allclose(with_merge, without, atol=1e-3)


def test_preflight_checks_the_files_and_names_the_ignored_flags(tiny, train_dir, tmp_path, lora_file):
    model = tiny.get("sd15").path
    unet = model / "unet" / "diffusion_pytorch_model.safetensors"

    def plan(command, model, *extra):
        return build_plan(parse_args(command, base_flags(model, train_dir, tmp_path, *extra)), command)

    found = plan("train_network", model, "--vae", str(tmp_path / "none.safetensors"), "--base_weights",
                 str(lora_file), str(unet), "--initial_step", "8", "--max_train_steps", "8", "--fused_backward_pass")
    vae_error, step_error, weights_error = found.errors
    assert vae_error.startswith(f"--vae {tmp_path / 'none.safetensors'}: not found. Give a VAE file")
    assert step_error.startswith("the run starts at step 8 (--initial_step/--initial_epoch) but has 8 steps")
    assert weights_error.startswith(f"--base_weights {unet}: none of its")  # the LoRA is fine, the U-Net is not
    assert any(w.startswith("--fused_backward_pass has no effect on train_network: a network or an embedding is "
                            "stepped after the backward pass") for w in found.warnings)
    found = plan("sdxl_train", tiny.get("sdxl").path, "--vae", str(unet), "--fp8_base")
    assert found.errors == [f"--vae {unet}: not a VAE in the original or diffusers layout (original VAE key "
                            "'conv_in.bias' does not fit the [16, 32, 32, 32] config). Give a VAE file (e.g. "
                            "sdxl_vae.safetensors, vae-ft-mse-840000-ema-pruned.safetensors) or a whole checkpoint "
                            "whose VAE to take"]
    assert any(w.startswith("--fp8_base has no effect on sdxl_train: a fine-tune trains") for w in found.warnings)


def test_a_lora_on_merged_base_weights_counts_from_the_initial_step(tiny, train_dir, tmp_path, lora_file):
    # 3 images x 2 repeats, batch 1: 6 steps an epoch. Step 3 is in epoch 1, after 3 batches gone through.
    vae = tiny.get("sd15", single_file=True).path  # a whole checkpoint as --vae: its VAE is taken
    result = run_trainer("train_network", *base_flags(
        tiny.get("sd15").path, train_dir, tmp_path, "--max_train_steps", "5", "--learning_rate", "1e-3",
        "--base_weights", str(lora_file), "--base_weights_multiplier", "0.5", "--initial_step", "3",
        "--skip_until_initial_step", "--save_every_n_steps", "4", "--vae", str(vae),
    ))
    assert result.returncode == 0, result.stderr[-3000:]
    assert "merged into the model at multiplier 0.5" in result.stderr
    assert result.of("start")[0]["initial_step"] == 3
    assert [(e["step"], e["epoch"]) for e in result.of("step")] == [(4, 1), (5, 1)]
    assert [Path(e["path"]).name for e in result.of("checkpoint")] == ["tiny-step00000004.safetensors",
                                                                        "tiny.safetensors"]
    with safe_open(str(tmp_path / "tiny.safetensors"), "pt") as file:
        tensors, metadata = set(file.keys()), file.metadata()
    assert metadata["ss_steps"] == "5" and metadata["ss_epoch"] == "1"
    assert metadata["ss_vae_name"] == vae.name and len(metadata["ss_new_vae_hash"]) == 64  # as sd-scripts records
    with safe_open(str(lora_file), "pt") as file:
        assert tensors == set(file.keys())  # the new network alone, shaped as built, not the merged one


def test_a_fine_tune_with_its_own_vae_saves_that_vae(tiny, train_dir, tmp_path):
    model = tiny.get("sdxl")  # a diffusers folder, read whole with --disable_mmap_load_safetensors
    config = dict(family("sdxl").spec.load(model.path).configs.vae)
    torch.manual_seed(9)
    vae = AutoencoderKL.from_config(config)
    vae_file = tmp_path / "sdxl_vae.safetensors"
    save_file({k: v.contiguous() for k, v in vae_to_original(vae.state_dict(), config).items()}, vae_file)
    result = run_trainer("sdxl_train", *base_flags(
        model.path, train_dir, tmp_path / "out", "--max_train_steps", "1", "--learning_rate", "1e-3", "--vae",
        str(vae_file), "--disable_mmap_load_safetensors", "--cache_latents", "--highvram",
    ))
    assert result.returncode == 0, result.stderr[-3000:]
    assert "replaces the model's VAE" in result.stderr
    saved = weights(tmp_path / "out" / "tiny.safetensors", tiny.get("sdxl", single_file=True).tokenizer_cache_dir)
    wanted = vae.state_dict()
    assert all(torch.equal(saved["vae"][key], wanted[key]) for key in wanted)  # sd-scripts saves the VAE it used
