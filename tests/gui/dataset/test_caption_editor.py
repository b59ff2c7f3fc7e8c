"""The caption editor's logic through its actions (the functions the tab's buttons call), without a
browser: load and filter, pages, saving only what changed, bulk add/remove with a preview that is
applied exactly as shown, and clear messages for bad input. Also the "rows" tool-form kind that
prepare_dataset's repeatable `--concept SRC INSTANCE CLASS` uses, and that the tabs build."""

from __future__ import annotations

from pathlib import Path

import gradio as gr
import pytest
from PIL import Image

from gui.dataset import caption_editor_actions as actions
from gui.dataset.caption_editor_actions import PAGE_SIZE, EditorState
from gui.i18n import Translator
from gui.tools.captioning_specs import PREPARE_DATASET
from gui.tools.tool_form import ToolArg, ToolInputError, ToolSpec, tool_argv

T = Translator("en")


def image(path: Path, color: tuple[int, int, int] = (200, 30, 30), size: tuple[int, int] = (40, 30)) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, color).save(path)
    return path


def caption(path: Path, text: str, extension: str = ".txt") -> None:
    path.with_suffix(extension).write_text(text + "\n", encoding="utf-8")


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    root = tmp_path / "my images"
    caption(image(root / "a.png"), "sks, dog, red")
    caption(image(root / "b.jpg", (0, 0, 255)), "sks, cat")
    image(root / "c.webp")  # no caption yet
    caption(image(root / "sub" / "d.png"), "sks, dog")
    return root


def load(folder: Path, **values: object) -> dict:
    return actions.load({"folder": str(folder), "extension": ".txt", "separator": ",", **values}, T)


def test_load_shows_images_captions_thumbnails_and_tag_frequencies(folder: Path) -> None:
    result = load(folder)
    state: EditorState = result["state"]
    assert [Path(p).name for p in state.images] == ["a.png", "b.jpg", "c.webp"]
    assert "3 images" in result["message"] and "2 with a caption file" in result["message"]
    assert result["tags"] == [["sks", 2], ["cat", 1], ["dog", 1], ["red", 1]]
    slots = result["slots"]
    assert len(slots) == PAGE_SIZE and [s.visible for s in slots] == [True] * 3 + [False] * (PAGE_SIZE - 3)
    assert (slots[0].name, slots[0].text, slots[0].caption_file, slots[0].editable) == ("a.png", "sks, dog, red", "a.txt", True)
    assert slots[0].image is not None and slots[0].image.size == (40, 30)  # small images keep their size
    assert slots[2].text == "" and "creates c.txt" in slots[2].note
    assert result["page_info"] == "Page 1 of 1 (3 images)"

    recursive = load(folder, recursive=True)
    assert [s.name for s in recursive["slots"] if s.visible] == ["a.png", "b.jpg", "c.webp", str(Path("sub/d.png"))]


def test_filter_by_tags_include_and_exclude(folder: Path) -> None:
    result = load(folder, include="sks", exclude="cat, red", recursive=True)
    assert [Path(p).name for p in result["state"].images] == ["d.png"]
    assert "1 images" in result["message"] and "tag filter" in result["message"]
    assert result["tags"] == [["dog", 1], ["sks", 1]]


def test_bad_folder_and_extension_are_clear_messages(tmp_path: Path) -> None:
    assert "Type the image folder" in actions.load({"folder": "  "}, T)["message"]
    missing = load(tmp_path / "nowhere")
    assert "Cannot load the folder" in missing["message"] and "does not exist" in missing["message"]
    assert str(tmp_path / "nowhere") in missing["message"]
    (tmp_path / "empty").mkdir()
    assert "no images" in load(tmp_path / "empty")["message"]
    assert "caption extension is empty" in load(tmp_path, extension=" ")["message"]
    assert "Load a folder first" in actions.save(EditorState(), [], T)["message"]


