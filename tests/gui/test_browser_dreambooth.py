"""The DreamBooth page in a real browser, in Japanese: a 2-step train_db run of the tiny SD 1.5 model from the
form ('<repeats>_<class>' folders with regularization images, the text encoder stopped after step 1), then a
kohya_ss DreamBooth config imported into the form."""

from __future__ import annotations

from pathlib import Path

import pytest

from gui.i18n import Translator
from tests.end_to_end.helpers import make_images
from tests.gui.test_browser import CHROMIUM, browser, field, gui_server, open_page, shots  # noqa: F401 (fixtures)
from tests.gui.test_browser_finetune import fill

pytestmark = pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian's chromium at /usr/bin/chromium")
sync_api = pytest.importorskip("playwright.sync_api")
KOHYA_CONFIG = Path(__file__).parent / "data" / "kohya_configs" / "sd15_dreambooth.json"


def test_dreambooth_page_trains_with_regularization_images_and_imports_kohya_configs(
    browser: object, tiny: object, tmp_path: Path, shots: Path  # noqa: F811
) -> None:
    expect = sync_api.expect
    t = Translator("ja")
    make_images(tmp_path / "train" / "5_sks dog", 1, caption=None)
    make_images(tmp_path / "reg" / "1_dog", 1, caption=None, seed=3)
    out = tmp_path / "out"
    with gui_server("--language", "ja") as url:
        page = open_page(browser, url, path="dreambooth")
        expect(page.locator("#dreambooth_opt_reg_data_dir")).to_contain_text(t.option_label("reg_data_dir"))
        fill(page, "dreambooth_opt_pretrained_model_name_or_path", str(tiny.get("sd15").path))
        fill(page, "dreambooth_opt_train_data_dir", str(tmp_path / "train"))
        fill(page, "dreambooth_opt_reg_data_dir", str(tmp_path / "reg"))
        fill(page, "dreambooth_opt_resolution", "64")
        fill(page, "dreambooth_opt_max_train_steps", "2")
        fill(page, "dreambooth_opt_output_dir", str(out))
        fill(page, "dreambooth_opt_output_name", "tiny_db")
        fill(page, "dreambooth_opt_stop_text_encoder_training", "1")  # (the basic section is open)
        page.locator("#dreambooth_group_advanced").get_by_text(t.group_label("advanced"), exact=True).first.click()
        fill(page, "dreambooth_opt_max_data_loader_n_workers", "0")
        page.locator("#dreambooth_start").click()
        expect(field(page, "dreambooth_status")).to_have_value(t.t("ui.status.finished"), timeout=600_000)
        expect(page.locator("#dreambooth_progress")).to_contain_text(t.t("ui.step_of", step=2, total=2))
        page.screenshot(path=shots / "ja_dreambooth_finished.png", full_page=True)
        assert (out / "tiny_db.safetensors").is_file()

        fill(page, "dreambooth_kohya_config_path", str(KOHYA_CONFIG))
        page.locator("#dreambooth_kohya_import").click()
        message = page.locator("#dreambooth_preset_message")
        expect(message).to_contain_text("train_db", timeout=60_000)
        expect(message).to_contain_text("stop_text_encoder_training = 40")
        expect(field(page, "dreambooth_opt_learning_rate")).to_have_value("1e-06")
        expect(field(page, "dreambooth_opt_reg_data_dir")).to_have_value("/data/reg")
        page.screenshot(path=shots / "ja_dreambooth_imported.png", full_page=True)
