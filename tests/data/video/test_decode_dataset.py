"""Decoding round trips, reshape modes, the scan's problem list and the clip set's batches."""

from __future__ import annotations

import random
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from backend.data.video.buckets import Buckets, check_buckets, parse_buckets
from backend.data.video.dataset import VideoClipSet, collate, reshape, scan
from backend.data.video.decode import VideoInfo, _upright, probe, read_clip
from backend.data.video.errors import VideoDataError, VideoDecodeError, format_problems
from backend.data.video.sources import VideoRecord, load_records

from .make_clips import background, frame_number, write_clip, write_corrupt, write_image


@pytest.mark.parametrize("suffix", [".mp4", ".webm", ".mov", ".mkv"])
def test_round_trip(tmp_path: Path, suffix: str) -> None:
    path = write_clip(tmp_path / f"c{suffix}", frames=13, size=(64, 48), fps=8, seed=3)
    assert probe(path) == VideoInfo(13, 64, 48, 8.0)
    clip = read_clip(path, [12, 0, 5, 5])
    assert clip.shape == (4, 3, 48, 64) and clip.dtype == torch.uint8
    assert [frame_number(f.numpy()) for f in clip] == [12, 0, 5, 5]
    corner = clip[1, :, 40, 2].tolist()  # background, away from the band and the moving square
    assert all(abs(a - b) <= 6 for a, b in zip(corner, background(3), strict=True))


def test_images_and_failures(tmp_path: Path) -> None:
    image = write_image(tmp_path / "i.jpg", size=(40, 24))
    assert probe(image) == VideoInfo(1, 40, 24, 0.0)
    assert read_clip(image, [0]).shape == (1, 3, 24, 40)
    with pytest.raises(VideoDecodeError, match="it is an image"):
        read_clip(image, [0, 1])
    with pytest.raises(VideoDecodeError, match=r"bad.mp4: cannot be read as a video \(Invalid data"):
        probe(write_corrupt(tmp_path / "bad.mp4"))
    with pytest.raises(VideoDecodeError, match="not a readable image"):
        probe(write_corrupt(tmp_path / "bad.png"))
    clip = write_clip(tmp_path / "c.mp4", frames=9)
    with pytest.raises(VideoDecodeError, match="ends after 9 decodable frame"):
        read_clip(clip, [3, 9])
    with pytest.raises(VideoDecodeError, match="unknown extension .flv"):
        probe(tmp_path / "x.flv")


def test_reshape_modes() -> None:
    video = torch.zeros(2, 3, 40, 80, dtype=torch.uint8)
    video[..., :, :10] = 255  # a white left eighth
    center = reshape(video, (32, 32), "center")
    assert center.shape == (2, 3, 32, 32) and center.dtype == torch.float32
    assert center.min() >= -1 and center.max() <= 1
    assert center[0, 0, :, 0].max() < -0.9  # the white quarter is cropped away at the centre
    stretched = reshape(video, (32, 32), "none")
    assert stretched[0, 0, 16, 0] > 0.9 and stretched[0, 0, 16, 31] < -0.9  # whole width, squeezed
    lefts = {reshape(video, (32, 32), "random", random.Random(s))[0, 0, 16, 0].item() > 0.9 for s in range(20)}
    assert lefts == {True, False}  # random crops land both on and off the white quarter
    with pytest.raises(VideoDataError, match="use one of center, random, none"):
        reshape(video, (32, 32), "bicubic")


def test_scan_lists_problems(tmp_path: Path) -> None:
    records = [
        VideoRecord(str(write_clip(tmp_path / "long.mp4", frames=17)), "long"),
        VideoRecord(str(write_clip(tmp_path / "short.webm", frames=5)), "short"),
        VideoRecord(str(write_corrupt(tmp_path / "bad.mov")), "bad"),
        VideoRecord(str(write_image(tmp_path / "img.png")), "image"),
    ]
    buckets = Buckets(video=((9, 32, 32), (17, 32, 32)))
    usable, problems = scan(records, buckets, temporal=4, spatial=16)
    assert [(Path(c.record.path).name, c.bucket) for c in usable] == [("long.mp4", (17, 32, 32)), ("img.png", (1, 32, 32))]
    assert [Path(p.path).name for p in problems] == ["short.webm", "bad.mov"]
    assert "5 frame(s), fewer than the shortest video bucket (9 frames)" in problems[0].problem
    assert "at most 5 frames" in problems[0].fix
    assert "Invalid data" in problems[1].problem and "re-encode" in problems[1].fix
    assert "2 file(s) in the video dataset cannot be used" in format_problems(problems)
    with pytest.raises(VideoDataError, match="short.webm"):
        VideoClipSet(records, buckets, temporal=4)


