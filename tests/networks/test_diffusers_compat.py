"""diffusers' own LoRA loader reads our SD 1.x files and computes the same U-Net output."""

from __future__ import annotations

import copy

import pytest
import torch
from diffusers import AutoencoderKL, DDPMScheduler, StableDiffusionPipeline

from backend.networks import lora

from .helpers import randomize_up, te_out, unet_inputs, unet_out

pytest.importorskip("peft", reason="diffusers loads LoRA files through peft")


def test_diffusers_load_lora_weights_accepts_our_sd1_file(sd1, tmp_path):
    te, unet = sd1
    inputs = unet_inputs(unet)
    base_te, base_unet = copy.deepcopy(te), copy.deepcopy(unet)
    network = lora.create_network(1.0, 4, 2, None, te, unet, conv_dim="2", conv_alpha="1")
    network.apply_to(te, unet, True, True)
    randomize_up(network)
    expected_unet, expected_te = unet_out(unet, inputs), te_out(te)
    path = tmp_path / "sd1_lora.safetensors"
    network.save_weights(path, torch.float32, {"ss_network_module": "networks.lora"})

    torch.manual_seed(0)
    vae = AutoencoderKL(block_out_channels=(8,), norm_num_groups=4, latent_channels=4, sample_size=16)
    pipe = StableDiffusionPipeline(
        vae=vae, text_encoder=base_te, tokenizer=None, unet=base_unet, scheduler=DDPMScheduler(),
        safety_checker=None, feature_extractor=None, requires_safety_checker=False,
    )
    before = unet_out(pipe.unet, inputs)
    pipe.load_lora_weights(str(tmp_path), weight_name=path.name)
    after = unet_out(pipe.unet, inputs)
    assert not torch.allclose(after, before)
    torch.testing.assert_close(after, expected_unet, atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(te_out(pipe.text_encoder), expected_te, atol=1e-5, rtol=1e-4)
