"""A HunyuanVideo transformer file in Tencent's original names (`double_blocks.N.img_attn_qkv`, ComfyUI's
`diffusion_models/hunyuan_video_*.safetensors`), read with diffusers' `from_single_file` and its converter.

The converter cuts each single-stream block's fused `linear1` (q, k, v and the MLP's input) at the full model's
width, 3072, written into it. A file of another width (the tiny test models; a pruned model) would be cut wrongly,
so `split_single_blocks` cuts those tensors first at the width the folder's config gives (heads x head dim), into
the diffusers names the converter passes through. At 3072 the result is the converter's own.
"""

from __future__ import annotations

from typing import Any

import torch

PREFIXES = ("model.diffusion_model.", "diffusion_model.")  # how some exports prefix the transformer's keys
_FUSED = ".linear1."


def split_single_blocks(state: dict[str, torch.Tensor], config: dict[str, Any]) -> dict[str, torch.Tensor]:
    """`state` with the prefixes dropped and every `single_blocks.N.linear1.{weight,bias}` split into
    `single_transformer_blocks.N.attn.to_{q,k,v}` and `.proj_mlp`."""
    width = int(config["num_attention_heads"]) * int(config["attention_head_dim"])
    out: dict[str, torch.Tensor] = {}
    for key, tensor in state.items():
        for prefix in PREFIXES:
            key = key.removeprefix(prefix)
        block, fused, parameter = key.partition(_FUSED)
        if not (fused and block.startswith("single_blocks.")):
            out[key] = tensor
            continue
        target = block.replace("single_blocks", "single_transformer_blocks", 1)
        q, k, v, mlp = torch.split(tensor, [width, width, width, tensor.shape[0] - 3 * width], dim=0)
        for name, part in (("attn.to_q", q), ("attn.to_k", k), ("attn.to_v", v), ("proj_mlp", mlp)):
            out[f"{target}.{name}.{parameter}"] = part
    return out
