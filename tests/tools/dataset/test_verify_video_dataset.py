"""verify_video_dataset: train_video's data checks without a model (clips per bucket, unusable files with
what to do, the VAE's frame counts), --json, exit codes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from backend.tools.cli.light_cli import run_light_tool
from backend.tools.dataset import verify_video_dataset
from tests.data.video.make_clips import write_clip


def run(*argv: str | Path) -> int:
    return run_light_tool(verify_video_dataset.main, [str(a) for a in argv])


@pytest.fixture
def clips(tmp_path: Path) -> Path:
    root = tmp_path / "clips"
    for name, frames in (("long", 17), ("short", 9)):
        write_clip(root / f"{name}.mp4", frames=frames, size=(64, 48), fps=8, seed=1)
        (root / f"{name}.txt").write_text(f"a {name} clip", encoding="utf-8")
    return root


def test_a_good_folder_is_reported_per_bucket(clips: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(clips, "--model_name", "wan", "--video_resolution_buckets", "9x48x64 17x48x64", "--json") == 0
    report = json.loads(capsys.readouterr().out)
    assert report["ok"] and report["clips"] == 2 and report["model"] == "Wan 2.1 T2V"
    assert report["buckets"] == {"17x48x64": 1, "9x48x64": 1}
    assert {c["frames"] for c in report["clips_detail"]} == {17, 9}
    assert run(clips, "--model_name", "wan", "--video_resolution_buckets", "9x48x64") == 0
    text = capsys.readouterr().out
    assert "2 usable clip(s) for Wan 2.1 T2V" in text and "bucket 9x48x64 (frames x height x width): 2 clip(s)" in text


def test_unusable_files_and_impossible_frame_counts_are_listed_with_what_to_do(
        clips: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (clips / "broken.mp4").write_bytes(b"not a video")
    (clips / "broken.txt").write_text("a broken clip", encoding="utf-8")
    (clips / "uncaptioned.mp4").write_bytes((clips / "long.mp4").read_bytes())
    assert run(clips, "--model_name", "wan", "--video_resolution_buckets", "9x48x64") == 1
    text = capsys.readouterr().out
    assert "uncaptioned.mp4" in text and "no same-name .txt caption" in text
    (clips / "uncaptioned.mp4").unlink()
    assert run(clips, "--model_name", "wan", "--video_resolution_buckets", "9x48x64") == 1
    text = capsys.readouterr().out
    assert "broken.mp4" in text and "Not ready" in text
    (clips / "broken.mp4").unlink()
    (clips / "broken.txt").unlink()
    # LTX-Video's VAE takes 1 + 8k frames: 9 is fine, 10 is refused with the counts that work.
    assert run(clips, "--model_name", "ltx_video", "--video_resolution_buckets", "10x64x64") == 1
    assert "10 frames: LTX-Video's VAE takes 1 + 8k frames: use 9 or 17" in capsys.readouterr().out

