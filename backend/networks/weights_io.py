"""Reading and writing LoRA files: safetensors (with metadata) or torch pickles (.ckpt/.pt).

Saving is atomic (a temporary file in the same folder, then `os.replace`), so an interrupted save
never leaves a truncated file under the final name, and refuses weights that are NaN or infinite
(or become infinite in the saved precision): `NonFiniteWeightsError`, nothing written.

`sshs_model_hash` / `sshs_legacy_hash` are the hashes sd-webui-additional-networks computes when it
indexes a file; sd-scripts precomputes them (library/train_util.py `precalculate_safetensors_hashes`)
over the tensors serialized with only the `ss_*` metadata, so user-editable metadata such as
modelspec titles does not change them:

- model hash: sha256 of everything after the safetensors header (the tensor bytes);
- legacy hash: first 8 hex digits of sha256 of the 64 KiB at offset 1 MiB of the serialized file.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Mapping
from pathlib import Path

import safetensors.torch
import torch

from backend.atomic import atomic_path
from backend.finite_weights import ensure_finite
from backend.messages import msg
from backend.models.file_checks import check_weights_file

StateDict = dict[str, torch.Tensor]


def is_safetensors(path: str | os.PathLike[str]) -> bool:
    return Path(path).suffix.lower() == ".safetensors"


def load_weights_file(path: str | os.PathLike[str]) -> tuple[StateDict, dict[str, str]]:
    """(tensors, metadata); torch pickles have no metadata. A damaged, cut short or foreign file is a
    `ModelFileError` saying so (backend/models/file_checks.py)."""
    check_weights_file(path)
    if is_safetensors(path):
        with safetensors.safe_open(str(path), framework="pt") as handle:
            metadata = dict(handle.metadata() or {})
        return safetensors.torch.load_file(str(path)), metadata
    state = torch.load(str(path), map_location="cpu", weights_only=True)
    if not isinstance(state, dict):
        raise ValueError(msg("network.weights.not_a_state_dict", "{path} does not hold a LoRA state dict", path=path))
    return state, {}


def precalculate_safetensors_hashes(tensors: Mapping[str, torch.Tensor], metadata: Mapping[str, str]) -> tuple[str, str]:
    """(sshs_model_hash, sshs_legacy_hash) exactly as sd-scripts computes them."""
    training_metadata = {k: v for k, v in metadata.items() if k.startswith("ss_")}
    data = safetensors.torch.save(dict(tensors), training_metadata)
    header_size = int.from_bytes(data[:8], "little")
    model_hash = hashlib.sha256(data[8 + header_size :]).hexdigest()
    legacy_hash = hashlib.sha256(data[0x100000 : 0x100000 + 0x10000]).hexdigest()[:8]
    return model_hash, legacy_hash


def save_weights_file(
    path: str | os.PathLike[str],
    state_dict: Mapping[str, torch.Tensor],
    dtype: torch.dtype | None = None,
    metadata: Mapping[str, str] | None = None,
) -> None:
    """Write `state_dict` (cast to `dtype`) to `path`; safetensors files also get the sshs hashes.

    Raises NonFiniteWeightsError (a ValueError) before anything is written when a tensor is not finite."""
    ensure_finite(state_dict, str(path), dtype)  # also values that overflow `dtype` (fp16: above 65504)
    tensors = {
        key: value.detach().to("cpu", dtype=dtype if dtype is not None else value.dtype).contiguous()
        for key, value in state_dict.items()
    }
    with atomic_path(path) as temp:
        if is_safetensors(path):
            header = {key: str(value) for key, value in (metadata or {}).items()}
            header["sshs_model_hash"], header["sshs_legacy_hash"] = precalculate_safetensors_hashes(tensors, header)
            safetensors.torch.save_file(tensors, str(temp), header)
        else:
            torch.save(tensors, temp)


def module_dims(weights_sd: Mapping[str, torch.Tensor]) -> dict[str, tuple[int, float]]:
    """{lora_name: (rank, alpha)} from a LoRA state dict; files without alpha mean alpha = rank."""
    dims: dict[str, int] = {}
    alphas: dict[str, float] = {}
    for key, value in weights_sd.items():
        name, _, param = key.partition(".")
        if param == "lora_down.weight":
            dims[name] = int(value.shape[0])
        elif param == "alpha":
            alphas[name] = float(value.float().item())
    return {name: (dim, alphas.get(name, float(dim))) for name, dim in dims.items()}


def weights_from(file: str | os.PathLike[str] | None, weights_sd: Mapping[str, torch.Tensor] | None) -> StateDict:
    """The given state dict, else the file's (create_network_from_weights takes either)."""
    if weights_sd is not None:
        return dict(weights_sd)
    if file is None:
        raise ValueError("create_network_from_weights needs a file or weights_sd")
    return load_weights_file(file)[0]
