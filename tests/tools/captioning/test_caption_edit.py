"""The caption editor library (torch-free, for the GUI) and the basic_caption command."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from backend.tools.captioning import basic_caption
from backend.tools.captioning.caption_editing import (
    apply_changes,
    filter_by_tags,
    format_preview,
    list_captions,
    plan_add_tag,
    plan_basic_edit,
    plan_remove_tag,
    save_caption,
    tag_frequencies,
)
from backend.tools.cli.light_cli import run_light_tool
from backend.tools.dataset.caption_files import IMAGE_EXTENSIONS
from tests.tools.image_sets import make_image

REPO = Path(__file__).resolve().parents[3]


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    for name, text in (("a.png", "1girl, solo, smile"), ("b.jpg", "1girl, hat"), ("c.webp", None)):
        make_image(tmp_path / name)
        if text is not None:
            (tmp_path / name).with_suffix(".txt").write_text(text + "\n", encoding="utf-8")
    return tmp_path


def run(*argv: str | Path) -> int:
    return run_light_tool(basic_caption.main, [str(a) for a in argv])


def test_library_lists_counts_filters_and_saves(folder: Path) -> None:
    entries = list_captions(folder, "txt")
    assert [(e.image.name, e.text) for e in entries] == [("a.png", "1girl, solo, smile"), ("b.jpg", "1girl, hat"),
                                                         ("c.webp", None)]
    assert tag_frequencies(entries) == [("1girl", 2), ("hat", 1), ("smile", 1), ("solo", 1)]
    assert [e.image.name for e in filter_by_tags(entries, include=["1girl"], exclude=["hat"])] == ["a.png"]
    path = save_caption(folder / "c.webp", "  new caption ", ".txt")
    assert path == folder / "c.txt" and path.read_text(encoding="utf-8") == "new caption\n"
    assert not list(folder.glob(".*.tmp"))


def test_bulk_tag_edits_are_previewed_then_applied(folder: Path) -> None:
    entries = list_captions(folder, ".txt")
    changes = plan_add_tag(entries, "solo")
    assert [(c.image.name, c.before, c.after) for c in changes] == [("b.jpg", "1girl, hat", "1girl, hat, solo")]
    assert "(new)" not in format_preview(changes)
    first = plan_add_tag(entries, "sks", first=True, include_missing=True)
    assert [c.after for c in first] == ["sks, 1girl, solo, smile", "sks, 1girl, hat", "sks"]
    assert "c.txt: (new) -> 'sks'" in format_preview(first)
    assert (folder / "b.txt").read_text(encoding="utf-8") == "1girl, hat\n"  # planning writes nothing
    apply_changes(plan_remove_tag(entries, "1girl"))
    assert [e.text for e in list_captions(folder, ".txt")] == ["solo, smile", "hat", None]


def test_prefix_postfix_find_replace_and_idempotence(folder: Path) -> None:
    entries = list_captions(folder, ".txt")
    changes = plan_basic_edit(entries, caption_text="a photo", prefix="sks", postfix="best", find="1girl",
                              replace="1boy")
    assert [c.after for c in changes] == ["sks, 1boy, solo, smile, best", "sks, 1boy, hat, best", "sks, a photo, best"]
    apply_changes(changes)
    again = plan_basic_edit(list_captions(folder, ".txt"), caption_text="a photo", prefix="sks", postfix="best")
    assert again == []  # prefix and postfix are not added twice
    only_missing = plan_basic_edit(entries, caption_text="a photo", only_missing=True)
    assert [(c.image.name, c.after) for c in only_missing] == [("c.webp", "a photo")]


def test_basic_caption_dry_run_then_write(folder: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(folder, "--caption_text", "a photo", "--prefix", "sks", "--dry_run") == 0
    out = capsys.readouterr().out
    assert f"{folder / 'a.txt'}: '1girl, solo, smile' -> 'sks, 1girl, solo, smile'" in out
    assert f"{folder / 'c.txt'}: (new) -> 'sks, a photo'" in out
    assert "3 would be written" in out
    assert not (folder / "c.txt").exists() and (folder / "a.txt").read_text(encoding="utf-8") == "1girl, solo, smile\n"

    assert run(folder, "--caption_text", "a photo", "--only_missing") == 0
    assert (folder / "c.txt").read_text(encoding="utf-8") == "a photo\n"
    assert "1 written, 2 skipped, 0 failed" in capsys.readouterr().out
    assert (folder / "a.txt").read_text(encoding="utf-8") == "1girl, solo, smile\n"


def test_non_utf8_caption_is_reported_and_left_alone(folder: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (folder / "b.txt").write_bytes("帽子".encode("cp932"))
    assert run(folder, "--add_tag", "solo") == 0
    out = capsys.readouterr().out
    assert f"failed: {folder / 'b.txt'}: caption file {folder / 'b.txt'} is not UTF-8" in out
    assert (folder / "b.txt").read_bytes() == "帽子".encode("cp932")
    assert (folder / "c.txt").read_text(encoding="utf-8") == "solo\n"


def test_bad_folder_and_nothing_to_do(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(tmp_path / "missing", "--caption_text", "x") == 2
    assert "does not exist" in capsys.readouterr().err
    assert run(tmp_path, "--dry_run") == 2
    assert "nothing to do" in capsys.readouterr().err


def test_gui_side_modules_do_not_import_torch() -> None:
    code = ("import sys, backend.tools.captioning.caption_editing, backend.tools.dataset.dataset_layout, "
            "backend.tools.captioning.basic_caption; "
            "assert 'torch' not in sys.modules, 'torch imported'")
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]


def test_image_extensions_match_the_trainer() -> None:
    from backend.data.discovery import IMAGE_EXTENSIONS as TRAINER_EXTENSIONS

    assert IMAGE_EXTENSIONS == TRAINER_EXTENSIONS
