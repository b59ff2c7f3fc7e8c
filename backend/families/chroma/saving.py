"""Saving Chroma `Components`: the transformer alone in BFL names (as sd-scripts' flux_train saves a Chroma
fine-tune, loadable by ComfyUI and sd-scripts' --model_type chroma), or a whole diffusers ChromaPipeline
folder. The transformer file is FLUX.1's writer (the key map converts Chroma's layout); the folder holds
T5-XXL alone as `text_encoder/`.
"""

from __future__ import annotations

from pathlib import Path

import torch

from backend.atomic import atomic_folder
from backend.families import declaration
from backend.families.flux.saving import _T5_TIED, _write_module, _write_transformer_file, save_refusal
from backend.models.components import Components
from backend.models.configs import load_arch_configs
from backend.models.files import SAFETENSORS_SUFFIXES
from backend.models.saving import StateOverrides, _cast, _check_replaceable, _write_json, module_state


def write_chroma_folder(components: Components, folder: Path, dtype: torch.dtype | None,
                        states: StateOverrides | None = None) -> None:
    """Every ChromaPipeline component into `folder` (new or empty); `states` replaces modules' weights."""
    family = declaration(components.family)
    for name, part, module in ((family.denoiser_folder, "unet", components.unet), ("vae", "vae", components.vae)):
        (folder / name).mkdir(parents=True, exist_ok=True)
        module.save_config(folder / name)
        _write_module(folder / name, _cast(module_state(components, part, states), dtype), "diffusion_pytorch_model")
    (t5,) = components.text_encoders
    t5.config.save_pretrained(str(folder / family.text_encoder_folders[0]))
    t5_state = {k: v for k, v in module_state(components, "text_encoder1", states).items() if k != _T5_TIED}
    _write_module(folder / family.text_encoder_folders[0], _cast(t5_state, dtype), "model")
    components.tokenizers[0].save_pretrained(str(folder / family.tokenizer_folders[0]))
    _write_json(folder / "scheduler" / "scheduler_config.json", components.configs.scheduler)
    index = components.configs.model_index or load_arch_configs(family.epsilon.config_set).model_index
    _write_json(folder / "model_index.json", index)


def save_chroma(components: Components, path: str | Path, *, dtype: torch.dtype | None,
                metadata: dict[str, str] | None, states: StateOverrides | None = None) -> Path:
    """`.safetensors`: the transformer alone in BFL names; any other path: a diffusers ChromaPipeline folder."""
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
        write_chroma_folder(components, folder, dtype, states)
    return path
