"""Tiny SD 1.x and SDXL-shaped models and probes for the network tests (built in memory, no downloads)."""

from __future__ import annotations

import re

import torch
from diffusers import UNet2DConditionModel
from transformers import CLIPTextConfig

TE_WIDTH = 16
LAYERS_PER_BLOCK = 1


def clip_config(width: int = TE_WIDTH) -> CLIPTextConfig:
    return CLIPTextConfig(
        vocab_size=64, hidden_size=width, intermediate_size=2 * width, num_hidden_layers=2,
        num_attention_heads=2, max_position_embeddings=8, bos_token_id=0, eos_token_id=1, pad_token_id=1,
    )


def sd1_unet() -> UNet2DConditionModel:
    return UNet2DConditionModel(
        sample_size=8, in_channels=4, out_channels=4, layers_per_block=LAYERS_PER_BLOCK,
        block_out_channels=(8, 16), down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
        up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"), cross_attention_dim=TE_WIDTH,
        attention_head_dim=2, norm_num_groups=4,
    )


def sdxl_unet() -> UNet2DConditionModel:
    # SDXL's layout in miniature: plain first level, text_time embedding, linear projections.
    return UNet2DConditionModel(
        sample_size=8, in_channels=4, out_channels=4, layers_per_block=LAYERS_PER_BLOCK,
        block_out_channels=(8, 16), down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"), cross_attention_dim=2 * TE_WIDTH,
        attention_head_dim=2, norm_num_groups=4, use_linear_projection=True,
        addition_embed_type="text_time", addition_time_embed_dim=4,
        projection_class_embeddings_input_dim=TE_WIDTH + 6 * 4,
    )


_BLOCK = re.compile(r"^(down_blocks|up_blocks)\.(\d+)\.(attentions|resnets|downsamplers|upsamplers)\.(\d+)\.(.*)$")
_RESNET_CHILDREN = {"conv1": "in_layers.2", "time_emb_proj": "emb_layers.1", "conv2": "out_layers.3",
                    "conv_shortcut": "skip_connection"}


_TOP_LEVEL = {"conv_in": "input_blocks.0.0", "time_embedding.linear_1": "time_embed.0",
              "time_embedding.linear_2": "time_embed.2", "add_embedding.linear_1": "label_emb.0.0",
              "add_embedding.linear_2": "label_emb.0.2", "conv_out": "out.2"}


def _resnet_child(rest: str) -> str:
    return _RESNET_CHILDREN[rest]


def sgm_name(path: str) -> str:
    """diffusers -> SGM module paths for the LoRA layers of the tiny SDXL U-Net (the real table,
    for any config, lives in backend/models); unknown paths raise KeyError like a real table."""
    per_level = LAYERS_PER_BLOCK + 1
    if path in _TOP_LEVEL:
        return _TOP_LEVEL[path]
    if path.startswith("mid_block."):
        kind, index, rest = path.split(".", 3)[1:]
        if kind == "attentions":
            return f"middle_block.1.{rest}"
        return f"middle_block.{2 * int(index)}.{_resnet_child(rest)}"
    match = _BLOCK.match(path)
    if not match:
        raise KeyError(path)
    side, level, kind, index, rest = match.group(1), int(match.group(2)), match.group(3), int(match.group(4)), match.group(5)
    if side == "down_blocks":
        if kind == "downsamplers":
            return f"input_blocks.{(level + 1) * per_level}.0.op"
        block = f"input_blocks.{1 + level * per_level + index}"
    else:
        if kind == "upsamplers":
            # SDXL's up levels 0-1 have attentions, so the upsampler is the third module there
            return f"output_blocks.{level * per_level + LAYERS_PER_BLOCK}.{2 if level == 0 else 1}.conv"
        block = f"output_blocks.{level * per_level + index}"
    if kind == "attentions":
        return f"{block}.1.{rest}"
    return f"{block}.0.{_resnet_child(rest)}"


def unet_inputs(unet: UNet2DConditionModel, batch: int = 1) -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(1)
    inputs = {
        "sample": torch.randn(batch, 4, 8, 8, generator=generator),
        "timestep": torch.tensor(10),
        "encoder_hidden_states": torch.randn(batch, 4, unet.config.cross_attention_dim, generator=generator),
    }
    if unet.config.addition_embed_type == "text_time":
        inputs["added_cond_kwargs"] = {
            "text_embeds": torch.randn(batch, TE_WIDTH, generator=generator),
            "time_ids": torch.randn(batch, 6, generator=generator),
        }
    return inputs


def unet_out(unet: UNet2DConditionModel, inputs: dict[str, torch.Tensor]) -> torch.Tensor:
    with torch.no_grad():
        return unet(**inputs).sample


def te_out(text_encoder: torch.nn.Module) -> torch.Tensor:
    with torch.no_grad():
        return text_encoder(torch.tensor([[0, 5, 9, 1]])).last_hidden_state


def randomize_up(network: torch.nn.Module, seed: int = 2) -> None:
    """Non-zero up weights, as after training, so outputs differ from the base model."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, param in network.named_parameters():
            if ".lora_up." in name or name.split(".")[-1].startswith("up_"):
                param.copy_(torch.randn(param.shape, generator=generator) * 0.1)
