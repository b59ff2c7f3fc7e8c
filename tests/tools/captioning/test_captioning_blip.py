"""make_captions (BLIP) end to end on the tiny BLIP model: files, summary, progress, overwrite rules, errors."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from backend.tools.captioning import make_captions
from backend.tools.cli.light_cli import run_light_tool
from devtools.tiny_captioners import make_tiny_blip
from tests.tools.image_sets import broken_image, make_image, progress_events

REPO = Path(__file__).resolve().parents[3]
FAST = ["--max_length", "8", "--min_length", "2", "--device", "cpu"]


@pytest.fixture(scope="module")
def tiny_blip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_tiny_blip(tmp_path_factory.mktemp("tiny-blip"))


def run(*argv: str | Path) -> int:
    return run_light_tool(make_captions.main, [str(a) for a in argv])


def test_captions_every_readable_image_and_reports_the_rest(
    tiny_blip: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    make_image(tmp_path / "red.png")
    make_image(tmp_path / "wide.jpg", (64, 32), (0, 0, 255))
    make_image(tmp_path / "alpha.webp", (32, 32), (0, 255, 0, 128), mode="RGBA")
    broken_image(tmp_path / "broken.png")
    assert run(tmp_path, "--model_id", tiny_blip, "--batch_size", "2", "--caption_extension", "txt", *FAST) == 0
    out = capsys.readouterr().out
    for name in ("red", "wide", "alpha"):
        caption = (tmp_path / f"{name}.txt").read_text(encoding="utf-8")
        assert caption.endswith("\n") and caption.strip()  # random tiny model, but real words
    assert not (tmp_path / "broken.txt").exists()
    assert "3 written, 0 skipped, 1 failed" in out
    assert f"failed: {tmp_path / 'broken.png'}: unreadable image" in out
    events = progress_events(out)
    assert [e["event"] for e in events] == ["start", "step", "step", "step", "step", "end"]
    assert [e["step"] for e in events if e["event"] == "step"] == [1, 2, 3, 4]
    assert {e["total"] for e in events if e["event"] == "step"} == {4}
    assert not list(tmp_path.glob(".*.tmp"))  # atomic writes leave no temporary files


def test_existing_captions_are_kept_unless_overwrite_or_append(
    tiny_blip: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    make_image(tmp_path / "a.png")
    caption = tmp_path / "a.caption"
    caption.write_text("keep me\n", encoding="utf-8")
    # Nothing to do: no model is loaded, so a model id that does not exist is never looked up.
    assert run(tmp_path, "--model_id", "nobody/no-such-model") == 0
    assert caption.read_text(encoding="utf-8") == "keep me\n"
    assert "0 written, 1 skipped, 0 failed" in capsys.readouterr().out

    assert run(tmp_path, "--model_id", tiny_blip, "--append", "--beam_search", "--num_beams", "2", *FAST) == 0
    appended = caption.read_text(encoding="utf-8").strip()
    assert appended.startswith("keep me, ") and len(appended) > len("keep me, ")
    assert run(tmp_path, "--model_id", tiny_blip, "--append", "--beam_search", "--num_beams", "2", *FAST) == 0
    assert caption.read_text(encoding="utf-8").strip() == appended  # beam search is deterministic: not doubled

    assert run(tmp_path, "--model_id", tiny_blip, "--overwrite", *FAST) == 0
    assert not caption.read_text(encoding="utf-8").startswith("keep me")


@pytest.mark.parametrize("case", ["missing", "file", "empty", "gif only"])
def test_bad_folders_fail_clearly_before_any_model_loads(
    case: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    target = tmp_path / "images"
    if case == "file":
        target.write_text("x")
    elif case == "empty":
        target.mkdir()
    elif case == "gif only":
        target.mkdir()
        (target / "anim.gif").write_bytes(b"GIF89a")
    assert run(target, "--model_id", "nobody/no-such-model") == 2
    err = capsys.readouterr().err
    expected = {"missing": "does not exist", "file": "must be a folder", "empty": "it is empty",
                "gif only": ".gif images are not supported"}[case]
    assert err.startswith("error: ") and expected in err and str(target) in err


def test_offline_without_cache_names_the_model_and_the_option(tmp_path: Path) -> None:
    make_image(tmp_path / "images" / "a.png")
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp_path / "hf"),
           "HF_HUB_CACHE": str(tmp_path / "hf" / "hub")}
    result = subprocess.run([sys.executable, "-m", "backend.tools.make_captions", str(tmp_path / "images")],
                            cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 2, result.stderr[-2000:]
    assert "Traceback" not in result.stderr
    assert "Salesforce/blip-image-captioning-large" in result.stderr
    assert "--model_id" in result.stderr and str(tmp_path / "hf" / "hub") in result.stderr
    errors = [e for e in progress_events(result.stdout) if e["event"] == "error"]
    assert errors and "Salesforce/blip-image-captioning-large" in errors[0]["message"]
    assert not (tmp_path / "images" / "a.caption").exists()
