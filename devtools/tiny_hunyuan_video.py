"""Writing a tiny HunyuanVideo model (see make_tiny_model): a HunyuanVideoPipeline diffusers folder with the real
configs shrunk (2 dual-stream + 2 single-stream blocks and a 1-block token refiner of 2 heads x 16 with RoPE axes
(4, 6, 6), the guidance embedding kept; a 3-layer Llama 32 wide with grouped KV heads; a 2-layer CLIP 32 wide; the
VAE 8..16 wide with all four levels so latents keep 4x time and 8x space compression) and the tiny tokenizers made
locally (devtools/tiny_llama_tokenizer.py, devtools/tiny_tokenizer.py), in a few seconds."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

if TYPE_CHECKING:
    from backend.models.configs import ArchConfigs
    from devtools.make_tiny_model import TinyModel

TINY_TRANSFORMER = {"num_attention_heads": 2, "attention_head_dim": 16, "num_layers": 2, "num_single_layers": 2,
                    "num_refiner_layers": 1, "rope_axes_dim": [4, 6, 6]}
# Three layers: the conditioning is the third-to-last hidden state, so one real layer's output.
TINY_LLAMA = {"hidden_size": 32, "intermediate_size": 64, "num_attention_heads": 4, "num_key_value_heads": 2,
              "head_dim": 8, "num_hidden_layers": 3}
TINY_CLIP = {"hidden_size": 32, "intermediate_size": 64, "num_attention_heads": 2, "num_hidden_layers": 2,
             "projection_dim": 32}
TINY_VAE = {"block_out_channels": [8, 16, 16, 16], "layers_per_block": 1, "norm_num_groups": 4}


def tiny_configs(real: ArchConfigs, tokens: list[dict[str, int]]) -> ArchConfigs:
    from backend.models.configs import ArchConfigs

    real_llama, real_clip = real.text_encoders
    llama = {**real_llama, **TINY_LLAMA, **tokens[0]}
    clip = {**real_clip, **TINY_CLIP, **tokens[1]}
    transformer = {**real.unet, **TINY_TRANSFORMER, "text_embed_dim": llama["hidden_size"],
                   "pooled_projection_dim": clip["hidden_size"]}
    # The tiny tokenizer is a plain tokenizers-library one: diffusers loads it by the class that loads it as made.
    index = {**real.model_index, "tokenizer": ["transformers", "PreTrainedTokenizerFast"]}
    return ArchConfigs(real.family, transformer, {**real.vae, **TINY_VAE}, [llama, clip], dict(real.scheduler), index)


def write_tiny(arch: str, configs: ArchConfigs, tokenizers: list[Any], sources: list[Path], out: Path, *,
               single_file: bool, seed: int) -> TinyModel:
    from backend.families.hunyuan_video.loading import random_modules
    from backend.families.video_saving import save_pipeline
    from backend.models.components import Components
    from devtools.make_tiny_model import TinyModel

    if single_file:
        raise ValueError("HunyuanVideo tiny models are diffusers folders only (no --single-file)")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        transformer, vae, llama, clip = random_modules(configs)
    components = Components(configs.family, configs, transformer, vae, [llama, clip], tokenizers,
                            source=f"tiny {arch}")
    save_pipeline(components, out)
    return TinyModel(arch, out, None)