def test_saving_writes_only_changed_boxes_atomically(folder: Path) -> None:
    state = load(folder)["state"]
    texts = ["sks, dog, red", "sks, cat, sitting", "a new caption"] + [None] * (PAGE_SIZE - 3)
    (folder / "a.txt").write_text("changed elsewhere\n", encoding="utf-8")  # not edited in the page: kept
    result = actions.save(state, texts, T)
    assert result["message"] == "Saved 2 caption(s): b.txt, c.txt"
    assert (folder / "a.txt").read_text(encoding="utf-8") == "changed elsewhere\n"
    assert (folder / "b.txt").read_text(encoding="utf-8") == "sks, cat, sitting\n"
    assert (folder / "c.txt").read_text(encoding="utf-8") == "a new caption\n"
    assert not list(folder.glob(".*.tmp"))
    assert result["slots"][0].text == "changed elsewhere"  # the page shows what is on disk now
    assert ["sitting", 1] in result["tags"]
    again = actions.save(result["state"], [s.text for s in result["slots"]], T)
    assert "Nothing to save" in again["message"]


def test_one_box_saves_alone_and_the_other_edits_stay_unsaved(folder: Path) -> None:
    state = load(folder)["state"]
    result = actions.save(state, ["edited a", "edited b", ""] + [None] * (PAGE_SIZE - 3), T, only=1)
    assert result["message"] == "Saved 1 caption(s): b.txt"
    assert (folder / "a.txt").read_text(encoding="utf-8") == "sks, dog, red\n"
    assert not (folder / "c.txt").exists()  # an empty box for an image without caption creates nothing
    assert [slot.text for slot in result["slots"][:3]] == ["edited a", "edited b", ""]  # a's edit is still there
    assert actions.unsaved(result["state"], [slot.text for slot in result["slots"]]) == [0]


def test_pages(tmp_path: Path) -> None:
    for index in range(PAGE_SIZE + 2):
        caption(image(tmp_path / f"{index:02d}.png"), f"tag{index}")
    first = load(tmp_path)
    assert first["page_info"] == f"Page 1 of 2 ({PAGE_SIZE + 2} images)"
    blank = [s.text for s in first["slots"]]
    refused = actions.turn_page(first["state"], 1, ["edited"] + blank[1:], T)
    assert "1 caption(s) on this page are not saved (00.png)" in refused["message"] and "slots" not in refused
    second = actions.turn_page(first["state"], 1, blank, T)
    assert [s.name for s in second["slots"] if s.visible] == [f"{PAGE_SIZE:02d}.png", f"{PAGE_SIZE + 1:02d}.png"]
    texts = [s.text for s in second["slots"]]
    assert actions.turn_page(second["state"], 1, texts, T)["state"].page == 1  # stays on the last page
    assert actions.turn_page(second["state"], -1, texts, T)["slots"][0].name == "00.png"
    saved = actions.save(second["state"], ["renamed"] + [None] * (PAGE_SIZE - 1), T)
    assert (tmp_path / f"{PAGE_SIZE:02d}.txt").read_text(encoding="utf-8") == "renamed\n"
    assert saved["state"].page == 1


def test_bulk_add_previews_then_applies_only_what_was_previewed(folder: Path) -> None:
    state = load(folder, include="dog", recursive=True)["state"]  # a.png and sub/d.png
    values = {"bulk_action": "add", "bulk_tag": "solo", "bulk_first": True}
    assert "Press Preview first" in actions.apply(state, values, T)["message"]
    planned = actions.preview(state, values, T)
    assert "2 of the 2 captions" in planned["message"]
    assert "'sks, dog, red' -> 'solo, sks, dog, red'" in planned["preview"]
    assert (folder / "a.txt").read_text(encoding="utf-8") == "sks, dog, red\n"  # a preview writes nothing
    assert "Press Preview first" in actions.apply(planned["state"], {**values, "bulk_tag": "other"}, T)["message"]

    (folder / "sub" / "d.txt").write_text("edited meanwhile\n", encoding="utf-8")
    applied = actions.apply(planned["state"], values, T)
    assert "Wrote 1 caption(s)" in applied["message"] and "d.txt" in applied["message"]
    assert (folder / "a.txt").read_text(encoding="utf-8") == "solo, sks, dog, red\n"
    assert (folder / "sub" / "d.txt").read_text(encoding="utf-8") == "edited meanwhile\n"  # changed since: left alone
    assert (folder / "b.txt").read_text(encoding="utf-8") == "sks, cat\n"  # filtered out: untouched
    assert applied["state"].plan == () and applied["preview"] == ""
    assert "Press Preview first" in actions.apply(applied["state"], values, T)["message"]  # a plan applies once


