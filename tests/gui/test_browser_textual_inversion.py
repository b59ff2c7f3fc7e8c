"""The Textual Inversion page in a real browser, in Japanese: a 2-step train_textual_inversion run of the tiny SD 1.5
model from the form (a new word with two vectors, started from an init word), its embedding file written."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from gui.i18n import Translator
from tests.end_to_end.helpers import make_images
from tests.gui.test_browser import CHROMIUM, browser, field, gui_server, open_page, shots  # noqa: F401 (fixtures)
from tests.gui.test_browser_finetune import fill

pytestmark = pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian's chromium at /usr/bin/chromium")
sync_api = pytest.importorskip("playwright.sync_api")


def test_textual_inversion_page_trains_an_embedding(
    browser: object, tiny: object, tmp_path: Path, shots: Path  # noqa: F811
) -> None:
    expect = sync_api.expect
    t = Translator("ja")
    make_images(tmp_path / "train" / "5_toy", 1, caption="a photo of mytok")
    out = tmp_path / "out"
    with gui_server("--language", "ja") as url:
        page = open_page(browser, url, path="textual_inversion")
        expect(page.locator("#ti_opt_token_string")).to_contain_text(t.option_label("token_string"))
        fill(page, "ti_opt_pretrained_model_name_or_path", str(tiny.get("sd15").path))
        fill(page, "ti_opt_token_string", "mytok")
        fill(page, "ti_opt_init_word", "dog")
        fill(page, "ti_opt_num_vectors_per_token", "2")
        fill(page, "ti_opt_train_data_dir", str(tmp_path / "train"))
        fill(page, "ti_opt_resolution", "64")
        fill(page, "ti_opt_max_train_steps", "2")
        fill(page, "ti_opt_output_dir", str(out))
        page.locator("#ti_group_advanced").get_by_text(t.group_label("advanced"), exact=True).first.click()
        fill(page, "ti_opt_max_data_loader_n_workers", "0")
        page.locator("#textual_inversion_start").click()
        expect(field(page, "textual_inversion_status")).to_have_value(t.t("ui.status.finished"), timeout=600_000)
        expect(page.locator("#textual_inversion_progress")).to_contain_text(t.t("ui.step_of", step=2, total=2))
        page.screenshot(path=shots / "ja_textual_inversion_finished.png", full_page=True)
    from safetensors.torch import load_file

    vectors = load_file(out / "mytok.safetensors")  # named after the word, as sd-scripts names it
    assert tuple(vectors["emb_params"].shape) == (2, 32) and torch.isfinite(vectors["emb_params"]).all()
