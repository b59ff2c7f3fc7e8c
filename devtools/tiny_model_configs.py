"""Configs of the tiny test models: the real family configs with small widths.

Everything that decides module names and key layout is kept from the real model (block types,
two resnets per level, linear vs. conv projections, SDXL's text_time embedding and its three levels
so ``input_blocks.4.1``/``input_blocks.7.1`` exist, SD 2.x's extra OpenCLIP block on disk); only
widths, depths of the transformer stacks and the vocabulary shrink. The VAE keeps four levels so
latents are 1/8 of the image size, as trainers and bucketing assume.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

from backend.families import of_config_set
from backend.models.configs import ArchConfigs, load_arch_configs

TINY_TEXT = {"hidden_size": 32, "intermediate_size": 64, "num_attention_heads": 2, "num_hidden_layers": 3}
TINY_TEXT_2 = {"hidden_size": 64, "intermediate_size": 128, "num_attention_heads": 2, "num_hidden_layers": 3}
TINY_VAE = {
    "block_out_channels": [16, 32, 32, 32],
    "layers_per_block": 1,
    "norm_num_groups": 8,
    "sample_size": 64,
}


# FLUX.1: 1 double + 2 single blocks, 2 heads x 16 (rope axes sum to the head width), T5 with 2 layers.
TINY_T5 = {"d_model": 32, "d_ff": 64, "d_kv": 16, "num_heads": 2, "num_layers": 2, "num_decoder_layers": 2}
TINY_FLUX = {"num_layers": 1, "num_single_layers": 2, "num_attention_heads": 2, "attention_head_dim": 16,
             "axes_dims_rope": [4, 4, 8]}


def _flux(real: ArchConfigs, tokens: list[dict[str, int]]) -> ArchConfigs:
    """FLUX.1's tiny configs: the 16-channel VAE keeps four levels (latents 1/8 of the image, packed 2x2)."""
    clip = _text(real.text_encoders[0], TINY_TEXT, tokens[0], projection_dim=32)
    t5_tokens = {k: v for k, v in tokens[1].items() if k != "bos_token_id"}  # T5 has no BOS
    t5 = {**real.text_encoders[1], **TINY_T5, **t5_tokens, "decoder_start_token_id": t5_tokens["pad_token_id"]}
    transformer = {**real.unet, **TINY_FLUX, "joint_attention_dim": t5["d_model"],
                   "pooled_projection_dim": clip["hidden_size"]}
    vae = {**real.vae, **TINY_VAE}
    return ArchConfigs(real.family, transformer, vae, [clip, t5], dict(real.scheduler), dict(real.model_index))


# Chroma: FLUX.1's tiny widths; an approximator of 2 layers, 32 wide, over 16 input channels (4 each for the
# timestep and the guidance, 8 for the modulation index).
TINY_CHROMA = {**TINY_FLUX, "approximator_num_channels": 16, "approximator_hidden_dim": 32,
               "approximator_layers": 2}


def _chroma(real: ArchConfigs, tokens: list[dict[str, int]]) -> ArchConfigs:
    """Chroma's tiny configs: FLUX.1's, with T5 its only text encoder."""
    t5_tokens = {k: v for k, v in tokens[0].items() if k != "bos_token_id"}  # T5 has no BOS
    t5 = {**real.text_encoders[0], **TINY_T5, **t5_tokens, "decoder_start_token_id": t5_tokens["pad_token_id"]}
    transformer = {**real.unet, **TINY_CHROMA, "joint_attention_dim": t5["d_model"]}
    vae = {**real.vae, **TINY_VAE}
    return ArchConfigs(real.family, transformer, vae, [t5], dict(real.scheduler), dict(real.model_index))
# SD 3.5: 2 joint blocks (Medium: the first with dual attention), 2 heads x 16, both CLIPs 32 wide (their
# states side by side fit T5's 64), so the pooled projection is 64 wide.
TINY_SD3_T5 = {**TINY_T5, "d_model": 64, "d_ff": 128, "d_kv": 32}
TINY_SD3 = {"num_layers": 2, "num_attention_heads": 2, "attention_head_dim": 16, "caption_projection_dim": 32,
            "sample_size": 16, "pos_embed_max_size": 32}


