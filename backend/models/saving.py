"""Saving :class:`Components` as a diffusers folder or an original-layout single file.

Writes go to a temporary sibling and are moved into place with ``os.replace`` (``backend/atomic.py``:
``atomic_path`` for single files, ``atomic_folder`` for diffusers folders), so an interrupted save
never leaves a truncated model under the final name, and every file gets the mode a plain ``open()``
gives (safetensors alone would write 0600 files). Single files carry their exact diffusers
configs in metadata (``diffusers_configs``), which makes files with non-standard widths (the tiny
test models) loadable, plus the basic ``modelspec.*`` keys other tools read.

``states`` lets a caller save weights other than the modules' own (a fine-tune's EMA weights, or
frozen parts in their source precision while the live copies run in half precision), keyed
``unet``, ``vae``, ``text_encoder1``, ``text_encoder2``; keys are the modules' own state-dict keys.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path

import torch
from safetensors.torch import save_file

from backend.atomic import atomic_folder, atomic_path
from backend.families import declaration
from backend.messages import msg
from backend.models.checkpoint import ComponentStates, join_original
from backend.models.components import Components
from backend.models.configs import load_arch_configs
from backend.models.files import CONFIG_METADATA_KEY, SAFETENSORS_SUFFIXES, is_single_file
from backend.models.keymap_text import from_module_keys


def _cast(state: dict[str, torch.Tensor], dtype: torch.dtype | None) -> dict[str, torch.Tensor]:
    return {
        k: (v.to(dtype) if dtype is not None and v.is_floating_point() else v).detach().cpu().contiguous()
        for k, v in state.items()
    }


def single_file_metadata(components: Components, title: str) -> dict[str, str]:
    family = declaration(components.family)
    return {
        "modelspec.sai_model_spec": "1.0.0",
        "modelspec.architecture": family.architecture(components.v_prediction, lora=False),
        "modelspec.implementation": family.implementation_url(lora=False),
        "modelspec.title": title,
        "modelspec.prediction_type": "v" if components.v_prediction else "epsilon",
        CONFIG_METADATA_KEY: components.configs.to_json(),
    }


StateOverrides = Mapping[str, Mapping[str, torch.Tensor]]


def module_state(components: Components, name: str, states: StateOverrides | None) -> dict[str, torch.Tensor]:
    """The weights to save for ``name`` (``unet``, ``vae``, ``text_encoder<i>``): an override or the module's own."""
    if states and name in states:
        return dict(states[name])
    if name in ("unet", "vae"):
        return getattr(components, name).state_dict()
    return components.text_encoders[int(name.removeprefix("text_encoder")) - 1].state_dict()


def _write_single_file(
    components: Components, path: Path, dtype: torch.dtype | None, metadata: dict[str, str],
    overrides: StateOverrides | None = None,
) -> None:
    states = ComponentStates(
        unet=module_state(components, "unet", overrides),
        vae=module_state(components, "vae", overrides),
        text_encoders=[
            from_module_keys(module_state(components, f"text_encoder{i}", overrides), te)
            for i, te in enumerate(components.text_encoders, start=1)
        ],
        extras=components.extras,
    )
    state = _cast(join_original(states, components.configs), dtype)
    meta = single_file_metadata(components, path.stem) | metadata
    with atomic_path(path) as tmp:
        if path.suffix.lower() in SAFETENSORS_SUFFIXES:
            save_file(state, str(tmp), metadata=meta)
        else:
            torch.save({"state_dict": state, "metadata": meta}, tmp)


def _write_json(path: Path, data: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n", encoding="utf-8")


def _write_weights(state: dict[str, torch.Tensor], folder: Path, stem: str, safetensors: bool) -> None:
    """``<stem>.safetensors``, or ``<stem>.bin`` (torch pickle, diffusers' other weight name) when not safetensors."""
    if safetensors:
        save_file(state, str(folder / f"{stem}.safetensors"), metadata={"format": "pt"})
    else:
        torch.save(state, folder / f"{stem}.bin")


def _write_vocabulary_files(tokenizer: object, folder: Path) -> None:
    """`vocab.json` and `merges.txt` beside transformers 5's `tokenizer.json`: transformers 4's CLIPTokenizer
    (what model_index.json names, and what diffusers on transformers 4 loads) reads only those two."""
    model = getattr(getattr(tokenizer, "backend_tokenizer", None), "model", None)
    if model is not None and hasattr(model, "save") and not (folder / "vocab.json").is_file():
        model.save(str(folder))


def write_diffusers_folder(
    components: Components, folder: Path, dtype: torch.dtype | None, states: StateOverrides | None = None,
    safetensors: bool = True,
) -> None:
    """Write every component of a diffusers pipeline into ``folder`` (which must be new or empty)."""
    configs = components.configs
    for name, module in (("unet", components.unet), ("vae", components.vae)):
        (folder / name).mkdir(parents=True, exist_ok=True)
        module.save_config(folder / name)
        state = _cast(module_state(components, name, states), dtype)
        _write_weights(state, folder / name, "diffusion_pytorch_model", safetensors)
    family = declaration(components.family)
    for index, (name, te) in enumerate(zip(family.text_encoder_folders, components.text_encoders, strict=True),
                                       start=1):
        te.config.save_pretrained(str(folder / name))
        # Keys in the classic `text_model.` layout: transformers 5 loads both layouts, but transformers 4
        # (sd-scripts pins 4.54) silently builds a random text encoder from transformers 5's flat keys.
        state = _cast(from_module_keys(module_state(components, f"text_encoder{index}", states), te), dtype)
        _write_weights(state, folder / name, "pytorch_model" if not safetensors else "model", safetensors)
    for name, tokenizer in zip(family.tokenizer_folders, components.tokenizers, strict=True):
        tokenizer.save_pretrained(str(folder / name))
        _write_vocabulary_files(tokenizer, folder / name)
    _write_json(folder / "scheduler" / "scheduler_config.json", configs.scheduler)
    index = configs.model_index or load_arch_configs(family.epsilon.config_set).model_index
    _write_json(folder / "model_index.json", index)


def _check_replaceable(target: Path) -> None:
    """Only an empty folder or an earlier model folder may be replaced, never e.g. an output root."""
    if target.is_dir() and any(target.iterdir()) and not (target / "model_index.json").is_file():
        raise FileExistsError(msg("model.save_target_not_model_folder",
                                  "{path} exists and is not a diffusers model folder; refusing to replace it", path=target))
    if target.exists() and not target.is_dir():
        raise FileExistsError(msg("model.save_target_not_folder", "{path} exists and is not a folder", path=target))


def save_components(
    components: Components,
    path: str | Path,
    *,
    dtype: torch.dtype | None = None,
    metadata: dict[str, str] | None = None,
    states: StateOverrides | None = None,
    safetensors: bool = True,
) -> Path:
    """Save to ``path``: a ``.safetensors``/``.ckpt`` name writes one file, anything else a diffusers folder.

    ``dtype`` casts floating tensors (None keeps them); ``metadata`` is added to a single file's header.
    ``states`` replaces modules' weights (see the module docstring); ``safetensors`` False writes a
    diffusers folder's weights as ``.bin`` files.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if is_single_file(path):
        _write_single_file(components, path, dtype, metadata or {}, states)
        return path
    _check_replaceable(path)
    with atomic_folder(path) as folder:
        write_diffusers_folder(components, folder, dtype, states, safetensors)
    return path
