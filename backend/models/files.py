"""Reading single-file checkpoints: ``.safetensors`` and pickled ``.ckpt``/``.pt``/``.pth``.

Pickles are read with ``weights_only=True`` (no code execution). Old Lightning checkpoints nest
the weights under ``state_dict``; files written by us put string metadata under ``metadata``,
mirroring the safetensors header.

Every file is checked before it is read (``file_checks``): a file that is cut short, empty, damaged
or no model at all is a ``ModelFileError`` naming the file and what to do, never a reader's traceback.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Mapping
from pathlib import Path

import torch

from backend.messages import msg
from backend.models import scaled_fp8
from backend.models.file_checks import (
    check_pickle_file,
    cut_short,
    pickle_load_error,
    read_safetensors_header,
)
from backend.models.file_kinds import no_state_dict_error

SAFETENSORS_SUFFIXES = (".safetensors",)
SAFETENSORS_DTYPES = {
    "F64": torch.float64, "F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16,
    "I64": torch.int64, "I32": torch.int32, "I16": torch.int16, "I8": torch.int8, "U8": torch.uint8,
    "BOOL": torch.bool, "F8_E4M3": torch.float8_e4m3fn, "F8_E5M2": torch.float8_e5m2,
}
PICKLE_SUFFIXES = (".ckpt", ".pt", ".pth", ".bin")
CONFIG_METADATA_KEY = "diffusers_configs"


def is_single_file(path: str | Path) -> bool:
    return Path(path).suffix.lower() in SAFETENSORS_SUFFIXES + PICKLE_SUFFIXES


def _unwrap_pickle(obj: object, path: Path) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    if not isinstance(obj, Mapping):
        raise no_state_dict_error(path, [])
    metadata = obj.get("metadata") if isinstance(obj.get("metadata"), Mapping) else {}
    while isinstance(obj.get("state_dict"), Mapping):
        obj = obj["state_dict"]
    tensors = {k: v for k, v in obj.items() if isinstance(v, torch.Tensor)}
    if not tensors:  # e.g. an embedding: {"string_to_param": {"*": tensor}, "name": ...}
        raise no_state_dict_error(path, [str(k) for k in obj])
    return tensors, {str(k): str(v) for k, v in metadata.items()}


def _load_pickle(path: Path, mmap: bool, device: str = "cpu") -> object:
    check_pickle_file(path)
    try:
        try:
            return torch.load(path, map_location=device, weights_only=True, mmap=mmap)
        except RuntimeError:
            # Legacy (non-zip) pickles cannot be memory-mapped.
            if not mmap:
                raise
            return torch.load(path, map_location=device, weights_only=True)
    except Exception as exc:  # torch raises many types (KeyError, EOFError, UnpicklingError) for a bad file
        raise pickle_load_error(path, exc) from exc


def read_metadata(path: str | Path) -> dict[str, str]:
    path = Path(path)
    if path.suffix.lower() in SAFETENSORS_SUFFIXES:
        return read_safetensors_header(path).metadata
    return _unwrap_pickle(_load_pickle(path, mmap=True), path)[1]


def read_shapes(path: str | Path) -> tuple[dict[str, tuple[int, ...]], dict[str, str]]:
    """Key -> shape and metadata, without materialising tensors (safetensors) or models."""
    path = Path(path)
    if path.suffix.lower() in SAFETENSORS_SUFFIXES:
        header = read_safetensors_header(path)
        return header.shapes(), header.metadata
    tensors, metadata = _unwrap_pickle(_load_pickle(path, mmap=True), path)
    return {k: tuple(v.shape) for k, v in tensors.items()}, metadata


def read_checkpoint(
    path: str | Path, device: str = "cpu", dtype: torch.dtype | None = None
) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """All tensors of a single file and its string metadata; `device` other than the CPU reads the
    tensors straight into that device's memory (--lowram), never holding the model in RAM. `dtype`
    casts floating-point tensors as they are read (a .safetensors file is never held in RAM whole). ComfyUI's
    scaled-fp8 files come back with their scales applied (backend/models/scaled_fp8.py)."""
    path = Path(path)
    if path.suffix.lower() in SAFETENSORS_SUFFIXES:
        tensors, metadata = _read_safetensors(path, device, dtype)
        return scaled_fp8.unscale(tensors, dtype), metadata
    tensors, metadata = _unwrap_pickle(_load_pickle(path, mmap=False, device=device), path)
    if dtype is not None:
        for key in list(tensors):  # one tensor at a time: the source is freed before the next cast
            if tensors[key].is_floating_point():
                tensors[key] = tensors[key].to(dtype)
    return scaled_fp8.unscale(tensors, dtype), metadata


def _read_safetensors(
    path: Path, device: str, dtype: torch.dtype | None
) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """A .safetensors file read tensor by tensor with plain reads, each cast and placed before the
    next is read. safetensors' own `load_file` holds the whole file in anonymous memory and `safe_open`
    maps it (mapped pages count in the process's RSS): loading an fp16 SD 1.5 file as fp32 peaked at
    model + file, 6.4 GiB, against 4.5 GiB this way. The format: an 8-byte little-endian header size,
    a JSON header of {name: {dtype, shape, data_offsets}}, then the data (checked first: see file_checks)."""
    tensors: dict[str, torch.Tensor] = {}
    header = read_safetensors_header(path)
    with open(path, "rb") as file:
        for name, info in sorted(header.tensors.items(), key=lambda item: item[1]["data_offsets"][0]):
            stored = SAFETENSORS_DTYPES.get(info["dtype"])
            if stored is None:
                raise ValueError(msg("model.dtype_unreadable", "{path}: tensor {name} has dtype {dtype}, which cannot "
                                     "be read here", path=path, name=name, dtype=info["dtype"]))
            begin, end = info["data_offsets"]
            buffer = bytearray(end - begin)
            file.seek(header.data_start + begin)
            if file.readinto(buffer) != len(buffer):  # the file shrank since its header was checked
                raise cut_short(path, file.tell(), header.data_start + end)
            tensor = (torch.frombuffer(buffer, dtype=stored) if buffer else torch.empty(0, dtype=stored))
            tensor = tensor.reshape(info["shape"])
            wanted = dtype if dtype is not None and tensor.is_floating_point() else stored
            tensors[name] = tensor.to(device=device, dtype=wanted)  # unchanged: the tensor owns the buffer
    return tensors, header.metadata


def model_identity(path: str | Path) -> str:
    """A short id that changes when the model's weights change: name, size and modification time of
    the file (or of every weights file in a diffusers folder). Caches of latents and text-encoder
    outputs record it, so another checkpoint that happens to share a file name never reuses them."""
    path = Path(path)
    # os.walk follows linked folders (the video trainer's model views link their components), rglob does not
    files = [path] if path.is_file() else sorted(
        Path(root) / name for root, _, names in os.walk(path, followlinks=True) for name in names
        if Path(name).suffix in (".safetensors", ".bin", ".ckpt")
    )
    parts = [f"{p.relative_to(path) if p != path else p.name}:{p.stat().st_size}:{int(p.stat().st_mtime)}"
             for p in files]
    digest = hashlib.sha256("|".join(parts).encode()).hexdigest()[:16]
    return f"{path.name}:{digest}"