def test_clip_set_items_and_batches(tmp_path: Path) -> None:
    records = [VideoRecord(str(write_clip(tmp_path / f"v{i}.mp4", frames=17, size=(64, 48), seed=i)), f"v{i}")
               for i in range(5)]
    records += [VideoRecord(str(write_image(tmp_path / f"i{i}.png", size=(48, 48))), f"i{i}") for i in range(3)]
    buckets = Buckets(video=((9, 32, 48),), image=((32, 32),))
    usable, problems = scan(records, buckets, temporal=4, spatial=16)
    assert not problems
    spread = VideoClipSet(usable, buckets, "center")
    item = spread[0]
    assert item["video"].shape == (3, 9, 32, 48) and item["video"].dtype == torch.float32
    assert item["caption"] == "v0" and item["bucket"] == (9, 32, 48) and item["path"].endswith("v0.mp4")
    frames = ((item["video"].permute(1, 2, 3, 0) + 1) * 127.5).round().clamp(0, 255).to(torch.uint8).numpy()
    assert [frame_number(np.ascontiguousarray(f)) for f in frames] == [0, 2, 4, 6, 8, 10, 12, 14, 16]
    first = VideoClipSet(usable, buckets, "center", frame_selection="first")
    frames = ((first[0]["video"].permute(1, 2, 3, 0) + 1) * 127.5).round().to(torch.uint8).numpy()
    assert [frame_number(np.ascontiguousarray(f)) for f in frames] == list(range(9))
    assert spread[6]["video"].shape == (3, 1, 32, 32)

    batches = spread.batches(batch_size=2, seed=1, epoch=0)
    assert sorted(i for b in batches for i in b) == list(range(8))
    assert all(len({spread.clips[i].bucket for i in b}) == 1 for b in batches)
    assert sorted(len(b) for b in batches) == [1, 1, 2, 2, 2]
    assert batches == spread.batches(2, 1, 0) and batches != spread.batches(2, 1, 1)
    batch = collate([spread[i] for i in batches[0]])
    assert batch["video"].shape[0] == len(batches[0]) and batch["video"].ndim == 5
    with pytest.raises(ValueError, match="mixes buckets"):
        collate([spread[0], spread[6]])


def test_random_crops_repeat_per_epoch(tmp_path: Path) -> None:
    record = VideoRecord(str(write_clip(tmp_path / "wide.mp4", frames=9, size=(128, 32))), "x")
    clips = VideoClipSet([record], Buckets(video=((9, 32, 32),)), "random", seed=5, temporal=4)
    crops = []
    for epoch in range(6):
        clips.set_epoch(epoch)
        crops.append(clips[0]["video"])
    clips.set_epoch(0)
    assert torch.equal(clips[0]["video"], crops[0])
    assert any(not torch.equal(crops[0], c) for c in crops[1:])


def test_gif_and_upright_frames(tmp_path: Path) -> None:
    gif = write_clip(tmp_path / "a.gif", frames=5, size=(32, 16))
    info = probe(gif)
    assert (info.frames, info.width, info.height) == (5, 32, 16)
    assert [frame_number(f.numpy()) for f in read_clip(gif, [4, 1])] == [4, 1]
    # a phone's portrait video: stored landscape, display matrix rotation -90 (turn clockwise to show)
    stored = np.zeros((2, 3, 3), np.uint8)
    stored[0, 0] = 255  # top-left red
    frame = SimpleNamespace(rotation=-90, to_ndarray=lambda format: stored)
    upright = _upright(frame)  # type: ignore[arg-type]
    assert upright.shape == (3, 2, 3) and upright[0, -1, 0] == 255  # top-left went to top-right


def test_finetrainers_layout_to_batches(tmp_path: Path) -> None:
    """What the trainer does: flags -> records -> checked buckets -> scan -> clip set -> DataLoader."""
    root = tmp_path / "dataset"
    for i, suffix in enumerate([".mp4", ".webm", ".mov"]):
        write_clip(root / "videos" / f"{i}{suffix}", frames=17, size=(64, 48), seed=i)
    (root / "prompts.txt").write_text("a red square\na blue sky\na green field\n")
    (root / "videos.txt").write_text("videos/0.mp4\nvideos/1.webm\nvideos/2.mov\n")
    records = load_records(root, id_token="TOK")
    buckets = parse_buckets(["9x32x48", "17x32x48"])
    check_buckets(buckets, temporal=4, spatial=16, model="Wan 2.1")
    usable, problems = scan(records, buckets, temporal=4, spatial=16)
    assert not problems and {c.bucket for c in usable} == {(17, 32, 48)}
    clips = VideoClipSet(usable, buckets, "center", seed=0)
    loader = torch.utils.data.DataLoader(clips, batch_sampler=clips.batches(2, seed=0, epoch=0), collate_fn=collate)
    batches = list(loader)
    assert sorted(b["video"].shape[0] for b in batches) == [1, 2]
    assert batches[0]["video"].shape[1:] == (3, 17, 32, 48)
    assert all(c.startswith("TOK a ") for b in batches for c in b["caption"])
