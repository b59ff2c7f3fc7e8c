"""Writing a tiny SD 3.5 model (see make_tiny_model): a diffusers StableDiffusion3Pipeline folder, or one
single file in SAI's layout holding every part (`model.diffusion_model.`, `first_stage_model.`,
`text_encoders.clip_l/clip_g/t5xxl.transformer.`), as SAI's "incl_clips_t5xxl" files do, with a tokenizer
cache for the three tokenizers.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from backend.atomic import atomic_folder
from backend.families import of_config_set

if TYPE_CHECKING:
    from backend.models.configs import ArchConfigs
    from devtools.make_tiny_model import TinyModel


def write_tiny_sd3(arch: str, configs: ArchConfigs, tokenizers: list[Any], sources: list[Path], out: Path, *,
                   single_file: bool, seed: int) -> TinyModel:
    from backend.families.sd3.loading import random_modules
    from backend.families.sd3.saving import save_sd3
    from backend.models.components import Components
    from backend.models.tokenizers import cache_folder
    from devtools.make_tiny_model import TinyModel

    family = of_config_set(arch)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        transformer, vae, clip_l, clip_g, t5 = random_modules(configs)
    components = Components(configs.family, configs, transformer, vae, [clip_l, clip_g, t5], tokenizers,
                            source=f"tiny {arch}")
    if not single_file:
        with atomic_folder(out) as folder:
            save_sd3(components, folder, dtype=None, metadata=None)
            for src, name in zip(sources, family.tokenizer_folders, strict=True):
                shutil.copytree(src, folder / name, dirs_exist_ok=True)
        return TinyModel(arch, out, None)
    path = save_sd3(components, out / f"tiny-{arch}.safetensors", dtype=None, metadata=None)
    cache = out / "tokenizer_cache"
    for src, entry in zip(sources, family.hub_tokenizers, strict=True):
        with atomic_folder(cache_folder(cache, entry.hub_id)) as folder:
            shutil.copytree(src, folder, dirs_exist_ok=True)
    return TinyModel(arch, path, cache)
