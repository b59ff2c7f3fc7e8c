"""Textual Inversion files: what A1111, ComfyUI and diffusers load, and what --weights reads back.

One tensor of shape [vectors, width] per text encoder, under the family's key (`FamilyDeclaration.embedding_keys`):
SD 1.x/2.x `emb_params`, SDXL `clip_l` and `clip_g`, as sd-scripts writes them. `.safetensors` carries the
metadata; `.pt`/`.ckpt` are a pickled dict (no metadata), as sd-scripts and A1111 write them.
"""

from __future__ import annotations

import logging
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from backend.atomic import atomic_path
from backend.messages import msg

logger = logging.getLogger(__name__)

EMBEDDING_FORMATS = ("safetensors", "pt", "ckpt")


class EmbeddingFileError(ValueError):
    """--weights names a file that holds no embedding this run can continue."""


def write_embedding(path: Path, vectors: dict[str, torch.Tensor], dtype: torch.dtype | None,
                    metadata: dict[str, str] | None) -> Path:
    """Under a temporary name, then renamed: never a half-written file."""
    tensors = {key: value.detach().to("cpu", dtype=dtype or value.dtype).contiguous() for key, value in vectors.items()}
    with atomic_path(path) as temp:
        if path.suffix == ".safetensors":
            save_file(tensors, str(temp), metadata)
        else:
            torch.save(tensors, temp)
    return path


def _load(path: Path) -> dict:
    if path.suffix == ".safetensors":
        return load_file(str(path))
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception:  # A1111's .pt files pickle more than tensors (its string_to_token dict, a ParameterDict)
        logger.warning(msg("run.embedding_pickle", "{path} holds Python objects besides tensors (an A1111 "
                           "embedding); it is read as the file you chose", path=path))
        return torch.load(path, map_location="cpu", weights_only=False)


def _first_tensor(data: dict) -> torch.Tensor | None:
    if "string_to_param" in data:  # A1111's own format: {"string_to_param": {"*": tensor}, ...}
        data = data["string_to_param"]
        data = getattr(data, "_parameters", data)
    for value in data.values():
        if isinstance(value, torch.Tensor):
            return value
    return None


def read_embedding(path: str | Path, keys: tuple[str, ...]) -> list[torch.Tensor]:
    """The vectors of each text encoder (`keys` in text-encoder order), each [vectors, width]."""
    path = Path(path)
    try:
        data = _load(path)
    except Exception as exc:
        raise EmbeddingFileError(msg("run.embedding_unreadable", "--weights {path} could not be read as an "
                                     "embedding file ({error})", path=path, error=f"{type(exc).__name__}: {exc}")) from exc
    if not isinstance(data, dict):
        raise EmbeddingFileError(msg("run.embedding_not_dict", "--weights {path} holds no dictionary of tensors",
                                     path=path))
    if len(keys) == 1:
        found = [data[keys[0]] if isinstance(data.get(keys[0]), torch.Tensor) else _first_tensor(data)]
    else:
        found = [data.get(key) for key in keys]
    if any(not isinstance(tensor, torch.Tensor) for tensor in found):
        raise EmbeddingFileError(msg(
            "run.embedding_keys", "--weights {path} has no {keys} tensor(s) (it holds: {found}); an embedding of "
            "this model type is needed", path=path, keys=" / ".join(keys),
            found=", ".join(map(str, data)) or "nothing",
        ))
    return [tensor.unsqueeze(0) if tensor.dim() == 1 else tensor for tensor in found]
