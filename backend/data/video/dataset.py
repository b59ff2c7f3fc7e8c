"""Clips ready for a VAE: the scan that checks every file once, and the clip set the loop reads.

    usable, problems = scan(records, buckets, temporal, spatial)    # preflight, before any model loads
    clips = VideoClipSet(usable, buckets, reshape_mode="center")
    clips[i] -> {"video": float32 [3, F, H, W] in [-1, 1], "caption", "path", "bucket": (F, H, W)}
    clips.batches(batch_size, seed, epoch) -> [[i, ...], ...]       # same-bucket indices per batch

`--video_reshape_mode` (finetrainers' values): "center" and "random" resize the clip until it
covers the bucket and crop the rest (centred, or at a place drawn from seed, epoch and index);
"none" resizes straight to the bucket size, stretching when the aspect ratios differ. (finetrainers
0.0.x declares these three but its trainer always stretches, and its crop code treats "none" as
"random"; here each value does what its name says.) Resizing is bilinear with antialiasing, in
float, clamped to [-1, 1].
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from backend.data.video.buckets import (
    Buckets,
    VideoBucket,
    choose_bucket,
    frame_indices,
    valid_frame_neighbours,
)
from backend.data.video.decode import VideoInfo, probe, read_clip
from backend.data.video.errors import ClipProblem, VideoDataError, VideoDecodeError, format_problems
from backend.data.video.sources import VideoRecord
from backend.messages import msg

RESHAPE_MODES = ("center", "random", "none")


@dataclass(frozen=True)
class ScannedClip:
    """A record that decodes, with what the probe found and the bucket it trains in."""

    record: VideoRecord
    info: VideoInfo
    bucket: VideoBucket


def scan(
    records: Sequence[VideoRecord], buckets: Buckets, temporal: int, spatial: int, threads: int = 4
) -> tuple[list[ScannedClip], list[ClipProblem]]:
    """Probe every file once: (clips with their bucket, files that cannot be used, each with what to do).

    `temporal` / `spatial` are the family's frame and size steps; they only shape the advice given
    for a clip that is shorter than every video bucket (the buckets are checked by `check_buckets`)."""
    del spatial  # sizes never stop a clip: every clip is resized to its bucket
    with ThreadPoolExecutor(max_workers=max(1, threads)) as pool:
        probes = list(pool.map(_probe_or_problem, records))
    usable, problems = [], []
    for record, result in zip(records, probes, strict=True):
        if isinstance(result, ClipProblem):
            problems.append(result)
            continue
        bucket = choose_bucket(buckets, result.frames, result.height, result.width, image=record.is_image)
        if bucket is None:
            problems.append(_too_short(record, result, buckets, temporal))
            continue
        usable.append(ScannedClip(record, result, bucket))
    return usable, problems


def _probe_or_problem(record: VideoRecord) -> VideoInfo | ClipProblem:
    try:
        return probe(record.path)
    except VideoDecodeError as exc:
        fix = msg(
            "video.scan.fix_undecodable",
            "play it in a video player; re-encode it (ffmpeg -i in -c:v libx264 -pix_fmt yuv420p out.mp4) or remove "
            "it from the dataset",
        )  # fmt: skip
        return ClipProblem(record.path, exc.reason, fix)


def _too_short(record: VideoRecord, info: VideoInfo, buckets: Buckets, temporal: int) -> ClipProblem:
    shortest = buckets.min_video_frames
    if shortest is None:  # a video in a run with image buckets only
        problem = msg("video.scan.no_video_buckets", "a video, but only image buckets are given")
        fix = msg(
            "video.scan.fix_no_video_buckets",
            "add --video_resolution_buckets (FxHxW, e.g. 49x512x768), or remove the video",
        )  # fmt: skip
        return ClipProblem(record.path, problem, fix)
    problem = msg(
        "video.scan.too_short", "{frames} frame(s), fewer than the shortest video bucket ({shortest} frames)",
        frames=info.frames, shortest=shortest,
    )  # fmt: skip
    fitting = valid_frame_neighbours(info.frames, temporal)[0]
    fix = msg(
        "video.scan.fix_too_short",
        "remove the clip, or add a video bucket of at most {fitting} frames (the VAE takes 1 + {temporal}k)",
        fitting=fitting, temporal=temporal,
    )  # fmt: skip
    return ClipProblem(record.path, problem, fix)


def check_reshape_mode(mode: str) -> None:
    if mode not in RESHAPE_MODES:
        raise VideoDataError(msg(
            "video.reshape.mode", "--video_reshape_mode {value}: use one of {choices}",
            value=mode, choices=", ".join(RESHAPE_MODES),
        ))  # fmt: skip


def reshape(video: torch.Tensor, size: tuple[int, int], mode: str, rng: random.Random | None = None) -> torch.Tensor:
    """uint8 [F, 3, h, w] -> float32 [F, 3, H, W] in [-1, 1] at `size` (H, W), per `--video_reshape_mode`."""
    check_reshape_mode(mode)
    clip = video.float().div_(127.5).sub_(1.0)
    height, width = clip.shape[-2:]
    target_h, target_w = size
    if mode == "none":
        return _resize(clip, (target_h, target_w))
    scale = max(target_h / height, target_w / width)
    covered = (max(target_h, round(height * scale)), max(target_w, round(width * scale)))
    clip = _resize(clip, covered)
    extra_h, extra_w = covered[0] - target_h, covered[1] - target_w
    if mode == "random":
        rng = rng or random.Random()
        top, left = rng.randint(0, extra_h), rng.randint(0, extra_w)
    else:
        top, left = extra_h // 2, extra_w // 2
    return clip[..., top: top + target_h, left: left + target_w].contiguous()


def _resize(clip: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    if tuple(clip.shape[-2:]) == size:
        return clip
    resized = F.interpolate(clip, size=size, mode="bilinear", align_corners=False, antialias=True)
    return resized.clamp_(-1.0, 1.0)


class VideoClipSet(torch.utils.data.Dataset):
    """Decoded, bucketed clips: a map-style dataset plus the bucket-grouped batch order."""

    def __init__(
        self,
        clips: Sequence[ScannedClip | VideoRecord],
        buckets: Buckets,
        reshape_mode: str = "center",
        *,
        frame_selection: str = "spread",
        temporal: int = 1,
        seed: int = 0,
    ) -> None:
        """`clips` from `scan`; plain records are scanned here (any problem: `VideoDataError` listing all)."""
        check_reshape_mode(reshape_mode)
        frame_indices(1, 1, frame_selection)  # an unknown selection fails now, not in a DataLoader worker
        records = [c for c in clips if isinstance(c, VideoRecord)]
        scanned = [c for c in clips if isinstance(c, ScannedClip)]
        if records:
            found, problems = scan(records, buckets, temporal, 1)
            if problems:
                raise VideoDataError(format_problems(problems))
            scanned += found
        if not scanned:
            raise VideoDataError(msg("video.dataset.empty", "the video dataset has no clips to train on"))
        self.clips = scanned
        self.buckets = buckets
        self.reshape_mode = reshape_mode
        self.frame_selection = frame_selection
        self.seed = seed
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Random crops are drawn from (seed, epoch, index): the same epoch gives the same crops."""
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.clips)

    def __getitem__(self, index: int) -> dict:
        clip = self.clips[index]
        frames, height, width = clip.bucket
        indices = frame_indices(clip.info.frames, frames, self.frame_selection)
        rng = random.Random(f"{self.seed}/{self.epoch}/{index}")
        video = reshape(read_clip(clip.record.path, indices), (height, width), self.reshape_mode, rng)
        return {
            "video": video.permute(1, 0, 2, 3).contiguous(),  # [F, 3, H, W] -> [3, F, H, W]
            "caption": clip.record.caption,
            "path": clip.record.path,
            "bucket": clip.bucket,
        }

    def bucket_counts(self) -> dict[VideoBucket, int]:
        counts: dict[VideoBucket, int] = {}
        for clip in self.clips:
            counts[clip.bucket] = counts.get(clip.bucket, 0) + 1
        return counts

    def batches(self, batch_size: int, seed: int, epoch: int) -> list[list[int]]:
        """Indices in batches of one bucket each (the last of a bucket may be smaller, as finetrainers
        keeps it), shuffled within buckets and in batch order; the same (seed, epoch) gives the same list."""
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}")
        rng = random.Random(f"batches/{seed}/{epoch}")
        groups: dict[VideoBucket, list[int]] = {}
        for index, clip in enumerate(self.clips):
            groups.setdefault(clip.bucket, []).append(index)
        batches = []
        for bucket in sorted(groups):
            members = groups[bucket]
            rng.shuffle(members)
            batches += [members[i: i + batch_size] for i in range(0, len(members), batch_size)]
        rng.shuffle(batches)
        return batches


def collate(items: Sequence[dict]) -> dict:
    """One batch of same-bucket items: "video" [B, 3, F, H, W], lists of captions and paths."""
    buckets = {item["bucket"] for item in items}
    if len(buckets) != 1:
        raise ValueError(f"a batch mixes buckets {sorted(buckets)}: build batches with VideoClipSet.batches")
    return {
        "video": torch.stack([item["video"] for item in items]),
        "caption": [item["caption"] for item in items],
        "path": [item["path"] for item in items],
        "bucket": items[0]["bucket"],
    }
