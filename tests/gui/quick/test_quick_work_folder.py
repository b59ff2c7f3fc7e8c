"""The training folder Quick LoRA builds: links (or copies) of the images in `<repeats>_<trigger> <class>`, captions
with the trigger word first, rebuilt in place; the source folder never written to; work folders it must not use."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from gui.quick.dataset_check import check_folder
from gui.quick.work_folder import (
    MARKER,
    WorkFolderError,
    build_training_folder,
    put_trigger_first,
    trigger_first,
    uncaptioned,
)
from tests.tools.image_sets import broken_image, make_image


def snapshot(folder: Path) -> dict[str, tuple[bytes, int]]:
    """Every file's bytes and modification time: what 'not touched' means."""
    return {
        str(p.relative_to(folder)): (p.read_bytes(), p.stat().st_mtime_ns)
        for p in folder.rglob("*")
        if p.is_file()
    }


@pytest.fixture
def source(tmp_path: Path) -> Path:
    folder = tmp_path / "my photos"
    for index, color in enumerate([(200, 0, 0), (0, 200, 0), (0, 0, 200)]):
        make_image(folder / f"p{index}.png", (64, 48), color)
    (folder / "p1.txt").write_text("a green square, plain\n", encoding="utf-8")
    make_image(folder / "again.png", (64, 48), (0, 0, 200))  # p2.png byte for byte
    broken_image(folder / "broken.png")
    (folder / "anim.gif").write_bytes(b"GIF89a")
    (folder / "sub").mkdir()
    return folder


@pytest.mark.parametrize(("caption", "expected"), [
    ("a dog on grass", "sks, a dog on grass"),
    ("sks, a dog", "sks, a dog"),
    ("a dog, sks, grass", "sks, a dog, grass"),
    ("", "sks"),
    ("sksdog, a dog", "sks, sksdog, a dog"),
])  # fmt: skip
def test_the_trigger_word_goes_first_once(caption: str, expected: str) -> None:
    assert trigger_first(caption, "sks") == expected


def test_the_check_lists_what_it_leaves_out(source: Path) -> None:
    found = check_folder(source, min_side=256)
    assert sorted(p.name for p in found.images) == ["again.png", "p0.png", "p1.png"]
    assert [(a.name, b.name) for a, b in found.duplicates] == [("p2.png", "again.png")]
    assert [p.name for p, _ in found.unreadable] == ["broken.png"]
    assert [p.name for p in found.unsupported] == ["anim.gif"] and found.subfolders == 1
    assert len(found.tiny) == 3  # 48 px against 256
    assert [p.name for p in found.uncaptioned] == ["again.png", "p0.png"]
    assert found.captions == {source / "p1.png": "a green square, plain"}


def test_the_training_folder_is_built_without_touching_the_source(source: Path, tmp_path: Path) -> None:
    before = snapshot(source)
    found = check_folder(source, min_side=32)
    work = tmp_path / "work"
    layout = build_training_folder(work, source, found.images, found.captions, "sks", "person", 10)
    assert layout.image_dir == work / "img" / "10_sks person"
    assert sorted(p.name for p in layout.image_dir.iterdir()) == ["again.png", "p0.png", "p1.png", "p1.txt"]
    assert layout.linked == 3 and layout.copied == 0
    assert os.path.samefile(layout.image_dir / "p0.png", source / "p0.png")  # a hard link: no space used
    assert (layout.image_dir / "p1.txt").read_text(encoding="utf-8") == "sks, a green square, plain\n"
    assert [p.name for p in uncaptioned(layout.image_dir)] == ["again.png", "p0.png"]

    # A captioner writes the others' captions in the training folder; the trigger then goes first in them too.
    (layout.image_dir / "p0.txt").write_text("a red square\n", encoding="utf-8")
    assert put_trigger_first(layout.image_dir, "sks") == 1
    assert (layout.image_dir / "p0.txt").read_text(encoding="utf-8") == "sks, a red square\n"
    assert not (source / "p0.txt").exists()

    # Built again with other repeats: the folder is renamed, the captioner's caption kept, the source's refreshed.
    (source / "p1.txt").write_text("a green square, edited\n", encoding="utf-8")
    before = snapshot(source)
    again = build_training_folder(work, source, found.images, {source / "p1.png": "a green square, edited"}, "sks",
                                  "person", 3)  # fmt: skip
    assert [p.name for p in (work / "img").iterdir()] == ["3_sks person"]
    assert again.linked == 0
    assert (again.image_dir / "p0.txt").read_text(encoding="utf-8") == "sks, a red square\n"
    assert (again.image_dir / "p1.txt").read_text(encoding="utf-8") == "sks, a green square, edited\n"
    assert snapshot(source) == before

    # Another trigger word: it replaces the former one in every caption, the captioner's too, and names the folder.
    renamed = build_training_folder(work, source, found.images, {source / "p1.png": "a green square, edited"}, "ohwx",
                                    "person", 3)  # fmt: skip
    assert [p.name for p in (work / "img").iterdir()] == ["3_ohwx person"]
    assert (renamed.image_dir / "p0.txt").read_text(encoding="utf-8") == "ohwx, a red square\n"
    assert (renamed.image_dir / "p1.txt").read_text(encoding="utf-8") == "ohwx, a green square, edited\n"
    assert snapshot(source) == before


def test_a_work_folder_it_must_not_use_is_refused_before_anything_is_written(
    source: Path, tmp_path: Path
) -> None:
    before = snapshot(source)
    found = check_folder(source, min_side=32)

    def build(work: Path) -> None:
        build_training_folder(work, source, found.images, found.captions, "sks", "person", 1)

    with pytest.raises(WorkFolderError) as inside:
        build(source / "lora")
    assert inside.value.key == "ui.quick.err.work_inside_source"
    with pytest.raises(WorkFolderError) as same:
        build(source)
    assert same.value.key == "ui.quick.err.work_inside_source"
    assert snapshot(source) == before and not (source / "lora").exists()
    with pytest.raises(WorkFolderError) as parent:
        build(tmp_path)
    assert parent.value.key == "ui.quick.err.source_inside_work"
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "notes.txt").write_text("mine", encoding="utf-8")
    with pytest.raises(WorkFolderError) as not_empty:
        build(busy)
    assert not_empty.value.key == "ui.quick.err.work_not_empty"
    assert sorted(p.name for p in busy.iterdir()) == ["notes.txt"]
    other = tmp_path / "other"
    build(other)
    assert (other / MARKER).is_file()
    with pytest.raises(WorkFolderError) as taken:
        build_training_folder(other, busy, [], {}, "sks", "person", 1)
    assert taken.value.key == "ui.quick.err.work_other_source"
