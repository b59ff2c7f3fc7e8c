"""Precomputed latents and conditions on disk (backend/video/precomputed.py): reused while they match their
clip, bucket, crop and VAE, encoded again when any of them changed; files never half-written."""

from __future__ import annotations

import os
import random
from pathlib import Path

import torch

from backend.data.text_encoder_files import TextCacheKey, load_if_valid, save_outputs
from backend.families.wan.spec import WanSpec
from backend.models.components import PromptEmbeds
from backend.video.dataset import VideoDatasetGroup, VideoDataSpec, VideoTrainDataset, precompute_latents
from backend.video.precomputed import LatentStore, precomputation_folder


class Clips:
    """Two clip files with buckets and reshape modes the test changes."""

    def __init__(self, folder: Path) -> None:
        self.paths = [folder / "a.mp4", folder / "b.mp4"]
        for path in self.paths:
            path.write_bytes(b"not decoded: the encoder below reads the tensor")
        self.buckets = [(5, 64, 64), (5, 64, 64)]
        self.modes = ["center", "center"]
        self.decoded = 0

    def __len__(self) -> int:
        return 2

    def bucket(self, index: int) -> tuple[int, int, int]:
        return self.buckets[index]

    def path(self, index: int) -> str:
        return str(self.paths[index])

    def caption(self, index: int) -> str:
        return "a caption"

    def reshape_mode(self, index: int) -> str:
        return self.modes[index]

    def video(self, index: int, rng: random.Random) -> torch.Tensor:
        self.decoded += 1
        return torch.full((3, 5, 8, 8), float(index) + rng.random())


def precompute(clips: Clips, store: LatentStore, seed: int = 7, vae: str = "vae:1|float32|tiling=False"):
    dataset = VideoTrainDataset(clips, VideoDataSpec(batch_size=1, resolution=(64, 64)), seed)
    read = precompute_latents(VideoDatasetGroup([dataset], seed=seed), lambda v: v.mean(dim=1, keepdim=True) * 2,
                              store=store, vae_id=vae)
    return read, dataset.latents


def test_valid_files_are_read_and_a_changed_clip_bucket_crop_or_vae_is_encoded_again(tmp_path: Path) -> None:
    clips = Clips(tmp_path)
    store = LatentStore(precomputation_folder(None, str(tmp_path / "out")))
    assert store.folder == tmp_path / "out" / "precomputed" / "latents"
    read, first = precompute(clips, store)
    assert read == 0 and clips.decoded == 2 and len(list(store.folder.glob("*.safetensors"))) == 2

    read, again = precompute(clips, store)
    assert read == 2 and clips.decoded == 2  # nothing decoded: both read
    assert all(torch.equal(first[i], again[i]) for i in range(2))

    os.utime(clips.paths[0], ns=(1, 1))  # the clip file changed
    assert precompute(clips, store)[0] == 1
    clips.buckets[1] = (9, 64, 64)  # another bucket
    assert precompute(clips, store)[0] == 1
    assert precompute(clips, store, vae="vae:2|float32|tiling=False")[0] == 0  # another VAE

    clips.modes = ["random", "random"]  # a random crop depends on the seed, a centred one does not
    assert precompute(clips, store, seed=7)[0] == 0
    assert precompute(clips, store, seed=7)[0] == 2
    assert precompute(clips, store, seed=8)[0] == 0


def test_a_truncated_file_is_encoded_again(tmp_path: Path) -> None:
    clips = Clips(tmp_path)
    store = LatentStore(tmp_path / "pre")
    precompute(clips, store)
    victim = sorted(store.folder.glob("*.safetensors"))[0]
    victim.write_bytes(victim.read_bytes()[:40])
    assert precompute(clips, store)[0] == 1


def test_conditions_files_are_named_by_their_clip_in_the_folder_and_keep_the_embeds(tmp_path: Path) -> None:
    from dataclasses import replace

    file = replace(WanSpec().text_cache_file(None), folder=tmp_path / "conditions")
    first, second = file.path(tmp_path / "x" / "clip.mp4"), file.path(tmp_path / "y" / "clip.mp4")
    assert first.parent == tmp_path / "conditions" and first != second  # same name, other folder
    assert file.path("") not in (first, second)  # the dropped caption's own file
    key = TextCacheKey("a caption", "model:1", 0, "bfloat16", file.encoding)
    embeds = PromptEmbeds(torch.randn(6, 4).bfloat16())
    first.parent.mkdir()
    save_outputs(first, key, file.to_arrays(embeds))
    stored = load_if_valid(first, key, file.arrays)
    assert stored is not None and torch.equal(file.from_arrays(stored, torch.bfloat16).hidden_states, embeds.hidden_states)
    assert load_if_valid(first, replace(key, caption="another caption"), file.arrays) is None
    assert "max_sequence_length=" in file.encoding
