"""Key tables against the real architectures (modules built on the meta device) and diffusers' own
converter, plus the module-path mapping that SDXL LoRA naming needs."""

from __future__ import annotations

import pytest
import torch
from accelerate import init_empty_weights
from diffusers import AutoencoderKL, UNet2DConditionModel
from diffusers.loaders.single_file_utils import convert_ldm_unet_checkpoint, convert_ldm_vae_checkpoint
from transformers import CLIPTextConfig

from backend.models.checkpoint import ComponentStates, join_original, split_original
from backend.models.configs import load_arch_configs
from backend.models.keymap_text import from_module_keys
from backend.models.keymap_unet import (
    UNET_PREFIX,
    unet_module_to_diffusers,
    unet_module_to_original,
    unet_to_diffusers,
    unet_to_original,
)
from backend.models.keymap_vae import VAE_PREFIX, vae_to_diffusers, vae_to_original
from backend.models.loading import build_modules, text_encoder_class

SDXL_MODULES = {
    "down_blocks.1.attentions.0.transformer_blocks.0.attn1.to_q": "input_blocks.4.1.transformer_blocks.0.attn1.to_q",
    "down_blocks.2.attentions.1.transformer_blocks.9.ff.net.2": "input_blocks.8.1.transformer_blocks.9.ff.net.2",
    "down_blocks.0.resnets.1.time_emb_proj": "input_blocks.2.0.emb_layers.1",
    "down_blocks.0.resnets.0.conv1": "input_blocks.1.0.in_layers.2",
    "down_blocks.1.resnets.0.conv_shortcut": "input_blocks.4.0.skip_connection",
    "down_blocks.0.downsamplers.0.conv": "input_blocks.3.0.op",
    "mid_block.attentions.0.proj_in": "middle_block.1.proj_in",
    "mid_block.resnets.1.norm2": "middle_block.2.out_layers.0",
    "up_blocks.0.attentions.2.transformer_blocks.0.attn2.to_k": "output_blocks.2.1.transformer_blocks.0.attn2.to_k",
    "up_blocks.0.upsamplers.0.conv": "output_blocks.2.2.conv",
    "up_blocks.2.resnets.2.conv2": "output_blocks.8.0.out_layers.3",
    "add_embedding.linear_1": "label_emb.0.0",
    "time_embedding.linear_2": "time_embed.2",
    "conv_in": "input_blocks.0.0",
    "conv_out": "out.2",
}
SD1_MODULES = {
    "down_blocks.3.resnets.1": "input_blocks.11.0",
    "down_blocks.2.attentions.1.proj_in": "input_blocks.8.1.proj_in",
    "up_blocks.0.upsamplers.0.conv": "output_blocks.2.1.conv",
    "up_blocks.1.upsamplers.0.conv": "output_blocks.5.2.conv",
    "up_blocks.3.attentions.2.transformer_blocks.0.attn1.to_out.0": "output_blocks.11.1.transformer_blocks.0.attn1.to_out.0",
}


@pytest.mark.parametrize("arch, table", [("sdxl", SDXL_MODULES), ("sd15", SD1_MODULES)])
def test_module_paths_map_both_ways(arch: str, table: dict[str, str]) -> None:
    config = load_arch_configs(arch).unet
    for diffusers_path, original_path in table.items():
        assert unet_module_to_original(diffusers_path, config) == original_path
        assert unet_module_to_diffusers(original_path, config) == diffusers_path


def test_unknown_module_path_is_an_error() -> None:
    with pytest.raises(KeyError, match="no original-layout name"):
        unet_module_to_original("down_blocks.9.resnets.0", load_arch_configs("sdxl").unet)


def _meta_state(module_cls: type, config: dict) -> dict[str, torch.Tensor]:
    with init_empty_weights():
        return module_cls.from_config(config).state_dict()


@pytest.mark.parametrize("arch, count", [("sd15", 686), ("sd2", 686), ("sdxl", 1680)])
def test_real_unet_tables_agree_with_diffusers_converter(arch: str, count: int) -> None:
    config = load_arch_configs(arch).unet
    state = _meta_state(UNet2DConditionModel, config)
    original = unet_to_original(state, config)
    assert len(original) == len(state) == count
    assert unet_to_diffusers(original, config).keys() == state.keys()
    theirs = convert_ldm_unet_checkpoint({UNET_PREFIX + k: v for k, v in original.items()}, config)
    assert theirs.keys() == state.keys()
    assert all(theirs[k] is state[k] for k in state)


@pytest.mark.parametrize("arch", ["sd15", "sdxl"])
def test_real_vae_tables_agree_with_diffusers_converter(arch: str) -> None:
    config = load_arch_configs(arch).vae
    state = _meta_state(AutoencoderKL, config)
    original = vae_to_original(state, config)
    assert original["decoder.mid.attn_1.q.weight"].shape == (512, 512, 1, 1)
    # The decoder's last diffusers level (512 -> 128 channels) is the original up.0.
    assert original["decoder.up.0.block.0.nin_shortcut.weight"].shape == (128, 256, 1, 1)
    back = vae_to_diffusers(original, config)
    assert {k: tuple(v.shape) for k, v in back.items()} == {k: tuple(v.shape) for k, v in state.items()}
    theirs = convert_ldm_vae_checkpoint({VAE_PREFIX + k: v for k, v in original.items()}, config)
    assert {k: tuple(v.shape) for k, v in theirs.items()} == {k: tuple(v.shape) for k, v in state.items()}


@pytest.mark.parametrize("arch", ["sd15", "sd2-v", "sdxl"])
def test_real_architecture_round_trips_on_meta(arch: str) -> None:
    """Shipped configs -> original-layout keys/shapes -> modules, without allocating real weights."""
    configs = load_arch_configs(arch)
    with init_empty_weights():
        unet = UNet2DConditionModel.from_config(configs.unet)
        vae = AutoencoderKL.from_config(configs.vae)
        tes = [text_encoder_class(c)(CLIPTextConfig.from_dict(c)) for c in configs.text_encoders]
    states = ComponentStates(
        unet.state_dict(), vae.state_dict(), [from_module_keys(te.state_dict(), te) for te in tes]
    )
    original = join_original(states, configs)
    if arch == "sd2-v":  # OpenCLIP-H on disk: 24 blocks, fused qkv, unused projection
        assert original["cond_stage_model.model.transformer.resblocks.23.attn.in_proj_weight"].shape == (
            3072,
            1024,
        )
        assert original["cond_stage_model.model.text_projection"].shape == (1024, 1024)
    if arch == "sdxl":
        assert original["conditioner.embedders.1.model.text_projection"].shape == (1280, 1280)
        assert original["conditioner.embedders.1.model.transformer.resblocks.31.ln_2.weight"].shape == (1280,)
        assert original["model.diffusion_model.label_emb.0.0.weight"].shape == (1280, 2816)
    split = split_original(original, configs)
    built_unet, built_vae, built_tes = build_modules(
        configs, split.unet, split.vae, split.text_encoders, torch.float16
    )
    assert built_unet.state_dict().keys() == unet.state_dict().keys()
    assert built_vae.state_dict().keys() == vae.state_dict().keys()
    for built, te in zip(built_tes, tes, strict=True):
        assert {k: v.shape for k, v in built.state_dict().items()} == {
            k: v.shape for k, v in te.state_dict().items()
        }
