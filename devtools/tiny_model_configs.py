"""Configs of the tiny test models: the real family configs with small widths.

Everything that decides module names and key layout is kept from the real model (block types,
two resnets per level, linear vs. conv projections, SDXL's text_time embedding and its three levels
so ``input_blocks.4.1``/``input_blocks.7.1`` exist, SD 2.x's extra OpenCLIP block on disk); only
widths, depths of the transformer stacks and the vocabulary shrink. The VAE keeps four levels so
latents are 1/8 of the image size, as trainers and bucketing assume.
"""

from __future__ import annotations

from typing import Any

from backend.models.configs import ArchConfigs, load_arch_configs

TINY_TEXT = {"hidden_size": 32, "intermediate_size": 64, "num_attention_heads": 2, "num_hidden_layers": 3}
TINY_TEXT_2 = {"hidden_size": 64, "intermediate_size": 128, "num_attention_heads": 2, "num_hidden_layers": 3}
TINY_VAE = {
    "block_out_channels": [16, 32, 32, 32],
    "layers_per_block": 1,
    "norm_num_groups": 8,
    "sample_size": 64,
}


def _text(
    real: dict[str, Any], sizes: dict[str, int], tokens: dict[str, int], **extra: Any
) -> dict[str, Any]:
    return {**real, **sizes, **tokens, **extra}


def tiny_arch_configs(arch: str, tokens: list[dict[str, int]]) -> ArchConfigs:
    """``tokens`` per text encoder: ``vocab_size``, ``bos_token_id``, ``eos_token_id``, ``pad_token_id``."""
    real = load_arch_configs(arch)
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
