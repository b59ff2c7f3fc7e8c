"""The caption editor on a video folder (issue 18): videos listed beside images with their first frame as the
thumbnail (decoded without torch), their `.txt` captions edited and saved like an image's."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from PIL import Image

from backend.tools.dataset.video_thumbnail import first_frame
from gui.dataset import caption_editor_actions as actions
from gui.i18n import Translator
from tests.data.video.make_clips import clip_frame, write_clip, write_corrupt

T = Translator("en")


def load(folder: Path) -> dict:
    return actions.load({"folder": str(folder), "extension": ".txt", "separator": ","}, T)


def test_videos_are_listed_with_their_first_frame_and_captions_saved(tmp_path: Path) -> None:
    root = tmp_path / "clips"
    write_clip(root / "a.mp4", frames=9, size=(64, 48), fps=8, seed=1)
    (root / "a.txt").write_text("a red square, moving\n", encoding="utf-8")
    write_clip(root / "b.webm", frames=5, size=(32, 32), fps=8)
    write_clip(root / "c.mov", frames=5, size=(32, 32), fps=8)
    Image.new("RGB", (16, 16)).save(root / "d.png")
    write_corrupt(root / "e.mp4")
    result = load(root)
    assert [Path(p).name for p in result["state"].images] == ["a.mp4", "b.webm", "c.mov", "d.png", "e.mp4"]
    slots = result["slots"]
    assert (slots[0].name, slots[0].text, slots[0].caption_file, slots[0].editable) == (
        "a.mp4", "a red square, moving", "a.txt", True)
    # The first frame, upright and at its size: its colours are the clip's frame 0 (lossy, so roughly).
    assert slots[0].image is not None and slots[0].image.size == (64, 48)
    expected = clip_frame(0, (64, 48), seed=1)
    pixel, want = slots[0].image.getpixel((2, 40)), tuple(int(v) for v in expected[40, 2])
    assert all(abs(a - b) < 24 for a, b in zip(pixel, want, strict=True)), (pixel, want)
    assert slots[1].image is not None and slots[2].image is not None
    assert slots[4].image is None and "no frame of this video can be decoded" in slots[4].note
    assert ["moving", 1] in result["tags"]
    saved = actions.save(result["state"], ["a red square", "a blue clip"] + [None] * (len(slots) - 2), T)
    assert saved["message"] == "Saved 2 caption(s): a.txt, b.txt"
    assert (root / "b.txt").read_text(encoding="utf-8") == "a blue clip\n"


def test_a_folder_with_nothing_to_caption_names_videos_too(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    message = load(tmp_path / "empty")["message"]
    assert "no images" in message and "videos (mp4, webm, mov" in message


def test_the_thumbnail_helper_keeps_torch_out(tmp_path: Path) -> None:
    write_clip(tmp_path / "a.mp4", frames=5, size=(40, 30), fps=8)
    assert first_frame(tmp_path / "a.mp4", 20).size == (20, 15)
    assert first_frame(tmp_path / "missing.mp4") is None
    code = ("import sys; from backend.tools.dataset.video_thumbnail import first_frame; "
            f"first_frame({str(tmp_path / 'a.mp4')!r}); "
            "import gui.dataset.caption_editor_actions; assert 'torch' not in sys.modules")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=Path(__file__).parents[3])
