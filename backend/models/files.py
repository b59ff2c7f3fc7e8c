"""Reading single-file checkpoints: ``.safetensors`` and pickled ``.ckpt``/``.pt``/``.pth``.

Pickles are read with ``weights_only=True`` (no code execution). Old Lightning checkpoints nest
the weights under ``state_dict``; files written by us put string metadata under ``metadata``,
mirroring the safetensors header.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import load_file

SAFETENSORS_SUFFIXES = (".safetensors",)
PICKLE_SUFFIXES = (".ckpt", ".pt", ".pth", ".bin")
CONFIG_METADATA_KEY = "diffusers_configs"


def is_single_file(path: str | Path) -> bool:
    return Path(path).suffix.lower() in SAFETENSORS_SUFFIXES + PICKLE_SUFFIXES


def _unwrap_pickle(obj: object, path: Path) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    if not isinstance(obj, Mapping):
        raise ValueError(f"{path} does not contain a state dict")
    metadata = obj.get("metadata") if isinstance(obj.get("metadata"), Mapping) else {}
    while isinstance(obj.get("state_dict"), Mapping):
        obj = obj["state_dict"]
    tensors = {k: v for k, v in obj.items() if isinstance(v, torch.Tensor)}
    if not tensors:
        raise ValueError(f"{path} contains no tensors")
    return tensors, {str(k): str(v) for k, v in metadata.items()}


def _load_pickle(path: Path, mmap: bool, device: str = "cpu") -> object:
    try:
        return torch.load(path, map_location=device, weights_only=True, mmap=mmap)
    except RuntimeError:
        # Legacy (non-zip) pickles cannot be memory-mapped.
        if not mmap:
            raise
        return torch.load(path, map_location=device, weights_only=True)


def read_metadata(path: str | Path) -> dict[str, str]:
    path = Path(path)
    if path.suffix.lower() in SAFETENSORS_SUFFIXES:
        with safe_open(str(path), framework="pt") as f:
            return dict(f.metadata() or {})
    return _unwrap_pickle(_load_pickle(path, mmap=True), path)[1]


def read_shapes(path: str | Path) -> tuple[dict[str, tuple[int, ...]], dict[str, str]]:
    """Key -> shape and metadata, without materialising tensors (safetensors) or models."""
    path = Path(path)
    if path.suffix.lower() in SAFETENSORS_SUFFIXES:
        with safe_open(str(path), framework="pt") as f:
            shapes = {k: tuple(f.get_slice(k).get_shape()) for k in f.keys()}  # noqa: SIM118 - not a dict
            return shapes, dict(f.metadata() or {})
    tensors, metadata = _unwrap_pickle(_load_pickle(path, mmap=True), path)
    return {k: tuple(v.shape) for k, v in tensors.items()}, metadata


def read_checkpoint(path: str | Path, device: str = "cpu") -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """All tensors of a single file and its string metadata; `device` other than the CPU reads the
    tensors straight into that device's memory (--lowram), never holding the model in RAM."""
    path = Path(path)
    if path.suffix.lower() in SAFETENSORS_SUFFIXES:
        return load_file(str(path), device=device), read_metadata(path)
    return _unwrap_pickle(_load_pickle(path, mmap=False, device=device), path)


def model_identity(path: str | Path) -> str:
    """A short id that changes when the model's weights change: name, size and modification time of
    the file (or of every weights file in a diffusers folder). Caches of latents and text-encoder
    outputs record it, so another checkpoint that happens to share a file name never reuses them."""
    path = Path(path)
    files = [path] if path.is_file() else sorted(
        p for p in path.rglob("*") if p.is_file() and p.suffix in (".safetensors", ".bin", ".ckpt")
    )
    parts = [f"{p.relative_to(path) if p != path else p.name}:{p.stat().st_size}:{int(p.stat().st_mtime)}"
             for p in files]
    digest = hashlib.sha256("|".join(parts).encode()).hexdigest()[:16]
    return f"{path.name}:{digest}"
