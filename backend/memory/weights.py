"""Parameter counts per model component and stored dtype, read from safetensors headers only.

A single file holds its components under the original (Stability) prefixes (the family declaration names
the text encoders' prefixes); a diffusers folder holds one folder per component. Files that hold only the
denoiser (FLUX.1, Chroma, SD 3.5 without its parts) get their other parts from the files the family's
`part_flags` options name. Pickled weights (.ckpt, .bin) cannot be read without torch: they are reported,
not guessed.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from backend.families.declaration import FamilyDeclaration
from backend.messages import msg
from backend.models.file_checks import read_safetensors_header

DTYPE_BYTES = {"F64": 8, "F32": 4, "F16": 2, "BF16": 2, "F8_E4M3": 1, "F8_E5M2": 1,
               "I64": 8, "I32": 4, "I16": 2, "I8": 1, "U8": 1, "BOOL": 1}  # fmt: skip
DENOISER, VAE = "denoiser", "vae"
_DENOISER_PREFIX = "model.diffusion_model."
_VAE_PREFIX = "first_stage_model."


class WeightsUnreadable(ValueError):
    """The planner cannot read the model's shapes (a pickle, a missing file); the message says which and why."""


@dataclass
class Component:
    """One part of the model: its tensors' shapes (for optimizer states and LoRA targets) and stored dtypes."""

    name: str  # "denoiser", "text_encoder_1", ..., "vae"
    shapes: dict[str, tuple[int, ...]] = field(default_factory=dict)
    stored: dict[str, int] = field(default_factory=dict)  # safetensors dtype -> parameter count

    @property
    def params(self) -> int:
        return sum(math.prod(shape) for shape in self.shapes.values())

    @property
    def stored_bytes(self) -> int:
        return sum(count * DTYPE_BYTES.get(dtype, 4) for dtype, count in self.stored.items())

    def add(self, key: str, info: Mapping[str, Any]) -> None:
        shape = tuple(int(n) for n in info.get("shape", ()))
        self.shapes[key] = shape
        dtype = str(info.get("dtype", "F32"))
        self.stored[dtype] = self.stored.get(dtype, 0) + math.prod(shape)


def text_encoder(index: int) -> str:
    return f"text_encoder_{index + 1}"


def _header(path: Path) -> dict[str, Any]:
    if path.suffix.lower() != ".safetensors":
        raise WeightsUnreadable(
            msg(
                "memory.not_safetensors",
                "{path}: the memory planner reads .safetensors headers only; a pickled file "
                "(.ckpt, .pt, .bin) cannot be read without loading it, so no estimate is made",
                path=path,
            )
        )
    return read_safetensors_header(path).tensors


def _single_file(path: Path, family: FamilyDeclaration) -> dict[str, Component]:
    prefixes = [(_DENOISER_PREFIX, DENOISER), (_VAE_PREFIX, VAE)]
    prefixes += [(te.prefix, text_encoder(i)) for i, te in enumerate(family.original_text_encoders)]
    parts: dict[str, Component] = {}
    for key, info in _header(path).items():
        name = next((part for prefix, part in prefixes if key.startswith(prefix)), None)
        if name is None:
            if family.original_text_encoders:
                continue  # an EMA copy, position ids, ...: never loaded
            name = DENOISER  # a file of the denoiser alone (FLUX.1), in its own names
        parts.setdefault(name, Component(name)).add(key, info)
    return parts


def _folder_component(folder: Path, name: str) -> Component | None:
    if not folder.is_dir():
        return None
    files = sorted(folder.glob("*.safetensors"))
    if not files:
        pickles = sorted(folder.glob("*.bin"))
        if pickles:
            _header(pickles[0])  # raises: says why
        return None
    part = Component(name)
    for file in files:
        for key, info in _header(file).items():
            part.add(key, info)
    return part


def _diffusers_folder(path: Path, family: FamilyDeclaration) -> dict[str, Component]:
    folders = [(family.denoiser_folder, DENOISER), ("vae", VAE)]
    folders += [(folder, text_encoder(i)) for i, folder in enumerate(family.text_encoder_folders)]
    parts = {}
    for folder, name in folders:
        part = _folder_component(path / folder, name)
        if part is not None:
            parts[name] = part
    return parts


def read_components(
    model: str | Path, family: FamilyDeclaration, options: Mapping[str, Any]
) -> dict[str, Component]:
    """Component name -> Component, from the base model and the files of the parts it lacks."""
    path = Path(model)
    if not path.exists():
        raise WeightsUnreadable(
            msg(
                "memory.model_missing",
                "{path}: no such file or folder; the memory planner reads the model's header",
                path=path,
            )
        )
    parts = _diffusers_folder(path, family) if path.is_dir() else _single_file(path, family)
    folder_names = {folder: text_encoder(i) for i, folder in enumerate(family.text_encoder_folders)}
    folder_names["vae"] = VAE
    for flag, folder in {**family.part_flags, **family.replaceable_parts}.items():
        value = options.get(flag)
        if not value or folder not in folder_names:
            continue
        part_path = Path(str(value))
        name = folder_names[folder]
        if part_path.is_dir():
            found = _folder_component(part_path, name) or _folder_component(part_path / folder, name)
        elif part_path.is_file():
            found = Component(name)
            for key, info in _header(part_path).items():
                found.add(key, info)
        else:
            continue  # preflight names a missing part file
        if found is not None:
            parts[name] = found
    if DENOISER not in parts:
        raise WeightsUnreadable(
            msg(
                "memory.no_denoiser",
                "{path}: no denoiser weights found in its header, so no memory estimate is made",
                path=path,
            )
        )
    return parts
