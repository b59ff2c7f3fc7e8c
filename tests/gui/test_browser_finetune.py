"""The Fine-tuning tab in a real browser: the metadata step as a tool run, then a 2-step fine-tune
of the tiny SD 1.5 model from the form, saved as a single file, then a kohya_ss Fine-tuning config imported."""

from __future__ import annotations

from pathlib import Path

import pytest

from gui.i18n import Translator
from tests.end_to_end.helpers import make_images
from tests.gui.test_browser import CHROMIUM, browser, field, gui_server, open_page, shots  # noqa: F401 (fixtures)

KOHYA_CONFIG = Path(__file__).parent / "data" / "kohya_configs" / "sd15_finetune.json"
pytestmark = pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian's chromium at /usr/bin/chromium")
sync_api = pytest.importorskip("playwright.sync_api")


def fill(page: object, elem_id: str, text: str) -> None:
    # Under load a freshly opened accordion may render its fields again just after a fill, losing the
    # value (the run button then sent an empty field once, with the machine busy): fill until it stays.
    box = page.locator(f"#{elem_id}").locator("textarea, input").first
    for _ in range(3):
        box.fill(text)
        box.blur()
        page.wait_for_timeout(300)
        if box.input_value() == text:
            return
    raise AssertionError(f"#{elem_id} does not keep the text it was given")


def test_fine_tune_tab_metadata_step_then_training(browser: object, tiny: object, tmp_path: Path, shots: Path) -> None:  # noqa: F811
    expect = sync_api.expect
    t = Translator("en")
    model = tiny.get("sd15").path
    images = tmp_path / "imgs"
    make_images(images, 2, caption="a photo of a cat")  # .txt: the GUI's caption default, in the tool too
    meta = tmp_path / "meta.json"
    out = tmp_path / "out"
    with gui_server("--language", "en") as url:
        page = open_page(browser, url, path="finetune")
        page.locator("#finetune_metadata").get_by_text(t.t("ui.finetune_metadata"), exact=True).click()
        fill(page, "tool_merge_captions_to_metadata_train_data_dir", str(images))
        fill(page, "tool_merge_captions_to_metadata_out_json", str(meta))
        page.locator("#tool_merge_captions_to_metadata_run").click()
        expect(page.locator("#tool_merge_captions_to_metadata_message")).to_contain_text("Started", timeout=30_000)
        expect(field(page, "finetune_tools_status")).to_have_value(t.t("ui.status.finished"), timeout=180_000)
        assert meta.is_file() and "a photo of a cat" in meta.read_text(encoding="utf-8")

        fill(page, "finetune_opt_pretrained_model_name_or_path", str(model))
        fill(page, "finetune_opt_in_json", str(meta))
        fill(page, "finetune_opt_train_data_dir", str(images))
        fill(page, "finetune_opt_resolution", "64")
        fill(page, "finetune_opt_max_train_steps", "2")
        page.locator("#finetune_group_advanced").get_by_text(t.group_label("advanced"), exact=True).first.click()
        fill(page, "finetune_opt_max_data_loader_n_workers", "0")
        page.locator("#finetune_group_saving").get_by_text(t.group_label("saving"), exact=True).first.click()
        fill(page, "finetune_opt_output_dir", str(out))
        fill(page, "finetune_opt_output_name", "tiny_ft")
        page.screenshot(path=shots / "en_finetune_form.png", full_page=True)
        page.locator("#finetune_start").click()
        expect(page.locator("#finetune_message")).to_contain_text(t.t("ui.started", path="")[:10], timeout=60_000)
        expect(field(page, "finetune_status")).to_have_value(t.t("ui.status.finished"), timeout=600_000)
        expect(page.locator("#finetune_progress")).to_contain_text(t.t("ui.step_of", step=2, total=2))
        page.screenshot(path=shots / "en_finetune_finished.png", full_page=True)
        assert (out / "tiny_ft.safetensors").is_file()

        fill(page, "finetune_kohya_config_path", str(KOHYA_CONFIG))
        page.locator("#finetune_kohya_import").click()
        message = page.locator("#finetune_preset_message")
        expect(message).to_contain_text("fine_tune", timeout=60_000)
        expect(message).to_contain_text("backend.tools.merge_captions_to_metadata")  # the step kohya_ss ran
        expect(field(page, "finetune_opt_in_json")).to_have_value("C:/ft/anime/meta_lat.json")
