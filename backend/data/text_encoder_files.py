"""SDXL text-encoder output cache files (`--cache_text_encoder_outputs_to_disk`): `<stem>_te_outputs.npz`.

Name and arrays are sd-scripts' (`SdxlTextEncoderOutputsCachingStrategy`), one caption per file,
so sd-scripts reads our files: `hidden_state1` (TE1's penultimate hidden states, [tokens, 768]),
`hidden_state2` (TE2's, [tokens, 1280]) and `pool2` (TE2's projected pooled output, [1280]).
sd-scripts reuses any file that has those arrays, so an edited caption or another model silently
trains on stale conditioning; ours also record the caption, the model id, max_token_length and
the compute dtype, and a file that disagrees on any of them (or has no record, as sd-scripts'
own) is encoded again. bf16 is stored as float32 (NumPy has no bfloat16): exact both ways.
Files are written under a temporary name and renamed, so a crash never leaves a valid-looking
half file.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from backend.atomic import atomic_write

TE_OUTPUTS_SUFFIX = "_te_outputs.npz"
FORMAT_VERSION = 1
ARRAYS = ("hidden_state1", "hidden_state2", "pool2")


@dataclass(frozen=True)
class TextCacheKey:
    """Everything a cache file must agree with to be reused."""

    caption: str
    encoder_id: str  # e.g. the model file's name
    max_token_length: int
    dtype: str  # compute dtype the outputs were made in, e.g. "bfloat16"


@dataclass
class TextEncoderOutputs:
    """One caption's outputs, without a batch axis."""

    hidden_state1: torch.Tensor
    hidden_state2: torch.Tensor
    pool2: torch.Tensor


def te_outputs_path(image_path: str | Path) -> Path:
    image_path = Path(image_path)
    return image_path.with_name(image_path.stem + TE_OUTPUTS_SUFFIX)


def load_if_valid(path: Path, key: TextCacheKey) -> TextEncoderOutputs | None:
    """The outputs stored in `path` when they were made for `key`, else None (missing, stale or foreign)."""
    if not path.is_file():
        return None
    try:
        with np.load(path) as npz:
            if "format_version" not in npz or int(npz["format_version"]) != FORMAT_VERSION:
                return None
            stored = TextCacheKey(
                caption=str(npz["caption"]),
                encoder_id=str(npz["encoder_id"]),
                max_token_length=int(npz["max_token_length"]),
                dtype=str(npz["dtype"]),
            )
            if stored != key:
                return None
            return TextEncoderOutputs(*(torch.from_numpy(npz[name]) for name in ARRAYS))
    except (OSError, ValueError, KeyError, EOFError):
        return None  # unreadable: rebuild


def _numpy(tensor: torch.Tensor) -> np.ndarray:
    tensor = tensor.detach().cpu()
    return (tensor.float() if tensor.dtype == torch.bfloat16 else tensor).numpy()


def save_outputs(path: Path, key: TextCacheKey, outputs: TextEncoderOutputs) -> None:
    arrays = {name: _numpy(getattr(outputs, name)) for name in ARRAYS}
    with atomic_write(path, "wb") as f:
        np.savez(
            f, **arrays, format_version=np.array(FORMAT_VERSION), caption=np.array(key.caption),
            encoder_id=np.array(key.encoder_id), max_token_length=np.array(key.max_token_length),
            dtype=np.array(key.dtype),
        )
