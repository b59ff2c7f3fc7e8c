"""Writing a tiny Wan 2.1 text-to-video model (see make_tiny_model): a WanPipeline diffusers folder with
the real configs shrunk (2 blocks of 2 heads x 16, a 2-layer UMT5 32 wide, the VAE 8 wide with all its
levels so latents keep 4x time and 8x space compression) and a tiny T5-style Unigram tokenizer (UMT5's
`<pad>` 0, `</s>` 1, `<unk>` 2), made locally in about a second."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

if TYPE_CHECKING:
    from backend.models.configs import ArchConfigs
    from devtools.make_tiny_model import TinyModel

TINY_TRANSFORMER = {"num_attention_heads": 2, "attention_head_dim": 16, "ffn_dim": 32, "num_layers": 2,
                    "freq_dim": 32}
TINY_VAE = {"base_dim": 8, "num_res_blocks": 1}
TINY_UMT5 = {"d_model": 32, "d_ff": 64, "d_kv": 16, "num_heads": 2, "num_layers": 2, "num_decoder_layers": 2}


def tiny_configs(real: ArchConfigs, tokens: list[dict[str, int]]) -> ArchConfigs:
    from backend.models.configs import ArchConfigs

    umt5 = {**real.text_encoders[0], **TINY_UMT5, "vocab_size": tokens[0]["vocab_size"]}
    transformer = {**real.unet, **TINY_TRANSFORMER, "text_dim": umt5["d_model"]}
    return ArchConfigs(real.family, transformer, {**real.vae, **TINY_VAE}, [umt5], dict(real.scheduler),
                       dict(real.model_index))


def write_tiny(arch: str, configs: ArchConfigs, tokenizers: list[Any], sources: list[Path], out: Path, *,
               single_file: bool, seed: int) -> TinyModel:
    from backend.families.video_saving import save_pipeline
    from backend.families.wan.loading import random_modules
    from backend.models.components import Components
    from devtools.make_tiny_model import TinyModel

    if single_file:
        raise ValueError("Wan tiny models are diffusers folders only (no --single-file)")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        transformer, vae, umt5 = random_modules(configs)
    components = Components(configs.family, configs, transformer, vae, [umt5], tokenizers, source=f"tiny {arch}")
    save_pipeline(components, out)
    return TinyModel(arch, out, None)