def test_bulk_remove_and_its_messages(folder: Path) -> None:
    state = load(folder)["state"]
    remove = {"bulk_action": "remove", "bulk_tag": "sks"}
    planned = actions.preview(state, remove, T)
    assert "2 of the 3 captions" in planned["message"]  # c.webp has no caption file
    assert "Wrote 2 caption(s)" in actions.apply(planned["state"], remove, T)["message"]
    assert (folder / "b.txt").read_text(encoding="utf-8") == "cat\n"
    assert "Nothing would change" in actions.preview(state, remove, T)["message"]
    assert "Type the tag" in actions.preview(state, {"bulk_action": "add", "bulk_tag": " "}, T)["message"]
    assert "one tag at a time" in actions.preview(state, {"bulk_action": "add", "bulk_tag": "a, b"}, T)["message"]
    forgotten = actions.forget_plan(planned["state"])
    assert forgotten["state"].plan == () and forgotten["preview"] == ""


def test_unreadable_files_are_shown_not_edited(tmp_path: Path) -> None:
    image(tmp_path / "ok.png")
    (tmp_path / "ok.txt").write_bytes("caf\xe9".encode("latin-1"))
    (tmp_path / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not a png")
    (tmp_path / "broken.txt").write_text("x", encoding="utf-8")
    result = load(tmp_path)
    broken, ok = result["slots"][:2]
    assert broken.image is None and "cannot be read as an image" in broken.note and broken.text == "x"
    assert not ok.editable and "not UTF-8" in ok.note
    assert "1 caption file(s) cannot be read" in result["message"]
    saved = actions.save(result["state"], ["x", "overwritten?"] + [None] * (PAGE_SIZE - 2), T)
    assert "Nothing to save" in saved["message"]
    assert (tmp_path / "ok.txt").read_bytes() == "caf\xe9".encode("latin-1")


def test_rows_kind_passes_one_flag_per_line() -> None:
    spec = ToolSpec("demo", (ToolArg("concept", "rows", required=True, row_size=3), ToolArg("reg", "rows")))
    values = {"concept": "/data/dog sks dog\n\n  'C:\\my data\\cat' ohwx cat  ", "reg": "/reg/dogs dog extra"}
    assert tool_argv(spec, values, python="py")[3:] == [
        "--concept", "/data/dog", "sks", "dog", "--concept", "C:\\my data\\cat", "ohwx", "cat",
        "--reg", "/reg/dogs", "dog", "extra",
    ]  # fmt: skip
    with pytest.raises(ToolInputError, match="required: concept"):
        tool_argv(spec, {"concept": " \n "}, python="py")
    with pytest.raises(ToolInputError, match=r"concept, line 2: expects 3 values, got 2 \(/data/cat cat\)"):
        tool_argv(spec, {"concept": "/data/dog sks dog\n/data/cat cat"}, python="py")
    with pytest.raises(ToolInputError, match="concept, line 1"):
        tool_argv(spec, {"concept": "'unclosed sks dog"}, python="py")


def test_prepare_dataset_form_builds_its_command(tmp_path: Path) -> None:
    argv = tool_argv(PREPARE_DATASET, {"out": str(tmp_path), "concept": "/d/dog sks dog", "reg": "/d/reg dog",
                                       "reg_repeats": 1, "link": "copy", "group_by_aspect": False}, python="py")  # fmt: skip
    assert argv[2:] == ["backend.tools.prepare_dataset", str(tmp_path), "--concept", "/d/dog", "sks", "dog",
                        "--reg", "/d/reg", "dog", "--reg_repeats", "1", "--link", "copy"]  # fmt: skip


@pytest.mark.parametrize("language", ["en", "ja"])
def test_the_three_tabs_build_without_a_missing_text(language: str) -> None:
    from gui.dataset.dataset_tabs import build_caption_editor_tab, build_captioning_tab, build_dataset_tab

    t = Translator(language)
    with gr.Blocks():
        with gr.Tab("captioning"):
            captioning = build_captioning_tab(t, None)
        with gr.Tab("dataset"):
            dataset = build_dataset_tab(t, None)
        with gr.Tab("editor"):
            editor = build_caption_editor_tab(t, None)
    t.t("ui.tab.caption_editor")
    assert sorted(captioning) == ["basic_caption", "make_captions", "make_captions_by_git", "tag_images_by_wd14_tagger"]
    assert sorted(dataset) == ["prepare_dataset", "verify_dataset", "verify_video_dataset"]
    assert len(editor.slots) == PAGE_SIZE and editor.fields["folder"].elem_id == "capedit_folder"
    assert t.missing == set()
