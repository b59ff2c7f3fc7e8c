"""The Captioning and Caption editor tabs in a real browser (Playwright + Debian's Chromium) against
`kohya_gui.py --headless`.

Captions a small generated folder with the tiny BLIP model from the BLIP form (the tool runs as a
subprocess; the page follows it to "Finished"), then edits one caption in the Caption editor and
adds a tag to every caption through the preview/apply step, checking the files on disk. The
Japanese page is built and photographed too. Screenshots go to $GUI_SCREENSHOTS when set (else
the test's tmp folder).
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from gui.i18n import Translator
from tests.gui import test_browser as base
from tests.gui.test_browser import CHROMIUM, field, fill, gui_server, open_page, sync_api
from tests.tools.image_sets import make_image

pytestmark = pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian's chromium at /usr/bin/chromium")
browser, shots = base.browser, base.shots  # the fixtures of the LoRA tab's browser test
COLORS = {"red": (220, 30, 30), "green": (30, 200, 60), "blue": (40, 60, 220)}


@pytest.fixture(scope="module")
def tiny_blip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from devtools.tiny_captioners import make_tiny_blip

    return make_tiny_blip(tmp_path_factory.mktemp("tiny-blip"))


def open_tab(page: object, name: str) -> None:
    # no_wait_after: a tab switch navigates nowhere; on a loaded machine Playwright's wait for "scheduled
    # navigations" after the click outlasted its 30 s (seen once while two suites shared the 2 cores).
    page.get_by_role("tab", name=name, exact=True).click(no_wait_after=True)


def test_caption_a_folder_with_blip_then_edit_it(browser: object, tiny_blip: Path, tmp_path: Path, shots: Path) -> None:
    expect = sync_api.expect
    data = tmp_path / "my images"
    for name, color in COLORS.items():
        make_image(data / f"{name}.png", (64, 48), color)
    t = Translator("en")
    with gui_server("--language", "en") as url:
        page = open_page(browser, url, path="data")
        open_tab(page, t.t("ui.tab.captioning"))
        fill(page, "tool_make_captions_train_data_dir", str(data))
        fill(page, "tool_make_captions_model_id", str(tiny_blip))
        fill(page, "tool_make_captions_max_length", "8")
        fill(page, "tool_make_captions_min_length", "2")
        fill(page, "tool_make_captions_device", "cpu")
        page.locator("#tool_make_captions_run").click()
        expect(page.locator("#tool_make_captions_message")).to_contain_text("Started", timeout=60_000)
        expect(field(page, "captioning_status")).to_have_value(t.t("ui.status.finished"), timeout=300_000)
        expect(page.locator("#captioning_progress")).to_contain_text(t.t("ui.step_of", step=3, total=3))
        page.screenshot(path=shots / "en_captioning.png", full_page=True)
        captions = {name: (data / f"{name}.txt").read_text(encoding="utf-8").strip() for name in COLORS}
        assert all(captions.values()), captions

        open_tab(page, t.t("ui.tab.caption_editor"))
        fill(page, "capedit_folder", str(data))
        # BLIP wrote .txt and the editor reads .txt: one caption default in every form (item 19).
        sync_api.expect(field(page, "capedit_extension")).to_have_value(".txt")
        page.locator("#capedit_load").click()
        expect(page.locator("#capedit_message")).to_contain_text("3 images", timeout=30_000)
        expect(field(page, "capedit_caption_0")).to_have_value(captions["blue"])  # sorted: blue, green, red
        expect(page.locator("#capedit_image_0 img")).to_be_visible()
        fill(page, "capedit_caption_0", "a blue square, edited in the browser")
        page.locator("#capedit_save_0").click()
        expect(page.locator("#capedit_message")).to_contain_text("Saved 1", timeout=30_000)
        assert (data / "blue.txt").read_text(encoding="utf-8") == "a blue square, edited in the browser\n"
        assert (data / "red.txt").read_text(encoding="utf-8").strip() == captions["red"]

        fill(page, "capedit_bulk_tag", "sks")
        page.locator("#capedit_bulk_first").locator("input").check()
        page.locator("#capedit_preview").click()
        expect(field(page, "capedit_preview_text")).to_have_value(re.compile("-> 'sks, a blue square"), timeout=30_000)
        assert not (data / "green.txt").read_text(encoding="utf-8").startswith("sks")  # preview writes nothing
        page.locator("#capedit_apply").click()
        expect(page.locator("#capedit_message")).to_contain_text("Wrote 3", timeout=30_000)
        for name in COLORS:
            assert (data / f"{name}.txt").read_text(encoding="utf-8").startswith("sks, "), name
        expect(field(page, "capedit_caption_0")).to_have_value("sks, a blue square, edited in the browser")
        expect(page.locator("#capedit_tags")).to_contain_text("sks")
        page.screenshot(path=shots / "en_caption_editor.png", full_page=True)

        open_tab(page, t.t("ui.tab.dataset"))
        expect(page.locator("#tool_prepare_dataset_concept")).to_be_visible()
        expect(page.locator("#tooltab_prepare_dataset")).to_contain_text("img/<repeats>_<instance> <class>")
        page.screenshot(path=shots / "en_dataset.png", full_page=True)


def test_japanese_captioning_dataset_and_editor_tabs(browser: object, tmp_path: Path, shots: Path) -> None:
    ja = Translator("ja")
    make_image(tmp_path / "a.png", (64, 48))
    (tmp_path / "a.txt").write_text("1girl, solo\n", encoding="utf-8")
    with gui_server("--language", "ja") as url:
        page = open_page(browser, url, locale="en-US", path="data")
        open_tab(page, ja.t("ui.tab.captioning"))
        sync_api.expect(page.get_by_text(ja.t("ui.tooldesc.make_captions"))).to_be_visible()
        page.screenshot(path=shots / "ja_captioning.png", full_page=True)
        page.get_by_role("tab", name=ja.t("ui.tooltab.tag_images_by_wd14_tagger"), exact=True).click()
        sync_api.expect(page.locator("#tool_tag_images_by_wd14_tagger_thresh")).to_contain_text("しきい値 (--thresh)")
        page.screenshot(path=shots / "ja_wd14.png", full_page=True)
        open_tab(page, ja.t("ui.tab.dataset"))
        sync_api.expect(page.locator("#tool_prepare_dataset_concept")).to_contain_text("コンセプト (--concept)")
        page.screenshot(path=shots / "ja_dataset.png", full_page=True)
        open_tab(page, ja.t("ui.tab.caption_editor"))
        fill(page, "capedit_folder", str(tmp_path))
        page.locator("#capedit_load").click()
        sync_api.expect(page.locator("#capedit_message")).to_contain_text("1 枚", timeout=30_000)
        sync_api.expect(field(page, "capedit_caption_0")).to_have_value("1girl, solo")
        sync_api.expect(page.locator("#capedit_tags")).to_contain_text("1girl")
        page.screenshot(path=shots / "ja_caption_editor.png", full_page=True)
