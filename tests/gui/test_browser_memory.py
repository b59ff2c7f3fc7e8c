"""The LoRA page's Memory panel in a real browser: with a full-size SD 1.5 model (a sparse file whose header
declares the real shapes: tests/memory/sparse_models.py) and batch 4 in float32, the breakdown shows the model's
parts; on an 8 GB card "Fit my GPU" proposes the savers fit_to_card chooses, and "Apply" writes them into the
form's fields. A missing model file says why no estimate is made."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from backend.memory.fit import GB, fit_to_card
from backend.options.schema import all_options
from gui.i18n import Translator
from tests.gui.test_browser import CHROMIUM, browser, field, gui_server, open_group, open_page, shots  # noqa: F401
from tests.gui.test_browser_finetune import fill

pytestmark = pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian's chromium at /usr/bin/chromium")
sync_api = pytest.importorskip("playwright.sync_api")


def test_memory_panel_fits_a_full_size_run_to_8_gb(browser: object, tmp_path: Path, shots: Path) -> None:  # noqa: F811
    from tests.memory.sparse_models import write_sparse_model

    expect = sync_api.expect
    model = write_sparse_model("sd15", tmp_path / "sd15-full.safetensors")
    options = {"pretrained_model_name_or_path": str(model), "resolution": "512,512", "train_batch_size": 4,
               "network_dim": 8, "network_alpha": 1.0, "mixed_precision": "no", "network_module": "networks.lora"}
    expected = fit_to_card("train_network", options, 8 * GB)
    assert expected.fits and len(expected.changes) >= 2 and expected.changes[0].option == "cache_latents"
    with gui_server() as url:
        page = open_page(browser, url)
        page.locator("#group_memory").get_by_text("Memory", exact=True).first.click()
        fill(page, "opt_pretrained_model_name_or_path", str(tmp_path / "missing.safetensors"))
        page.locator("#memory_estimate").click()
        expect(page.locator("#memory_report")).to_contain_text("no such file or folder")

        fill(page, "opt_pretrained_model_name_or_path", str(model))
        fill(page, "opt_resolution", "512,512")
        fill(page, "opt_train_batch_size", "4")
        page.locator("#memory_estimate").click()
        report = page.locator("#memory_report")
        expect(report).to_contain_text("Denoiser weights")
        expect(report).to_contain_text("859.5 M parameters, 32-bit")
        expect(report).to_contain_text("Activations")
        expect(report).to_contain_text("GPU peak")

        field(page, "memory_card").click()
        page.get_by_role("option", name="8 GB", exact=True).click()
        page.locator("#memory_fit").click()
        proposal = page.locator("#memory_proposal")
        expect(proposal).to_contain_text("Fits 8.00 GiB")
        for change in expected.changes:
            expect(proposal).to_contain_text(change.option)
        page.screenshot(path=shots / "en_memory_fit.png", full_page=True)

        page.locator("#memory_apply").click()
        expect(proposal).to_contain_text("written into the form")
        changed = {change.option: change.value for change in expected.changes}
        t = Translator("en")
        for name, value in changed.items():
            box = field(page, f"opt_{name}")
            if box.count() == 0:  # a field in a closed section: opened as a user would
                group = all_options()[name].group
                open_group(page, group, t.group_label(group))
            if value is True:
                expect(box).to_be_checked()
            else:  # a dropdown shows its choice's label, which starts with the value ("bf16 ...")
                expect(box).to_have_value(re.compile(rf"^{re.escape(str(value))}\b"))
        expect(page.locator("#memory_apply")).to_be_hidden()
        page.screenshot(path=shots / "en_memory_applied.png", full_page=True)
