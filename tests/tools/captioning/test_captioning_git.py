"""make_captions_by_git end to end on the tiny GIT model, --remove_words, and the offline error (in-process)."""

from __future__ import annotations

from pathlib import Path

import pytest
from huggingface_hub import constants

from backend.tools.captioning import make_captions_by_git
from backend.tools.captioning.make_captions_by_git import remove_text_phrases
from backend.tools.cli.light_cli import run_light_tool
from devtools.tiny_captioners import make_tiny_git
from tests.tools.image_sets import broken_image, make_image, progress_events


@pytest.fixture(scope="module")
def tiny_git(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_tiny_git(tmp_path_factory.mktemp("tiny-git"))


def run(*argv: str | Path) -> int:
    return run_light_tool(make_captions_by_git.main, [str(a) for a in argv])


def test_git_captions_recursively_and_skips_unreadable(
    tiny_git: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    make_image(tmp_path / "a.png")
    make_image(tmp_path / "sub" / "b.jpg", (40, 60), (0, 0, 255))
    broken_image(tmp_path / "sub" / "c.png")
    argv = [tmp_path, "--model_id", tiny_git, "--max_length", "8", "--batch_size", "2", "--device", "cpu"]
    assert run(*argv, "--recursive", "--remove_words", "--debug") == 0
    out = capsys.readouterr().out
    assert (tmp_path / "a.caption").read_text(encoding="utf-8").strip()
    assert (tmp_path / "sub" / "b.caption").read_text(encoding="utf-8").strip()
    assert "2 written, 0 skipped, 1 failed" in out
    assert f"{tmp_path / 'a.png'}: " in out  # --debug prints each caption
    assert [e["step"] for e in progress_events(out) if e["event"] == "step"] == [1, 2, 3]

    assert run(*argv, "--recursive") == 0  # second run: every caption exists, nothing replaced
    assert "0 written, 2 skipped, 1 failed" in capsys.readouterr().out


@pytest.mark.parametrize(("caption", "expected"), [
    ('a sign that says "open" on it', "a sign"),
    ("a man with the words hello on his shirt", "a man"),
    ("a bottle with the number 3 on it", "a bottle"),
    ("a red car parked on a street", "a red car parked on a street"),
])
def test_remove_words(caption: str, expected: str) -> None:
    assert remove_text_phrases(caption) == expected


def test_offline_without_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                               capsys: pytest.CaptureFixture[str]) -> None:
    make_image(tmp_path / "images" / "a.png")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "empty-cache"))
    assert run(tmp_path / "images", "--device", "cpu") == 2
    err = capsys.readouterr().err
    assert "microsoft/git-large-textcaps" in err and "--model_id" in err and "Traceback" not in err


def test_model_folder_that_is_not_a_model_is_a_clear_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    make_image(tmp_path / "images" / "a.png")
    (tmp_path / "model").mkdir()
    assert run(tmp_path / "images", "--model_id", tmp_path / "model", "--device", "cpu") == 2
    assert "has no config.json" in capsys.readouterr().err
    # A config transformers cannot read (no model type, no weights): its error, named with the folder.
    (tmp_path / "model" / "config.json").write_text("{}", encoding="utf-8")
    assert run(tmp_path / "images", "--model_id", tmp_path / "model", "--device", "cpu") == 2
    err = capsys.readouterr().err
    assert f"cannot load the model in {tmp_path / 'model'}: " in err and "Traceback" not in err
    assert not (tmp_path / "images" / "a.caption").exists()
