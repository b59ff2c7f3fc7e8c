"""Saving SD 3.5 `Components`: one single file in SAI's layout, or a StableDiffusion3Pipeline folder.

A `.safetensors` path gets the MMDiT under `model.diffusion_model.` (SAI names) and the autoencoder under
`first_stage_model.` (LDM names), as sd-scripts' sd3_train saves them, plus the three text encoders under
`text_encoders.clip_l/clip_g/t5xxl.transformer.` (the layout of SAI's "incl_clips_t5xxl" files, which
ComfyUI and our loader read), so the file is a whole model; its metadata carries our exact configs
(`diffusers_configs`). Any other path becomes a diffusers folder. Both are written atomically.
"""

from __future__ import annotations

from pathlib import Path

import torch
from safetensors.torch import save_file

from backend.atomic import atomic_folder, atomic_path
from backend.families import declaration
from backend.families.sd3.keymap import MMDIT_PREFIX, diffusers_to_sai
from backend.families.sd3.loading import TEXT_PREFIXES, VAE_PREFIX
from backend.messages import msg
from backend.models.components import Components
from backend.models.configs import load_arch_configs
from backend.models.files import CONFIG_METADATA_KEY, SAFETENSORS_SUFFIXES
from backend.models.keymap_text import from_module_keys
from backend.models.keymap_vae import vae_to_original
from backend.models.saving import (
    StateOverrides,
    _cast,
    _check_replaceable,
    _write_json,
    _write_vocabulary_files,
    module_state,
)

_T5_TIED = "encoder.embed_tokens.weight"
PICKLE_SUFFIXES = (".ckpt", ".pt", ".pth", ".bin")


def _text_states(components: Components, states: StateOverrides | None) -> list[dict[str, torch.Tensor]]:
    found = []
    for index, module in enumerate(components.text_encoders):
        state = module_state(components, f"text_encoder{index + 1}", states)
        if index < 2:
            state = from_module_keys(state, module)
        else:  # safetensors refuses shared storage; loading ties it again
            state = {k: v for k, v in state.items() if k != _T5_TIED}
        found.append(state)
    return found


def _single_file_state(components: Components, states: StateOverrides | None) -> dict[str, torch.Tensor]:
    state = diffusers_to_sai(module_state(components, "unet", states), MMDIT_PREFIX)
    if components.vae is not None:
        vae = vae_to_original(module_state(components, "vae", states), components.configs.vae)
        state.update({VAE_PREFIX + k: v for k, v in vae.items()})
    for prefix, text in zip(TEXT_PREFIXES.values(), _text_states(components, states), strict=False):
        state.update({prefix + k: v for k, v in text.items()})
    return state


def _metadata(components: Components, title: str) -> dict[str, str]:
    family = declaration(components.family)
    return {
        "modelspec.sai_model_spec": "1.0.0",
        "modelspec.architecture": family.architecture(False, lora=False),
        "modelspec.implementation": family.implementation_url(lora=False),
        "modelspec.title": title,
        CONFIG_METADATA_KEY: components.configs.to_json(),
    }


def _write_module(folder: Path, state: dict[str, torch.Tensor], stem: str) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    save_file(state, str(folder / f"{stem}.safetensors"), metadata={"format": "pt"})


def write_sd3_folder(components: Components, folder: Path, dtype: torch.dtype | None,
                     states: StateOverrides | None = None) -> None:
    """Every StableDiffusion3Pipeline component into `folder` (new or empty)."""
    family = declaration(components.family)
    for name, part, module in ((family.denoiser_folder, "unet", components.unet), ("vae", "vae", components.vae)):
        (folder / name).mkdir(parents=True, exist_ok=True)
        module.save_config(folder / name)
        _write_module(folder / name, _cast(module_state(components, part, states), dtype), "diffusion_pytorch_model")
    for name, module, state in zip(family.text_encoder_folders, components.text_encoders,
                                   _text_states(components, states), strict=True):
        module.config.save_pretrained(str(folder / name))
        _write_module(folder / name, _cast(state, dtype), "model")
    for name, tokenizer in zip(family.tokenizer_folders, components.tokenizers, strict=True):
        tokenizer.save_pretrained(str(folder / name))
    for name, tokenizer in zip(family.tokenizer_folders[:2], components.tokenizers[:2], strict=True):
        _write_vocabulary_files(tokenizer, folder / name)  # CLIP's BPE files
    _write_json(folder / "scheduler" / "scheduler_config.json", components.configs.scheduler)
    index = components.configs.model_index or load_arch_configs(family.epsilon.config_set).model_index
    _write_json(folder / "model_index.json", index)


def save_refusal(path: str | Path) -> str | None:
    path = Path(path)
    if path.suffix.lower() in PICKLE_SUFFIXES:
        return msg("sd3.save_pickle", "{path}: SD 3.5 models are saved as .safetensors or as a diffusers folder, "
                   "not as {suffix}", path=path, suffix=path.suffix)
    return None


def save_sd3(components: Components, path: str | Path, *, dtype: torch.dtype | None,
             metadata: dict[str, str] | None, states: StateOverrides | None = None) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix.lower() in SAFETENSORS_SUFFIXES:
        state = _cast(_single_file_state(components, states), dtype)
        with atomic_path(path) as tmp:
            save_file(state, str(tmp), metadata=_metadata(components, path.stem) | (metadata or {}))
        return path
    refusal = save_refusal(path)
    if refusal:
        raise ValueError(refusal)
    _check_replaceable(path)
    with atomic_folder(path) as folder:
        write_sd3_folder(components, folder, dtype, states)
    return path
