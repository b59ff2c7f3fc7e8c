"""Precomputed clip latents on disk (finetrainers' `--enable_precomputation` / `--precompute_conditions`, in
`--precomputation_dir`, default `output_dir/precomputed`).

One safetensors file per clip, `latents/<hash of the clip's path>.safetensors`, whose metadata records what
the latents were made from: the clip file (size, mtime), its bucket, the reshape mode (and, for a random
crop, the seed that drew it), the VAE (model identity, dtype, tiling) and this format's version. A file that
disagrees on any of them is encoded again; a valid one is read instead of decoding and encoding the clip.
So, unlike finetrainers, a second run reuses what still holds without `--precomputation_reuse`, and never
trains on latents of a clip that changed since. Files are written atomically (a killed run leaves none
half-written). The text conditions go to `conditions/` through the image trainer's text cache
(backend/training/text_cache.py, `TextCacheConfig.folder`).
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open

from backend.atomic import atomic_save_safetensors

FORMAT_VERSION = 1
LATENTS_FOLDER = "latents"
CONDITIONS_FOLDER = "conditions"


def precomputation_folder(precomputation_dir: str | None, output_dir: str) -> Path:
    """finetrainers' default: `output_dir/precomputed`."""
    return Path(precomputation_dir) if precomputation_dir else Path(output_dir) / "precomputed"


@dataclass(frozen=True)
class LatentKey:
    """Everything a clip's latents file must agree with to be reused."""

    clip: str  # absolute path
    clip_stat: tuple[int, int]  # (bytes, mtime_ns)
    bucket: tuple[int, int, int]  # frames, height, width
    reshape: str  # --video_reshape_mode
    draw: str  # the seed of a random crop ("" when nothing is random)
    vae: str  # model identity, dtype, tiling

    def record(self) -> str:
        return json.dumps({"format_version": FORMAT_VERSION, **asdict(self)}, sort_keys=True)


def latent_key(clip: str, bucket: tuple[int, int, int], reshape: str, seed: int, vae: str) -> LatentKey:
    stat = os.stat(clip)
    return LatentKey(os.path.abspath(clip), (stat.st_size, stat.st_mtime_ns), tuple(bucket), reshape,
                     str(seed) if reshape == "random" else "", vae)  # fmt: skip


class LatentStore:
    """The `latents/` folder of a precomputation folder."""

    def __init__(self, folder: Path) -> None:
        self.folder = Path(folder) / LATENTS_FOLDER

    def file(self, key: LatentKey) -> Path:
        return self.folder / (hashlib.sha256(key.clip.encode()).hexdigest()[:24] + ".safetensors")

    def load(self, key: LatentKey) -> torch.Tensor | None:
        """The stored latents when they were made for `key`, else None (missing, stale or unreadable)."""
        path = self.file(key)
        if not path.is_file():
            return None
        try:
            with safe_open(str(path), framework="pt") as stored:
                if (stored.metadata() or {}).get("key") != key.record():
                    return None
                return stored.get_tensor("latents")
        except (OSError, ValueError, RuntimeError, SafetensorError):  # unreadable or truncated: encoded again
            return None

    def save(self, key: LatentKey, latents: torch.Tensor) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        atomic_save_safetensors({"latents": latents.contiguous()}, self.file(key), metadata={"key": key.record()})
