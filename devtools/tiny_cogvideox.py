"""Writing a tiny CogVideoX 1.0 text-to-video model (see make_tiny_model): a CogVideoXPipeline diffusers folder
with the real configs shrunk (2 blocks of 2 heads x 16, a time embedding 32 wide, a 2-layer T5 32 wide, the VAE
8 to 16 wide with all four levels so latents keep 4x time and 8x space compression) and the tiny T5 Unigram
tokenizer, made locally in about a second. The 5B set keeps its 3D RoPE, the 2B set its sinusoidal positions."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

if TYPE_CHECKING:
    from backend.models.configs import ArchConfigs
    from devtools.make_tiny_model import TinyModel

TINY_TRANSFORMER = {"num_attention_heads": 2, "attention_head_dim": 16, "num_layers": 2, "time_embed_dim": 32}
TINY_VAE = {"block_out_channels": [8, 8, 16, 16], "layers_per_block": 1, "norm_num_groups": 4}
TINY_T5 = {"d_model": 32, "d_ff": 64, "d_kv": 16, "num_heads": 2, "num_layers": 2, "num_decoder_layers": 2}


def tiny_configs(real: ArchConfigs, tokens: list[dict[str, int]]) -> ArchConfigs:
    from backend.models.configs import ArchConfigs

    t5_tokens = {k: v for k, v in tokens[0].items() if k != "bos_token_id"}  # T5 has no BOS
    t5 = {**real.text_encoders[0], **TINY_T5, **t5_tokens, "decoder_start_token_id": t5_tokens["pad_token_id"]}
    transformer = {**real.unet, **TINY_TRANSFORMER, "text_embed_dim": t5["d_model"]}
    return ArchConfigs(real.family, transformer, {**real.vae, **TINY_VAE}, [t5], dict(real.scheduler),
                       dict(real.model_index))


def write_tiny(arch: str, configs: ArchConfigs, tokenizers: list[Any], sources: list[Path], out: Path, *,
               single_file: bool, seed: int) -> TinyModel:
    from backend.families.cogvideox.loading import random_modules
    from backend.families.video_saving import save_pipeline
    from backend.models.components import Components
    from devtools.make_tiny_model import TinyModel

    if single_file:
        raise ValueError("CogVideoX tiny models are diffusers folders only (no --single-file)")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        transformer, vae, t5 = random_modules(configs)
    components = Components(configs.family, configs, transformer, vae, [t5], tokenizers, source=f"tiny {arch}")
    save_pipeline(components, out)
    return TinyModel(arch, out, None)
