"""Text-encoder output cache files (`--cache_text_encoder_outputs_to_disk`), one caption per file.

Each family's file name and arrays are sd-scripts' (its spec's `text_cache_file`), so sd-scripts reads
our files: SDXL `<stem>_te_outputs.npz` with `hidden_state1` (TE1's penultimate hidden states,
[tokens, 768]), `hidden_state2` (TE2's, [tokens, 1280]) and `pool2` (TE2's projected pooled output,
[1280]); FLUX.1 `<stem>_flux_te.npz` with `l_pooled`, `t5_out`, `txt_ids`, `t5_attn_mask` and
`apply_t5_attn_mask`. sd-scripts reuses any file that has those arrays, so an edited caption or another model silently
trains on stale conditioning; ours also record the caption, the model id, max_token_length and
the compute dtype, and a file that disagrees on any of them (or has no record, as sd-scripts'
own) is encoded again. bf16 is stored as float32 (NumPy has no bfloat16): exact both ways.
Files are written under a temporary name and renamed, so a crash never leaves a valid-looking
half file.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from backend.atomic import atomic_write

FORMAT_VERSION = 1
Arrays = dict[str, torch.Tensor]


@dataclass(frozen=True)
class TextCacheKey:
    """Everything a cache file must agree with to be reused."""

    caption: str
    encoder_id: str  # e.g. the model file's name
    max_token_length: int
    dtype: str  # compute dtype the outputs were made in, e.g. "bfloat16"
    encoding: str = ""  # the family's other encoding choices (FLUX.1: T5 length and mask); "" for SDXL


@dataclass(frozen=True)
class TextCacheFile:
    """A family's cache file: sd-scripts' name and arrays, and how one caption's conditioning (a
    `PromptEmbeds` without a batch axis) becomes those arrays and back."""

    suffix: str  # "_te_outputs.npz"
    arrays: tuple[str, ...]
    to_arrays: Callable[[Any], Arrays]
    from_arrays: Callable[[Arrays, torch.dtype], Any]
    encoding: str = ""  # recorded in the key (TextCacheKey.encoding)
    # None: beside the image, as sd-scripts does. A folder (the video trainer's --precomputation_dir): files named
    # by a hash of the sample's path there, so clips of one name in different folders never share a file.
    folder: Path | None = None

    def path(self, image_path: str | Path) -> Path:
        if self.folder is not None:
            name = os.path.abspath(image_path) if str(image_path) else ""  # "": a dropped caption's own file
            return self.folder / (hashlib.sha256(name.encode()).hexdigest()[:24] + self.suffix)
        image_path = Path(image_path)
        return image_path.with_name(image_path.stem + self.suffix)



def load_if_valid(path: Path, key: TextCacheKey, arrays: tuple[str, ...]) -> Arrays | None:
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
                encoding=str(npz["encoding"]) if "encoding" in npz else "",
            )
            if stored != key:
                return None
            return {name: torch.from_numpy(npz[name]) for name in arrays}
    except (OSError, ValueError, KeyError, EOFError):
        return None  # unreadable: rebuild


def _numpy(tensor: torch.Tensor) -> np.ndarray:
    tensor = tensor.detach().cpu()
    return (tensor.float() if tensor.dtype == torch.bfloat16 else tensor).numpy()


def save_outputs(path: Path, key: TextCacheKey, outputs: Arrays) -> None:
    arrays = {name: _numpy(tensor) for name, tensor in outputs.items()}
    with atomic_write(path, "wb") as f:
        np.savez(
            f, **arrays, format_version=np.array(FORMAT_VERSION), caption=np.array(key.caption),
            encoder_id=np.array(key.encoder_id), max_token_length=np.array(key.max_token_length),
            dtype=np.array(key.dtype), encoding=np.array(key.encoding),
        )