def _sd3(real: ArchConfigs, tokens: list[dict[str, int]]) -> ArchConfigs:
    clip_l = _text(real.text_encoders[0], TINY_TEXT, tokens[0], projection_dim=32)
    clip_g = _text(real.text_encoders[1], TINY_TEXT, tokens[1], projection_dim=32)
    t5_tokens = {k: v for k, v in tokens[2].items() if k != "bos_token_id"}  # T5 has no BOS
    t5 = {**real.text_encoders[2], **TINY_SD3_T5, **t5_tokens, "decoder_start_token_id": t5_tokens["pad_token_id"]}
    dual = [0] if real.unet.get("dual_attention_layers") else []
    transformer = {**real.unet, **TINY_SD3, "joint_attention_dim": t5["d_model"], "dual_attention_layers": dual,
                   "pooled_projection_dim": clip_l["projection_dim"] + clip_g["projection_dim"]}
    vae = {**real.vae, **TINY_VAE}
    return ArchConfigs(real.family, transformer, vae, [clip_l, clip_g, t5], dict(real.scheduler),
                       dict(real.model_index))


def _text(
    real: dict[str, Any], sizes: dict[str, int], tokens: dict[str, int], **extra: Any
) -> dict[str, Any]:
    return {**real, **sizes, **tokens, **extra}


def tiny_arch_configs(arch: str, tokens: list[dict[str, int]]) -> ArchConfigs:
    """``tokens`` per text encoder: ``vocab_size``, ``bos_token_id``, ``eos_token_id``, ``pad_token_id``."""
    real = load_arch_configs(arch)
    family = of_config_set(arch)
    if family.is_video:  # a video family's tiny configs: devtools/tiny_<video_model_name>.py
        return import_module(f"devtools.tiny_{family.video_model_name}").tiny_configs(real, tokens)
    if "guidance_embeds" in real.unet:  # a FLUX.1 transformer
        return _flux(real, tokens)
    if "approximator_layers" in real.unet:  # a Chroma transformer
        return _chroma(real, tokens)
    if "dual_attention_layers" in real.unet:  # an SD 3.5 MMDiT
        return _sd3(real, tokens)
    vae = {**real.vae, **TINY_VAE}
    if real.family == "sdxl":
        te1 = _text(real.text_encoders[0], TINY_TEXT, tokens[0], projection_dim=32)
        te2 = _text(real.text_encoders[1], TINY_TEXT_2, tokens[1], projection_dim=32)
        unet = {
            **real.unet,
            "block_out_channels": [32, 64, 64],
            "attention_head_dim": [2, 4, 4],
            "transformer_layers_per_block": [1, 1, 2],
            "cross_attention_dim": te1["hidden_size"] + te2["hidden_size"],
            "addition_time_embed_dim": 8,
            # pooled TE2 projection + 6 size/crop values, each embedded to addition_time_embed_dim
            "projection_class_embeddings_input_dim": te2["projection_dim"] + 6 * 8,
            "sample_size": 8,
        }
        text_encoders = [te1, te2]
    else:
        # SD 2.x's diffusers encoder stops one block short of the file's OpenCLIP stack.
        layers = 2 if real.family == "sd2" else TINY_TEXT["num_hidden_layers"]
        te = _text(real.text_encoders[0], TINY_TEXT, tokens[0], num_hidden_layers=layers, projection_dim=32)
        unet = {
            **real.unet,
            "block_out_channels": [32, 64],
            "attention_head_dim": 2 if real.family == "sd1" else [2, 4],
            "down_block_types": ["CrossAttnDownBlock2D", "DownBlock2D"],
            "up_block_types": ["UpBlock2D", "CrossAttnUpBlock2D"],
            "cross_attention_dim": te["hidden_size"],
            "sample_size": 8,
        }
        text_encoders = [te]
    return ArchConfigs(real.family, unet, vae, text_encoders, dict(real.scheduler), dict(real.model_index))
