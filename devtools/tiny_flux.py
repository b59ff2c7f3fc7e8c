"""Writing a tiny FLUX.1 model (see make_tiny_model): a diffusers FluxPipeline folder, or the files
sd-scripts' flux scripts take: the BFL transformer (`tiny-<arch>.safetensors`), `ae.safetensors` in
BFL/LDM names, `clip_l.safetensors` and `t5xxl.safetensors` in transformers' names (T5 without the
embedding tied to `shared.weight`, as sd-scripts' files are), and a tokenizer cache for both tokenizers.
Chroma (no CLIP-L: `clip_l` is not among its part flags) the same way, less CLIP-L.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from safetensors.torch import save_file

from backend.atomic import atomic_folder, atomic_path
from backend.families import of_config_set

if TYPE_CHECKING:
    from backend.models.configs import ArchConfigs
    from devtools.make_tiny_model import TinyModel


def _save(state: dict[str, torch.Tensor], path: Path) -> Path:
    state = {k: v.detach().contiguous() for k, v in state.items()}
    with atomic_path(path) as tmp:
        save_file(state, str(tmp))
    return path


def write_tiny_flux(arch: str, configs: ArchConfigs, tokenizers: list[Any], sources: list[Path], out: Path, *,
                    single_file: bool, seed: int) -> TinyModel:
    from backend.families.flux.loading import random_modules
    from backend.families.flux.saving import save_flux
    from backend.models.components import Components
    from backend.models.keymap_text import from_module_keys
    from backend.models.keymap_vae import vae_to_original
    from backend.models.tokenizers import cache_folder
    from devtools.make_tiny_model import TinyModel

    family = of_config_set(arch)
    if "clip_l" not in family.part_flags:
        return _write_tiny_chroma(arch, configs, tokenizers, sources, out, single_file=single_file, seed=seed)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        transformer, vae, clip, t5 = random_modules(configs)
    components = Components(configs.family, configs, transformer, vae, [clip, t5], tokenizers, source=f"tiny {arch}")
    if not single_file:
        with atomic_folder(out) as folder:
            save_flux(components, folder, dtype=None, metadata=None)
            for src, name in zip(sources, family.tokenizer_folders, strict=True):
                shutil.copytree(src, folder / name, dirs_exist_ok=True)
        return TinyModel(arch, out, None)
    path = save_flux(components, out / f"tiny-{arch}.safetensors", dtype=None, metadata=None)
    parts = {
        "ae": _save(vae_to_original(vae.state_dict(), configs.vae), out / "ae.safetensors"),
        "clip_l": _save(from_module_keys(clip.state_dict(), clip), out / "clip_l.safetensors"),
        "t5xxl": _save({k: v for k, v in t5.state_dict().items() if k != "encoder.embed_tokens.weight"},
                       out / "t5xxl.safetensors"),
    }
    cache = out / "tokenizer_cache"
    for src, entry in zip(sources, family.hub_tokenizers, strict=True):
        with atomic_folder(cache_folder(cache, entry.hub_id)) as folder:
            shutil.copytree(src, folder, dirs_exist_ok=True)
    return TinyModel(arch, path, cache, parts)


def _write_tiny_chroma(arch: str, configs: ArchConfigs, tokenizers: list[Any], sources: list[Path], out: Path, *,
                       single_file: bool, seed: int) -> TinyModel:
    from backend.families.chroma.loading import random_modules
    from backend.families.chroma.saving import save_chroma
    from backend.models.components import Components
    from backend.models.keymap_vae import vae_to_original
    from backend.models.tokenizers import cache_folder
    from devtools.make_tiny_model import TinyModel

    family = of_config_set(arch)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        transformer, vae, t5 = random_modules(configs)
    components = Components(configs.family, configs, transformer, vae, [t5], tokenizers, source=f"tiny {arch}")
    if not single_file:
        with atomic_folder(out) as folder:
            save_chroma(components, folder, dtype=None, metadata=None)
            for src, name in zip(sources, family.tokenizer_folders, strict=True):
                shutil.copytree(src, folder / name, dirs_exist_ok=True)
        return TinyModel(arch, out, None)
    path = save_chroma(components, out / f"tiny-{arch}.safetensors", dtype=None, metadata=None)
    parts = {
        "ae": _save(vae_to_original(vae.state_dict(), configs.vae), out / "ae.safetensors"),
        "t5xxl": _save({k: v for k, v in t5.state_dict().items() if k != "encoder.embed_tokens.weight"},
                       out / "t5xxl.safetensors"),
    }
    cache = out / "tokenizer_cache"
    for src, entry in zip(sources, family.hub_tokenizers, strict=True):
        with atomic_folder(cache_folder(cache, entry.hub_id)) as folder:
            shutil.copytree(src, folder, dirs_exist_ok=True)
    return TinyModel(arch, path, cache, parts)
