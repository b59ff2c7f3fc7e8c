"""merge_captions_to_metadata and merge_dd_tags_to_metadata: sd-scripts' semantics, with clear errors."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

import pytest
from PIL import Image

from backend.tools.metadata import merge_captions_to_metadata, merge_dd_tags_to_metadata
from backend.tools.metadata.metadata_io import run_metadata_tool


def image(folder: Path, name: str, caption: str | None = None, tags: str | None = None) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    Image.new("RGB", (16, 16), (10, 20, 30)).save(path)
    if caption is not None:
        path.with_suffix(".caption").write_text(f"  {caption}\n", encoding="utf-8")
    if tags is not None:
        path.with_suffix(".txt").write_text(tags, encoding="utf-8")
    return path


def captions(*argv: str | Path) -> int:
    return run_metadata_tool(merge_captions_to_metadata.main, [str(a) for a in argv])


def tags(*argv: str | Path) -> int:
    return run_metadata_tool(merge_dd_tags_to_metadata.main, [str(a) for a in argv])


def read(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8"))


def test_captions_then_tags_accumulate_in_out_json(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    folder = tmp_path / "imgs"
    image(folder, "a.png", caption="a dog", tags="dog, grass")
    image(folder, "b.jpg", caption="a cat")  # no tag file
    image(folder, "c.webp", tags="tree")  # no caption file
    out = tmp_path / "meta.json"
    with caplog.at_level(logging.INFO):
        assert captions(folder, out) == 0
    assert read(out) == {"a": {"caption": "a dog"}, "b": {"caption": "a cat"}}
    assert "1 of 3 images have no '.caption' file and got no caption: c.webp" in caplog.text

    caplog.clear()
    with caplog.at_level(logging.INFO):
        assert tags(folder, out) == 0  # no --in_json: the existing out.json is read, not replaced
    assert read(out) == {
        "a": {"caption": "a dog", "tags": "dog, grass"},
        "b": {"caption": "a cat"},
        "c": {"tags": "tree"},
    }
    assert "1 of 3 images have no '.txt' file and got no tags: b.jpg" in caplog.text
    assert "tags: 2 merged (1 new entries), 1 images without a '.txt' file" in caplog.text


def test_in_json_is_read_and_left_alone(tmp_path: Path) -> None:
    folder = tmp_path / "imgs"
    image(folder, "a.png", tags="x_y")
    source = tmp_path / "in.json"
    source.write_text(json.dumps({"a": {"caption": "kept"}, "zzz": {"caption": "other"}}), encoding="utf-8")
    out = tmp_path / "out.json"
    assert tags(folder, out, "--in_json", source) == 0
    assert read(out) == {"a": {"caption": "kept", "tags": "x_y"}, "zzz": {"caption": "other"}}
    assert read(source) == {"a": {"caption": "kept"}, "zzz": {"caption": "other"}}


def test_full_path_keeps_two_folders_apart(tmp_path: Path) -> None:
    one, two = tmp_path / "one", tmp_path / "two"
    image(one, "img.png", caption="first")
    image(two, "img.png", caption="second")  # same stem: only full paths keep both
    out = tmp_path / "meta.json"
    assert captions(one, out, "--full_path") == 0
    assert captions(two, out, "--full_path") == 0
    assert read(out) == {
        os.path.abspath(one / "img.png"): {"caption": "first"},
        os.path.abspath(two / "img.png"): {"caption": "second"},
    }


def test_second_folder_without_full_path_is_warned_about(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    image(tmp_path / "one", "a.png", caption="first")
    image(tmp_path / "two", "b.png", caption="second")
    out = tmp_path / "meta.json"
    assert captions(tmp_path / "one", out) == 0
    with caplog.at_level(logging.WARNING):
        assert captions(tmp_path / "two", out) == 0
    assert "1 entries of the metadata (e.g. 'a') have no image in" in caplog.text
    assert "run every tool with --full_path" in caplog.text


def test_recursive_reads_subfolders_with_full_path(tmp_path: Path) -> None:
    image(tmp_path / "root", "a.png", caption="top")
    image(tmp_path / "root" / "sub", "a.png", caption="below")
    out = tmp_path / "meta.json"
    assert captions(tmp_path / "root", out, "--recursive", "--full_path") == 0
    assert sorted(v["caption"] for v in read(out).values()) == ["below", "top"]


def test_legacy_misspelled_extension_flag(tmp_path: Path) -> None:
    folder = tmp_path / "imgs"
    path = image(folder, "a.png")
    path.with_suffix(".cap2").write_text("legacy", encoding="utf-8")
    out = tmp_path / "meta.json"
    assert captions(folder, out, "--caption_extention", "cap2") == 0
    assert read(out) == {"a": {"caption": "legacy"}}


@pytest.mark.parametrize(
    ("setup", "extra", "message"),
    [
        (lambda d: None, [], "image folder not found"),
        (lambda d: (image(d, "x.png", caption="1"), image(d, "x.jpg", caption="2")), [],
         "x.jpg and x.png -> 'x'; rename the images or use --full_path"),
        (lambda d: image(d, "x.png", caption="1"), ["--recursive"], "--recursive needs --full_path"),
    ],
    ids=["missing-dir", "stem-collision", "recursive-without-full-path"],
)
def test_folder_errors_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str], setup, extra: list[str],
                              message: str) -> None:
    folder = tmp_path / "imgs"
    setup(folder)
    assert captions(folder, tmp_path / "meta.json", *extra) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "meta.json").exists()


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("[1, 2]", "holds a JSON list"),
        ('{"a": "just a caption"}', "the entry 'a' is a str"),
        ("{not json", "not valid UTF-8 JSON"),
    ],
)
def test_existing_file_that_is_not_metadata_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                    content: str, message: str) -> None:
    image(tmp_path / "imgs", "a.png", tags="t")
    out = tmp_path / "meta.json"
    out.write_text(content, encoding="utf-8")
    assert tags(tmp_path / "imgs", out) == 2
    err = capsys.readouterr().err
    assert f"{out} is not a metadata file" in err and message in err
    assert "expected a JSON object of objects" in err
    assert out.read_text(encoding="utf-8") == content  # untouched


def test_missing_in_json_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    image(tmp_path / "imgs", "a.png", tags="t")
    assert tags(tmp_path / "imgs", tmp_path / "out.json", "--in_json", tmp_path / "nope.json") == 2
    assert "metadata file not found" in capsys.readouterr().err
