"""Saving FLUX.1 `Components`: the transformer alone as a BFL single file, or a whole FluxPipeline folder.

A `.safetensors` path gets the transformer in Black Forest Labs' names, as sd-scripts' flux_train saves
it (the autoencoder and text encoders stay the files they were loaded from); its metadata carries our
exact configs (`diffusers_configs`), so a file with non-standard widths (the tiny test models) loads
back, plus the modelspec keys the caller gives. Any other path becomes a diffusers FluxPipeline folder
(`diffusers.FluxPipeline.from_pretrained` loads it). Both are written atomically (backend/atomic.py).
"""

from __future__ import annotations

from pathlib import Path

import torch
from safetensors.torch import save_file

from backend.atomic import atomic_folder, atomic_path
from backend.families import declaration
from backend.families.flux.keymap import diffusers_to_bfl
from backend.messages import msg
from backend.models.components import Components
from backend.models.configs import load_arch_configs
from backend.models.files import CONFIG_METADATA_KEY, SAFETENSORS_SUFFIXES
from backend.models.keymap_text import from_module_keys
from backend.models.saving import (
    StateOverrides,
    _cast,
    _check_replaceable,
    _write_json,
    _write_vocabulary_files,
    module_state,
)

# transformers ties T5's input embedding to `shared.weight`; safetensors refuses shared storage and
# from_pretrained ties it again, so the copy is not written.
_T5_TIED = "encoder.embed_tokens.weight"


def transformer_metadata(components: Components, title: str) -> dict[str, str]:
    """The base metadata of a transformer file: what it is, and our configs to load it back."""
    family = declaration(components.family)
    return {
        "modelspec.sai_model_spec": "1.0.0",
        "modelspec.architecture": family.architecture(False, lora=False),
        "modelspec.implementation": family.implementation_url(lora=False),
        "modelspec.title": title,
        CONFIG_METADATA_KEY: components.configs.to_json(),
    }


def _write_transformer_file(components: Components, path: Path, dtype: torch.dtype | None,
                            metadata: dict[str, str], states: StateOverrides | None) -> None:
    state = _cast(diffusers_to_bfl(module_state(components, "unet", states)), dtype)
    with atomic_path(path) as tmp:
        save_file(state, str(tmp), metadata=transformer_metadata(components, path.stem) | metadata)


def _write_module(folder: Path, state: dict[str, torch.Tensor], stem: str) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    save_file(state, str(folder / f"{stem}.safetensors"), metadata={"format": "pt"})


def write_flux_folder(components: Components, folder: Path, dtype: torch.dtype | None,
                      states: StateOverrides | None = None) -> None:
    """Every FluxPipeline component into `folder` (new or empty); `states` replaces modules' weights
    (a fine-tune's trained weights, by part name: "unet", "vae", "text_encoder<i>")."""
    family = declaration(components.family)
    for name, part, module in ((family.denoiser_folder, "unet", components.unet), ("vae", "vae", components.vae)):
        (folder / name).mkdir(parents=True, exist_ok=True)
        module.save_config(folder / name)
        _write_module(folder / name, _cast(module_state(components, part, states), dtype), "diffusion_pytorch_model")
    clip, t5 = components.text_encoders
    clip_folder, t5_folder = family.text_encoder_folders
    clip.config.save_pretrained(str(folder / clip_folder))
    # The classic `text_model.` keys, which transformers 4 and 5 both load (see backend/models/saving.py).
    clip_state = module_state(components, "text_encoder1", states)
    _write_module(folder / clip_folder, _cast(from_module_keys(clip_state, clip), dtype), "model")
    t5.config.save_pretrained(str(folder / t5_folder))
    t5_state = {k: v for k, v in module_state(components, "text_encoder2", states).items() if k != _T5_TIED}
    _write_module(folder / t5_folder, _cast(t5_state, dtype), "model")
    for name, tokenizer in zip(family.tokenizer_folders, components.tokenizers, strict=True):
        tokenizer.save_pretrained(str(folder / name))
    _write_vocabulary_files(components.tokenizers[0], folder / family.tokenizer_folders[0])  # CLIP's BPE files
    _write_json(folder / "scheduler" / "scheduler_config.json", components.configs.scheduler)
    index = components.configs.model_index or load_arch_configs(family.epsilon.config_set).model_index
    _write_json(folder / "model_index.json", index)


PICKLE_SUFFIXES = (".ckpt", ".pt", ".pth", ".bin")


def save_refusal(path: str | Path) -> str | None:
    """Why a FLUX.1 model cannot be saved to `path`: only .safetensors (the transformer) or a folder."""
    path = Path(path)
    if path.suffix.lower() in PICKLE_SUFFIXES:
        return msg("flux.save_pickle", "{path}: FLUX.1 models are saved as .safetensors (the transformer) or as a "
                   "diffusers folder, not as {suffix}", path=path, suffix=path.suffix)
    return None


def save_flux(components: Components, path: str | Path, *, dtype: torch.dtype | None,
              metadata: dict[str, str] | None, states: StateOverrides | None = None) -> Path:
    """`.safetensors`: the transformer alone in BFL names; any other path: a diffusers FluxPipeline folder.
    `states`: weights replacing the modules' own, by part name (see `write_flux_folder`)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix.lower() in SAFETENSORS_SUFFIXES:
        _write_transformer_file(components, path, dtype, metadata or {}, states)
        return path
    refusal = save_refusal(path)
    if refusal:
        raise ValueError(refusal)
    _check_replaceable(path)
    with atomic_folder(path) as folder:
        write_flux_folder(components, folder, dtype, states)
    return path
