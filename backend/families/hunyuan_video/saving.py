"""Saving HunyuanVideo: a full fine-tune's transformer as a diffusers transformer folder (what finetrainers
writes under `<output_dir>/transformer`), and the whole pipeline folder (`HunyuanVideoPipeline.from_pretrained`
loads it). The transformer's writing (safetensors, sharded past 10 GB: the 13B transformer is 26 GB in bf16)
and the LoRA file are Wan's (backend/families/wan/saving.py: nothing in them is Wan's own)."""

from __future__ import annotations

import json
from pathlib import Path

import torch

from backend.atomic import atomic_folder
from backend.families import declaration
from backend.families.wan.saving import save_lora, write_transformer
from backend.messages import msg
from backend.models.components import Components
from backend.models.configs import load_arch_configs
from backend.models.saving import StateOverrides

__all__ = ["save_lora", "save_pipeline", "save_refusal", "save_transformer"]


def save_refusal(path: str | Path) -> str | None:
    if Path(path).suffix.lower() in (".safetensors", ".ckpt", ".pt", ".pth", ".bin"):
        return msg("hunyuan_video.save_single_file", "{path}: HunyuanVideo models are saved as diffusers folders (the "
                   "transformer folder, or the whole pipeline), not as one {suffix} file; give a folder", path=path,
                   suffix=Path(path).suffix)
    return None


def _check_target(path: Path, marker: str) -> None:
    """Refuses a single-file name, and a folder holding other things than an earlier save (no `marker`)."""
    refusal = save_refusal(path)
    if refusal:
        raise ValueError(refusal)
    if path.exists() and not path.is_dir():
        raise FileExistsError(msg("model.save_target_not_folder", "{path} exists and is not a folder", path=path))
    if path.is_dir() and any(path.iterdir()) and not (path / marker).is_file():
        raise FileExistsError(msg("hunyuan_video.save_target_other_files", "{path} exists and holds other files than "
                                  "a saved model (no {marker}); refusing to replace it: give a new or empty folder",
                                  path=path, marker=marker))


def save_transformer(components: Components, path: str | Path, *, dtype: torch.dtype | None = None,
                     states: StateOverrides | None = None) -> Path:
    """The transformer alone as a diffusers model folder at `path` (`states`: a fine-tune's trained weights under
    "unet", replacing the module's own)."""
    path = Path(path)
    _check_target(path, "config.json")
    with atomic_folder(path) as folder:
        write_transformer(components, folder, dtype, states)
    return path


def save_pipeline(components: Components, path: str | Path, *, dtype: torch.dtype | None = None,
                  states: StateOverrides | None = None) -> Path:
    """The whole HunyuanVideoPipeline folder: the (fine-tuned) transformer, the VAE, Llama, CLIP-L, both
    tokenizers, the scheduler config and model_index.json."""
    path = Path(path)
    _check_target(path, "model_index.json")
    family = declaration(components.family)
    with atomic_folder(path) as folder:
        write_transformer(components, folder / family.denoiser_folder, dtype, states)
        # The VAE and the text encoders are not trained here: written as loaded (`dtype` is the transformer's).
        components.vae.save_pretrained(str(folder / "vae"), safe_serialization=True)
        for name, encoder in zip(family.text_encoder_folders, components.text_encoders, strict=True):
            encoder.save_pretrained(str(folder / name), safe_serialization=True)
        for name, tokenizer in zip(family.tokenizer_folders, components.tokenizers, strict=True):
            tokenizer.save_pretrained(str(folder / name))
        scheduler = folder / "scheduler" / "scheduler_config.json"
        scheduler.parent.mkdir(parents=True, exist_ok=True)
        scheduler.write_text(json.dumps(components.configs.scheduler, indent=2, sort_keys=True) + "\n",
                             encoding="utf-8")
        index = components.configs.model_index or load_arch_configs(family.epsilon.config_set).model_index
        (folder / "model_index.json").write_text(json.dumps(index, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    return path
