"""Saving a video family's model (Wan, HunyuanVideo, CogVideoX: nothing here is one family's): a full
fine-tune's transformer as a diffusers transformer folder (what finetrainers writes under
`<output_dir>/transformer`, loadable by the transformer class's `from_pretrained`), the whole pipeline folder
(the pipeline's `from_pretrained` loads it), and a PEFT LoRA file as diffusers writes it. Weights are
safetensors, sharded past 10 GB as diffusers shards them (Wan's 14B transformer is 28 GB in bf16); folders are
written atomically."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from huggingface_hub import split_torch_state_dict_into_shards
from safetensors.torch import save_file

from backend.atomic import atomic_folder, atomic_path
from backend.families import declaration
from backend.messages import msg
from backend.models.components import Components
from backend.models.configs import load_arch_configs
from backend.models.saving import StateOverrides, module_state

WEIGHTS = "diffusion_pytorch_model{suffix}.safetensors"
LORA_WEIGHTS = "pytorch_lora_weights.safetensors"  # diffusers' name, which load_lora_weights(folder) reads
MAX_SHARD = "10GB"


def _cast(state: dict[str, torch.Tensor], dtype: torch.dtype | None) -> dict[str, torch.Tensor]:
    return {k: (v.to(dtype) if dtype is not None and v.is_floating_point() else v).detach().contiguous()
            for k, v in state.items()}


def _write_json(path: Path, data: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n", encoding="utf-8")


def write_transformer(components: Components, folder: Path, dtype: torch.dtype | None,
                      states: StateOverrides | None = None) -> None:
    """config.json and the (sharded) safetensors weights of the transformer into `folder`."""
    folder.mkdir(parents=True, exist_ok=True)
    components.unet.save_config(folder)
    state = _cast(module_state(components, "unet", states), dtype)
    split = split_torch_state_dict_into_shards(state, filename_pattern=WEIGHTS, max_shard_size=MAX_SHARD)
    for filename, names in split.filename_to_tensors.items():
        save_file({name: state[name] for name in names}, str(folder / filename), metadata={"format": "pt"})
    if split.is_sharded:
        _write_json(folder / (WEIGHTS.format(suffix="") + ".index.json"),
                    {"metadata": split.metadata, "weight_map": split.tensor_to_filename})


def _check_target(path: Path, marker: str) -> None:
    """Only a new or empty folder, or an earlier folder of the same kind (holding `marker`), is replaced."""
    if path.exists() and not path.is_dir():
        raise FileExistsError(msg("model.save_target_not_folder", "{path} exists and is not a folder", path=path))
    if path.is_dir() and any(path.iterdir()) and not (path / marker).is_file():
        raise FileExistsError(msg("video.save_target_other_files", "{path} exists and holds other files than a "
                                  "saved model (no {marker}); refusing to replace it: give a new or empty folder",
                                  path=path, marker=marker))


def save_refusal(path: str | Path, label: str) -> str | None:
    """Why `path` cannot hold a `label` model (a single-file name), or None."""
    if Path(path).suffix.lower() in (".safetensors", ".ckpt", ".pt", ".pth", ".bin"):
        return msg("video.save_single_file", "{path}: {label} models are saved as diffusers folders (the "
                   "transformer folder, or the whole pipeline), not as one {suffix} file; give a folder", path=path,
                   label=label, suffix=Path(path).suffix)
    return None


def _refuse(path: Path, components: Components) -> None:
    refusal = save_refusal(path, declaration(components.family).label)
    if refusal:
        raise ValueError(refusal)


def save_transformer(components: Components, path: str | Path, *, dtype: torch.dtype | None = None,
                     states: StateOverrides | None = None) -> Path:
    """The transformer alone as a diffusers model folder at `path` (`states`: a fine-tune's trained weights
    under "unet", replacing the module's own)."""
    path = Path(path)
    _refuse(path, components)
    _check_target(path, "config.json")
    with atomic_folder(path) as folder:
        write_transformer(components, folder, dtype, states)
    return path


def save_pipeline(components: Components, path: str | Path, *, dtype: torch.dtype | None = None,
                  states: StateOverrides | None = None) -> Path:
    """The whole pipeline folder: the (fine-tuned) transformer, the VAE, the text encoders and tokenizers, the
    scheduler config and model_index.json."""
    path = Path(path)
    _refuse(path, components)
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
        _write_json(folder / "scheduler" / "scheduler_config.json", components.configs.scheduler)
        index = components.configs.model_index or load_arch_configs(family.epsilon.config_set).model_index
        _write_json(folder / "model_index.json", index)
    return path


def save_lora(folder: str | Path, transformer_lora: dict[str, torch.Tensor], *, dtype: torch.dtype | None = None,
              metadata: dict[str, str] | None = None) -> Path:
    """A LoRA of the transformer as diffusers writes it (the pipelines' save_lora_weights): `transformer_lora` in
    PEFT names (`blocks.0.attn1.to_q.lora_A.weight`, what `get_peft_model_state_dict` returns) saved under
    `transformer.` as `<folder>/pytorch_lora_weights.safetensors`, with `metadata` in the header."""
    path = Path(folder) / LORA_WEIGHTS
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {f"transformer.{key.removeprefix('transformer.')}": value
             for key, value in _cast(transformer_lora, dtype).items()}
    with atomic_path(path) as tmp:
        save_file(state, str(tmp), metadata={"format": "pt", **(metadata or {})})
    return path


class DiffusersFolderSaving:
    """A video spec's saving (mixed into its ModelSpecification): a full fine-tune as the transformer folder
    (finetrainers' `<output_dir>/transformer`), `save_pipeline` for the whole pipeline, single files refused."""

    families: tuple[str, ...]

    def save_refusal(self, path: str | Path) -> str | None:
        return save_refusal(path, declaration(self.families[0]).label)

    def save(self, components: Components, path: str | Path, *, dtype: torch.dtype | None = None,
             metadata: dict[str, str] | None = None, states: StateOverrides | None = None,
             safetensors: bool = True) -> Path:
        return save_transformer(components, path, dtype=dtype, states=states)

    def save_pipeline(self, components: Components, path: str | Path, *, dtype: torch.dtype | None = None,
                      states: StateOverrides | None = None) -> Path:
        return save_pipeline(components, path, dtype=dtype, states=states)
