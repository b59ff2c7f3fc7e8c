"""The LECO page in a real browser, in Japanese: no dataset section; "new prompt file" writes a commented example in
the output folder and fills the field (a second time it writes nothing and says so); Preflight names a problem of the
file, then passes once it is fixed; a 2-step train_leco run of the tiny SD 1.5 model writes its LoRA."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from backend.training.leco_prompts import load_prompt_settings
from gui.i18n import Translator
from tests.gui.test_browser import CHROMIUM, browser, field, gui_server, open_page, shots  # noqa: F401 (fixtures)
from tests.gui.test_browser_finetune import fill

pytestmark = pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian's chromium at /usr/bin/chromium")
sync_api = pytest.importorskip("playwright.sync_api")


def test_leco_page_makes_a_prompt_file_checks_it_and_trains(
    browser: object, tiny: object, tmp_path: Path, shots: Path  # noqa: F811
) -> None:
    expect = sync_api.expect
    t = Translator("ja")
    out = tmp_path / "out"
    prompts = out / "noto_prompts.toml"
    with gui_server("--language", "ja") as url:
        page = open_page(browser, url, path="leco")
        expect(page.locator("#leco_opt_prompts_file")).to_contain_text(t.option_label("prompts_file"))
        assert page.locator("#leco_group_dataset").count() == 0  # prompts only: no dataset, captions or buckets
        assert page.locator("#leco_opt_train_data_dir, #leco_opt_caption_extension, #leco_opt_enable_bucket").count() == 0
        fill(page, "leco_opt_pretrained_model_name_or_path", str(tiny.get("sd15").path))
        fill(page, "leco_opt_output_dir", str(out))
        fill(page, "leco_opt_output_name", "noto")
        fill(page, "leco_opt_max_train_steps", "2")
        fill(page, "leco_opt_max_denoising_steps", "3")

        page.locator("#leco_prompt_new").click()
        expect(field(page, "leco_opt_prompts_file")).to_have_value(str(prompts))
        expect(page.locator("#leco_prompt_message")).to_contain_text("noto_prompts.toml")
        assert prompts.read_text(encoding="utf-8").startswith("# LECO のプロンプトファイル")
        page.screenshot(path=shots / "ja_leco_prompt_file.png", full_page=True)
        page.locator("#leco_prompt_new").click()  # never over a file
        expect(page.locator("#leco_prompt_message")).to_contain_text("すでにある")

        # The user's edit with a mistake: Preflight names it in Japanese.
        text = prompts.read_text(encoding="utf-8")
        prompts.write_text(re.sub(r"(?m)^resolution = \d+$", "resolution = 60", text), encoding="utf-8")
        page.locator("#leco_preflight").click()
        report = page.locator("#leco_preflight_report")
        expect(report).to_contain_text(t.t("ui.preflight_failed"), timeout=180_000)
        expect(report).to_contain_text('"resolution" 60: 各辺は 64 の正の倍数')
        page.screenshot(path=shots / "ja_leco_preflight_error.png", full_page=True)

        prompts.write_text(re.sub(r"(?m)^resolution = \d+$", "resolution = 64", text), encoding="utf-8")
        assert load_prompt_settings(prompts)[0].resolution == (64, 64)
        page.locator("#leco_preflight").click()
        expect(report).to_contain_text(t.t("ui.preflight_ok"), timeout=180_000)
        expect(report).to_contain_text("学習設定 1 件")

        page.locator("#leco_start").click()
        expect(field(page, "leco_status")).to_have_value(t.t("ui.status.finished"), timeout=600_000)
        expect(page.locator("#leco_progress")).to_contain_text(t.t("ui.step_of", step=2, total=2))
        page.screenshot(path=shots / "ja_leco_finished.png", full_page=True)
    from safetensors.torch import load_file

    weights = load_file(out / "noto.safetensors")
    assert weights and all(key.startswith("lora_unet_") for key in weights)  # a U-Net LoRA
