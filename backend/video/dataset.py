"""The video clips as the training loop's datasets: the same batch plan, shares and determinism as the
image datasets (backend/data/dataset.py), over clips instead of images.

An epoch's global batches hold clips of one bucket (frames x height x width), shuffled by (seed, epoch);
each process loads its share of a batch (data/shares.py), so N processes train what one process with
N times the batch trains, and a resumed run sees the batches the uninterrupted one would have seen.
Each sample's caption dropout (finetrainers' `--caption_dropout_p`, technique "empty": the caption
becomes "") is drawn from (seed, epoch, batch, position in it). With `--precompute_conditions` the clips'
latents are encoded once before training (`precompute_latents`, files reused while valid: video/precomputed.py)
and the VAE leaves the device.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import torch

from backend.data.captions import CaptionStep
from backend.data.dataset import DatasetGroup
from backend.data.shares import rank_share
from backend.video.precomputed import LatentStore, latent_key

Bucket = tuple[int, int, int]  # frames, height, width


class ClipSource(Protocol):
    """The data layer's clips (backend/data/video): count, a clip's bucket, a clip's tensor and caption."""

    def __len__(self) -> int: ...
    def bucket(self, index: int) -> Bucket: ...
    def path(self, index: int) -> str: ...
    def caption(self, index: int) -> str: ...
    def reshape_mode(self, index: int) -> str: ...  # --video_reshape_mode: center, random or none
    def video(self, index: int, rng: random.Random) -> torch.Tensor: ...  # [3, F, H, W] in [-1, 1]


@dataclass(frozen=True)
class VideoDataSpec:
    """What the shared rooms read of a dataset's settings (run_setup: resolution; resume_position: batch size)."""

    batch_size: int  # per process
    resolution: tuple[int, int]  # width, height of the largest bucket
    caption_dropout_p: float = 0.0


class VideoTrainDataset:
    def __init__(self, clips: ClipSource, spec: VideoDataSpec, seed: int, processes: int = 1) -> None:
        self.clips = clips
        self.spec = spec
        self.seed = seed
        self.processes = processes
        self.batch_size = spec.batch_size * processes
        self.buckets: dict[Bucket, list[int]] = {}
        for index in range(len(clips)):
            self.buckets.setdefault(clips.bucket(index), []).append(index)
        self.buckets = dict(sorted(self.buckets.items()))
        self.latents: dict[int, torch.Tensor] = {}
        self.num_train_images = len(clips)
        self.num_reg_images = 0
        self._plan: tuple[int, list[tuple[Bucket, list[int]]]] | None = None

    @property
    def subsets(self) -> list[Any]:
        return []

    @property
    def latents_cached(self) -> bool:
        return bool(self.latents)

    def __len__(self) -> int:
        return sum(math.ceil(len(items) / self.batch_size) for items in self.buckets.values())

    def batches(self, epoch: int) -> list[tuple[Bucket, list[int]]]:
        """This epoch's global batches as (bucket, clip indices), in training order."""
        if self._plan is None or self._plan[0] != epoch:
            rng = random.Random(f"{self.seed}/{epoch}/video-plan")
            plan = []
            for bucket, items in self.buckets.items():
                items = list(items)
                rng.shuffle(items)
                plan += [(bucket, items[i: i + self.batch_size]) for i in range(0, len(items), self.batch_size)]
            rng.shuffle(plan)
            self._plan = (epoch, plan)
        return self._plan[1]

    def caption_for(self, index: int, rng: random.Random) -> str:
        if self.spec.caption_dropout_p and rng.random() < self.spec.caption_dropout_p:
            return ""
        return self.clips.caption(index)

    def load_batch(
        self, epoch: int, batch_index: int, salt: str = "", rank: int = 0, step: CaptionStep | None = None
    ) -> dict[str, Any]:
        """`step` is the image datasets' (token warm-up); clips keep their captions whole."""
        bucket, indices = self.batches(epoch)[batch_index]
        share = rank_share(len(indices), rank, self.processes)
        captions, videos, latents, paths = [], [], [], []
        for position in share.positions:
            index = indices[position]
            rng = random.Random(f"{self.seed}/{epoch}/{salt}/{batch_index}/{position}")
            captions.append(self.caption_for(index, rng))
            paths.append(self.clips.path(index))
            if index in self.latents:
                latents.append(self.latents[index])
            else:
                videos.append(self.clips.video(index, rng))
        frames, height, width = bucket
        return {
            "images": torch.stack(videos) if videos else None,
            "latents": torch.stack(latents) if latents else None,
            "captions": captions,
            "loss_weights": torch.ones(len(captions)),
            "alpha_masks": None,
            "image_paths": paths,
            "bucket_reso": (width, height),
            "frames": frames,
            "positions": list(share.positions),
            "share_weight": share.weight,
        }

    def validation_dataset(self) -> None:
        return None


class VideoDatasetGroup(DatasetGroup):
    """The run's video datasets as the loop's DatasetGroup; captions are fixed unless dropped to ""."""

    def caption_variation(self) -> list[str]:
        return []

    def fixed_captions(self) -> list[tuple[str, str]]:
        pairs = [(d.clips.path(i), d.clips.caption(i)) for d in self.datasets for i in range(len(d.clips))]
        if any(d.spec.caption_dropout_p for d in self.datasets):
            pairs.append(("", ""))  # the dropped caption, encoded once like the others
        return pairs

    def validation_group(self) -> None:
        return None


def precompute_latents(group: VideoDatasetGroup, encode: Callable[[torch.Tensor], torch.Tensor],
                       progress: Callable[[int, int], None] | None = None, store: LatentStore | None = None,
                       vae_id: str = "") -> int:
    """Every clip's latents, once, kept in memory (finetrainers' --precompute_conditions); the random parts of
    a clip (a random crop) are those of a fixed draw per clip. With a `store` (--precomputation_dir), valid
    files are read instead of encoded and the others written (backend/video/precomputed.py); `vae_id` names
    the VAE in their records. Returns how many clips were read from the store."""
    todo: Sequence[tuple[VideoTrainDataset, int]] = [(d, i) for d in group.datasets for i in range(len(d.clips))]
    read = 0
    for done, (dataset, index) in enumerate(todo, start=1):
        clips = dataset.clips
        path = clips.path(index)
        key = None
        if store is not None:
            key = latent_key(path, clips.bucket(index), clips.reshape_mode(index), dataset.seed, vae_id)
        latents = store.load(key) if store is not None and key is not None else None
        if latents is None:
            video = clips.video(index, random.Random(f"{dataset.seed}/precompute/{path}"))
            with torch.no_grad():
                latents = encode(video[None])[0].cpu()
            if store is not None and key is not None:
                store.save(key, latents)
        else:
            read += 1
        dataset.latents[index] = latents
        if progress is not None:
            progress(done, len(todo))
    return read
