"""Quick LoRA in a real browser, in Japanese: a folder of four uncaptioned images and the tiny SD 1.5 model; Check
finds them and asks before captioning; the tiny BLIP captions them in the work folder (the trigger word then first);
Train now trains one short epoch (the page's own "more choices": 64 px, 1 epoch, 1 repeat) and the LoRA file and
its sample images appear on the page; "Open in LoRA page" puts the same settings in the ordinary form and opens it. The source
folder is never written to. With $GUI_SCREENSHOTS set, a second test photographs the English page after Check."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest

from gui.i18n import Translator
from tests.gui import test_browser as base
from tests.gui.quick.test_quick_work_folder import snapshot
from tests.gui.test_browser import CHROMIUM, field, fill, gui_server, sync_api
from tests.gui.test_browser_dataset import tiny_blip  # noqa: F401
from tests.tools.image_sets import make_image

pytestmark = pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian's chromium at /usr/bin/chromium")
browser, shots = base.browser, base.shots  # the fixtures of the LoRA tab's browser test
COLORS = [(220, 30, 30), (30, 200, 60), (40, 60, 220), (230, 200, 40)]


def open_quick(browser: object, url: str) -> object:
    page = browser.new_page(viewport={"width": 1400, "height": 1000}, locale="en-US")
    page.set_default_timeout(base.ACTION_MS)
    page.goto(url + "quick", timeout=base.PAGE_LOAD_MS)
    page.wait_for_selector("#quick_check", timeout=base.PAGE_LOAD_MS)
    return page


def fill_in(page: object, t: Translator, model: Path, folder: Path, work: Path, captioner: Path) -> None:
    fill(page, "quick_model", str(model))
    fill(page, "quick_folder", str(folder))
    fill(page, "quick_trigger", "sks")
    fill(page, "quick_work", str(work))
    field(page, "quick_card").click()
    page.get_by_role("option", name=t.t("ui.quick.card.cpu"), exact=True).click()
    page.locator("#quick_more").get_by_text(t.t("ui.quick.more"), exact=True).click()
    fill(page, "quick_captioner_model", str(captioner))
    fill(page, "quick_resolution", "64")  # a tiny run: the test's knob is the page's own "more choices"
    fill(page, "quick_epochs", "1")
    fill(page, "quick_repeats", "1")


def wait_for_output(
    page: object, path: Path, status_id: str, log_id: str, t: Translator, timeout: float = 300
) -> None:
    """Until `path` is written (a short run may end between two polls, so its file marks its end); a run or tool
    that failed ends the wait at once, with its log."""
    failed = t.t("ui.status.failed", code="").replace("（", "(").split("(")[0]  # "Failed", "失敗"
    deadline = time.monotonic() + timeout
    while not path.exists():
        status = field(page, status_id).input_value()
        assert not status.startswith(failed), status + "\n" + field(page, log_id).input_value()
        assert time.monotonic() < deadline, f"{path} was not written within {timeout:.0f} s"
        page.wait_for_timeout(500)


def uncaptioned_folder(folder: Path) -> Path:
    for index, color in enumerate(COLORS):
        make_image(folder / f"photo_{index}.png", (64, 48), color)
    return folder


def test_quick_lora_from_uncaptioned_images_to_a_lora_and_samples(
    browser: object,  # noqa: F811
    tiny: object,
    tiny_blip: Path,  # noqa: F811
    tmp_path: Path,
    shots: Path,  # noqa: F811
) -> None:
    expect = sync_api.expect
    t = Translator("ja")
    source = uncaptioned_folder(tmp_path / "写真")
    before = snapshot(source)
    work = tmp_path / "work"
    image_dir = work / "img" / "1_sks person"
    state = tmp_path / "state"
    with gui_server("--language", "ja", env={"KOHYA_GUI_STATE_DIR": str(state)}) as url:
        page = open_quick(browser, url)
        fill_in(page, t, tiny.get("sd15").path, source, work, tiny_blip)
        expect(page.locator("#quick_model_found")).to_contain_text("SD 1.x")
        page.locator("#quick_check").click()
        expect(page.locator("#quick_report")).to_contain_text(
            t.t("ui.quick.found_images", count=4, path="")[-12:]
        )
        expect(page.locator("#quick_offer")).to_contain_text("BLIP")
        page.screenshot(path=shots / "ja_quick_checked.png", full_page=True)

        page.locator("#quick_caption").click()  # the user's yes
        for index in range(len(COLORS)):
            wait_for_output(
                page, image_dir / f"photo_{index}.txt", "quick_captioning_status", "quick_captioning_log", t
            )
        expect(field(page, "quick_captioning_status")).to_have_value(
            t.t("ui.status.finished"), timeout=120_000
        )

        page.locator("#quick_train").click()
        expect(page.locator("#quick_summary")).to_contain_text(t.t("ui.quick.run_length", images=4, repeats=1,
                                                                    epochs=1, batch=1, steps=4))  # fmt: skip
        wait_for_output(page, work / "model" / "sks.safetensors", "quick_status", "quick_log", t)
        expect(field(page, "quick_status")).to_have_value(t.t("ui.status.finished"), timeout=300_000)
        expect(page.locator("#quick_samples img").first).to_be_visible(timeout=120_000)
        page.screenshot(path=shots / "ja_quick_trained.png", full_page=True)
        samples = sorted((work / "model" / "sample").glob("*.png"))
        assert len(samples) == 2  # the two prompts, after the epoch

        # The same settings as the ordinary form: written where the LoRA page restores its form from, then that
        # page opened (what it restores is tests/gui/quick/test_quick_actions.py's and the History test's; building
        # the LoRA page's ~800 fields is left out here to keep this test short).
        page.locator("#quick_open").click()
        page.wait_for_url(url, timeout=60_000)
        form = json.loads((state / "lora_form.json").read_text(encoding="utf-8"))
        assert form["train_data_dir"] == str(work / "img") and form["output_name"] == "sks"
        assert form["resolution"] == "64" and form["network_dim"] == 16 and form["model_type"] == "sd1"

    captions = [
        (image_dir / f"photo_{index}.txt").read_text(encoding="utf-8") for index in range(len(COLORS))
    ]
    assert all(caption.startswith("sks, ") and len(caption) > len("sks, \n") for caption in captions), (
        captions
    )
    assert snapshot(source) == before  # nothing written into, or changed in, the source folder


@pytest.mark.skipif(not os.environ.get("GUI_SCREENSHOTS"), reason="screenshots only ($GUI_SCREENSHOTS)")
def test_quick_lora_page_in_english(browser: object, tiny: object, tmp_path: Path, shots: Path) -> None:  # noqa: F811
    t = Translator("en")
    source = uncaptioned_folder(tmp_path / "photos")
    with gui_server("--language", "en") as url:
        page = open_quick(browser, url)
        fill_in(page, t, tiny.get("sd15").path, source, source / "lora", tmp_path / "blip")
        # A work folder inside the image folder: refused, nothing written.
        page.locator("#quick_prepare").click()
        sync_api.expect(page.locator("#quick_summary")).to_contain_text("Quick LoRA never writes there")
        page.screenshot(path=shots / "en_quick_refused.png", full_page=False)
        assert not (source / "lora").exists()
        fill(page, "quick_work", str(tmp_path / "work"))
        page.locator("#quick_check").click()
        sync_api.expect(page.locator("#quick_offer")).to_contain_text("BLIP (sentences)")
        page.locator("#quick_prepare").click()
        sync_api.expect(page.locator("#quick_summary")).to_contain_text("network_dim")
        page.screenshot(path=shots / "en_quick_prepared.png", full_page=True)
