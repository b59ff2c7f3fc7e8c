"""Bucket flags, their check against a family's VAE, and finetrainers' bucket choice."""

from __future__ import annotations

import pytest

from backend.data.video.buckets import (
    Buckets,
    check_buckets,
    choose_bucket,
    default_video_buckets,
    frame_indices,
    parse_buckets,
)
from backend.data.video.errors import VideoDataError


def test_parse_strings_and_lists() -> None:
    buckets = parse_buckets("49x512x768 17x256x256, 49x512x768", ["512x768", "256X256"])
    assert buckets.video == ((49, 512, 768), (17, 256, 256))
    assert buckets.image == ((512, 768), (256, 256))
    assert parse_buckets(["9x64x64"]).image == ()


def test_parse_errors_name_every_token() -> None:
    with pytest.raises(VideoDataError) as info:
        parse_buckets("49x512 49x0x64 axbxc", "512x768x3")
    text = str(info.value)
    assert "--video_resolution_buckets '49x512': expected FxHxW" in text
    assert "--video_resolution_buckets 49x0x64: every number must be at least 1" in text
    assert "'axbxc'" in text
    assert "--image_resolution_buckets '512x768x3': expected HxW" in text
    with pytest.raises(VideoDataError, match="no resolution buckets"):
        parse_buckets(None, "")


def test_check_against_the_vae() -> None:
    check_buckets(parse_buckets("49x512x768 1x256x256", "512x512"), temporal=8, spatial=32, model="LTX-Video")
    with pytest.raises(VideoDataError) as info:
        check_buckets(parse_buckets("50x512x768 49x500x768", "520x512"), temporal=8, spatial=32, model="LTX-Video")
    text = str(info.value)
    assert "50x512x768: 50 frames: LTX-Video's VAE takes 1 + 8k frames: use 49 or 57" in text
    assert "500x768: height 500 is not a multiple of 32, which LTX-Video needs: use 480 or 512" in text
    assert "520x512: height 520" in text
    with pytest.raises(VideoDataError, match="use 13 or 17"):
        check_buckets(parse_buckets("16x64x64"), temporal=4, spatial=16, model="Wan 2.1")


def test_defaults_fit_the_model() -> None:
    ltx = default_video_buckets(temporal=8, spatial=32)
    assert {f for f, _, _ in ltx.video} == {49}
    assert (49, 512, 768) in ltx.video and all(h % 32 == 0 and w % 32 == 0 for _, h, w in ltx.video)
    check_buckets(ltx, 8, 32, "LTX-Video")
    check_buckets(default_video_buckets(temporal=4, spatial=16), 4, 16, "Wan")


def test_choice_follows_finetrainers() -> None:
    buckets = Buckets(video=((9, 64, 64), (17, 64, 128), (17, 64, 64), (33, 64, 64)), image=((32, 32), (32, 64)))
    # the largest frame count not above the clip's, then the nearest aspect ratio
    assert choose_bucket(buckets, 20, 100, 210) == (17, 64, 128)
    assert choose_bucket(buckets, 20, 100, 100) == (17, 64, 64)
    assert choose_bucket(buckets, 33, 50, 50) == (33, 64, 64)
    assert choose_bucket(buckets, 12, 50, 100) == (9, 64, 64)
    assert choose_bucket(buckets, 8, 64, 64) is None  # shorter than every bucket: no silent wrong length
    assert choose_bucket(buckets, 1, 30, 70, image=True) == (1, 32, 64)
    # images without image buckets: the video buckets' sizes at one frame
    assert choose_bucket(Buckets(video=((9, 64, 128),)), 1, 10, 10, image=True) == (1, 64, 128)


def test_frame_selection() -> None:
    assert frame_indices(17, 9, "first") == list(range(9))
    assert frame_indices(17, 9, "spread") == [0, 2, 4, 6, 8, 10, 12, 14, 16]
    assert frame_indices(20, 9) == [0, 2, 4, 7, 9, 11, 14, 16, 19]  # torch.linspace(0, 19, 9).long()
    assert frame_indices(9, 9) == list(range(9)) and frame_indices(5, 1) == [0]
    with pytest.raises(VideoDataError, match="use one of spread, first"):
        frame_indices(9, 9, "middle")
