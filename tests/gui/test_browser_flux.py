"""A FLUX.1 LoRA trained from the LoRA tab in a real browser: the FLUX.1 [dev] model type shows the part
files (CLIP-L, T5-XXL, AE) in the Model section, the run trains the tiny BFL transformer to a LoRA in
sd-scripts' lora_flux layout and shows its sample image in the page."""

from __future__ import annotations

from pathlib import Path

import pytest
from safetensors import safe_open

from gui.i18n import Translator
from tests.end_to_end.helpers import make_images
from tests.gui import test_browser as base
from tests.gui.test_browser import CHROMIUM, field, fill, gui_server, open_group, open_page, sync_api

pytestmark = pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian's chromium at /usr/bin/chromium")
browser, shots = base.browser, base.shots


def test_train_a_tiny_flux_lora_with_a_sample_from_the_form(browser: object, tiny: object, tmp_path: Path,  # noqa: F811
                                                            shots: Path) -> None:
    expect = sync_api.expect
    t = Translator("en")
    model = tiny.get("flux-dev", single_file=True)
    make_images(tmp_path / "data" / "2_dog", 2)
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("a photo of a dog --w 64 --h 64 --s 2 --d 3 --g 3.5\n", encoding="utf-8")
    out = tmp_path / "out"
    with gui_server("--language", "en") as url:
        page = open_page(browser, url)
        page.locator("#model_type label").filter(has_text="FLUX.1 [dev]").first.click()
        expect(page.locator("#opt_clip_l")).to_be_visible(timeout=30_000)
        expect(page.locator("#opt_v2")).to_be_hidden()  # SD 2.x's switch means nothing for FLUX.1
        fill(page, "opt_pretrained_model_name_or_path", str(model.path))
        for flag, path in model.part_files.items():
            fill(page, f"opt_{flag}", str(path))
        fill(page, "opt_tokenizer_cache_dir", str(model.tokenizer_cache_dir))
        fill(page, "opt_train_data_dir", str(tmp_path / "data"))
        fill(page, "opt_resolution", "64")
        fill(page, "opt_max_train_epochs", "")
        fill(page, "opt_max_train_steps", "2")
        fill(page, "opt_network_dim", "4")
        fill(page, "opt_output_dir", str(out))
        fill(page, "opt_output_name", "flux")
        open_group(page, "advanced", t.group_label("advanced"))
        fill(page, "opt_max_data_loader_n_workers", "0")
        fill(page, "opt_t5xxl_max_token_length", "16")
        open_group(page, "samples", t.group_label("samples"))
        fill(page, "opt_sample_prompts", str(prompts))
        fill(page, "opt_sample_every_n_steps", "2")
        page.screenshot(path=shots / "en_flux_form.png", full_page=True)

        page.locator("#lora_start").click()
        expect(field(page, "lora_status")).to_have_value(t.t("ui.status.finished"), timeout=600_000)
        expect(page.locator("#lora_samples img").first).to_be_visible(timeout=60_000)
        page.screenshot(path=shots / "en_flux_finished.png", full_page=True)

    with safe_open(str(out / "flux.safetensors"), "pt") as lora:
        keys, metadata = set(lora.keys()), lora.metadata()
    assert any(key.startswith("lora_unet_double_blocks_0_img_attn_qkv.") for key in keys)
    assert metadata["ss_base_model_version"] == "flux1" and metadata["ss_network_dim"] == "4"
    assert list((out / "sample").glob("*.png"))
