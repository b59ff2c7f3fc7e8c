"""A tiny LTX-Video model (see make_tiny_model): a diffusers LTXPipeline folder with random weights.

The real layout with small widths: a transformer of 2 blocks (2 heads x 16, cross-attention 32 wide, 16 latent
channels, patch size 1), a VAE keeping the real level structure of 0.9.1 (patch size 4 and three
spatio-temporal downsamplings: 32x spatial, 8x temporal compression; a timestep-conditioned decoder with
noise injection and residual upsampling) at widths 8..32 (each decoder level twice the next, as the real 256/512/1024: its up blocks halve the channels in their upsampler), and a 2-layer T5 with the tiny T5 tokenizer.
Folders only: LTX-Video has no single-file layout here.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from backend.atomic import atomic_folder

if TYPE_CHECKING:
    from backend.models.configs import ArchConfigs
    from devtools.make_tiny_model import TinyModel

TINY_T5 = {"d_model": 32, "d_ff": 64, "d_kv": 16, "num_heads": 2, "num_layers": 2, "num_decoder_layers": 2}
LATENT_CHANNELS = 16
TINY_TRANSFORMER = {"num_layers": 2, "num_attention_heads": 2, "attention_head_dim": 16, "cross_attention_dim": 32,
                    "in_channels": LATENT_CHANNELS, "out_channels": LATENT_CHANNELS}
TINY_VAE = {"latent_channels": LATENT_CHANNELS, "block_out_channels": [8, 16, 32, 32],
            "decoder_block_out_channels": [8, 16, 32], "layers_per_block": [1, 1, 1, 1, 1],
            "decoder_layers_per_block": [1, 1, 1, 1]}


def tiny_configs(real: ArchConfigs, tokens: list[dict[str, int]]) -> ArchConfigs:
    from backend.models.configs import ArchConfigs

    t5_tokens = {k: v for k, v in tokens[0].items() if k != "bos_token_id"}  # T5 has no BOS
    t5 = {**real.text_encoders[0], **TINY_T5, **t5_tokens, "decoder_start_token_id": t5_tokens["pad_token_id"]}
    transformer = {**real.unet, **TINY_TRANSFORMER, "caption_channels": t5["d_model"]}
    vae = {**real.vae, **TINY_VAE}
    return ArchConfigs(real.family, transformer, vae, [t5], dict(real.scheduler), dict(real.model_index))


def write_tiny(arch: str, configs: ArchConfigs, tokenizers: list[Any], sources: list[Path], out: Path, *,
               single_file: bool, seed: int) -> TinyModel:
    from backend.families.ltx_video.loading import random_modules, save_pipeline_folder
    from backend.models.components import Components
    from devtools.make_tiny_model import TinyModel

    if single_file:
        raise ValueError("LTX-Video tiny models are diffusers folders only (no --single-file)")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        transformer, vae, t5 = random_modules(configs)
        # Real VAEs carry per-channel statistics; random ones make the normalisation do something.
        vae.latents_mean.copy_(torch.randn(LATENT_CHANNELS) * 0.1)
        vae.latents_std.copy_(torch.rand(LATENT_CHANNELS) + 0.5)
    components = Components(configs.family, configs, transformer, vae, [t5], tokenizers, source=f"tiny {arch}")
    save_pipeline_folder(components, out)
    with atomic_folder(out / "tokenizer") as folder:  # the generated tokenizer's own files, as made
        shutil.copytree(sources[0], folder, dirs_exist_ok=True)
    return TinyModel(arch, out, None)
