"""The History page in a real browser, in Japanese: two 2-step runs of the tiny SD 1.5 model started from the LoRA
page (differing in their learning rate) are listed; a row shows its record; comparing them shows the differing
options and both loss curves; search narrows the table; "Run again" starts one again and it finishes; "Open in its
page" puts its form into the LoRA page. With $GUI_SCREENSHOTS set, a second test shows the page in English on
records of fake runs (no training)."""

from __future__ import annotations

import json
import os
import re
import time
from pathlib import Path

import pytest

from gui.i18n import Translator
from gui.runs.run_history import RunHistory
from gui.runs.runner import TrainingRunner
from tests.end_to_end.helpers import make_images
from tests.gui.runs.test_run_history import start_run
from tests.gui.test_browser import CHROMIUM, browser, field, go_to, gui_server, open_group, open_page, shots  # noqa: F401
from tests.gui.test_browser_finetune import fill

pytestmark = pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian's chromium at /usr/bin/chromium")
sync_api = pytest.importorskip("playwright.sync_api")


def wait_for_file(path: Path, timeout: float = 300.0) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert time.monotonic() < deadline, f"{path} was not written within {timeout:.0f} s"
        time.sleep(0.2)


def choose(page: object, elem_id: str, index: int) -> None:
    field(page, elem_id).click()
    page.get_by_role("option").nth(index).click()


def fill_two_step_lora(page: object, t: Translator, model: Path, data: Path, out: Path) -> None:
    """The LoRA page's form for a 2-step run of a tiny model at 64 px (no loader workers), writing into `out`."""
    fill(page, "opt_pretrained_model_name_or_path", str(model))
    fill(page, "opt_train_data_dir", str(data))
    fill(page, "opt_resolution", "64")
    fill(page, "opt_max_train_epochs", "")
    fill(page, "opt_max_train_steps", "2")
    open_group(page, "advanced", t.group_label("advanced"))
    fill(page, "opt_max_data_loader_n_workers", "0")
    fill(page, "opt_output_dir", str(out))

def test_history_lists_compares_and_reruns_runs(browser: object, tiny: object, tmp_path: Path, shots: Path) -> None:  # noqa: F811
    expect = sync_api.expect
    t = Translator("ja")
    runs = tmp_path / "runs"
    make_images(tmp_path / "data" / "2_dog", 2)
    out = tmp_path / "out"
    with gui_server("--language", "ja", env={"KOHYA_GUI_HISTORY_DIR": str(runs)}) as url:
        page = open_page(browser, url)
        fill_two_step_lora(page, t, tiny.get("sd15").path, tmp_path / "data", out)
        for name, rate in (("ichi", "0.0001"), ("ni", "0.0003")):
            fill(page, "opt_output_name", name)
            fill(page, "opt_learning_rate", rate)
            page.locator("#lora_start").click()
            # A 2-step run may end between two polls (the page never shows "running"): its file marks its end.
            wait_for_file(out / f"{name}.safetensors")
            expect(field(page, "lora_status")).to_have_value(t.t("ui.status.finished"), timeout=300_000)

        go_to(page, url, "history")
        table = page.locator("#history_table")
        expect(table).to_contain_text("ichi.safetensors")
        expect(table).to_contain_text("ni.safetensors")
        expect(table).not_to_contain_text(t.t("ui.status.running"))
        table.get_by_text("ichi.safetensors").last.click()  # a row selects its run
        expect(field(page, "history_command")).to_have_value(re.compile("--config_file"))
        expect(field(page, "history_log")).not_to_have_value("")

        choose(page, "history_compare_a", 1)  # older: ichi
        choose(page, "history_compare_b", 0)
        page.locator("#history_compare").click()
        expect(page.locator("#history_compare_message")).to_contain_text(t.t("ui.history.differences", count=2))
        diff = page.locator("#history_diff")
        expect(diff).to_contain_text("(learning_rate)")
        expect(diff).to_contain_text("0.0003")
        expect(page.locator("#history_compare_plot")).to_contain_text("B")
        page.locator("#history_search").locator("input, textarea").first.fill("0.0003")
        page.locator("#history_search").locator("input, textarea").first.press("Enter")
        expect(table).not_to_contain_text("ichi.safetensors")
        expect(table).to_contain_text("ni.safetensors")
        page.screenshot(path=shots / "ja_history_compare.png", full_page=True)

        choose(page, "history_run", 0)  # ni, the one listed
        page.locator("#history_rerun").click()
        expect(page.locator("#history_message")).to_contain_text(t.t("ui.history.started_again", run="")[:8])
        expect(table).to_contain_text(t.t("ui.status.running"))  # listed at once, then followed by the page's timer
        expect(table).not_to_contain_text(t.t("ui.status.running"), timeout=300_000)
        expect(table).to_contain_text("ni.safetensors")
        page.screenshot(path=shots / "ja_history_rerun.png", full_page=True)

        page.locator("#history_open").click()
        page.wait_for_url(url, timeout=60_000)
        page.wait_for_selector("#model_type", timeout=180_000)
        expect(field(page, "opt_output_name")).to_have_value("ni")
        expect(field(page, "opt_learning_rate")).to_have_value("0.0003")

    index = json.loads((runs / "index.json").read_text(encoding="utf-8"))["runs"]
    assert sorted(run["status"] for run in index.values()) == ["finished"] * 3
    assert sum(1 for run in index.values() if run["rerun_of"]) == 1
    for run_id in index:
        steps = [json.loads(line) for line in (runs / run_id / "progress.jsonl").read_text(encoding="utf-8").splitlines()]
        assert [event["step"] for event in steps if event["event"] == "step"] == [1, 2]


@pytest.mark.skipif(not os.environ.get("GUI_SCREENSHOTS"), reason="screenshots only ($GUI_SCREENSHOTS)")
def test_history_page_in_english(browser: object, tmp_path: Path, shots: Path) -> None:  # noqa: F811
    expect = sync_api.expect
    history = RunHistory(tmp_path / "runs")
    runner = TrainingRunner(history=history)
    start_run(runner, tmp_path, "katana", 1e-4)
    start_run(runner, tmp_path, "wakizashi", 5e-05, env={"FAKE_LOSS_SCALE": "1.6"})
    with gui_server("--language", "en", env={"KOHYA_GUI_HISTORY_DIR": str(history.folder)}) as url:
        page = open_page(browser, url, path="history")
        expect(page.locator("#history_table")).to_contain_text("wakizashi.safetensors")
        choose(page, "history_run", 0)
        expect(field(page, "history_command")).to_have_value(re.compile("--config_file"))
        choose(page, "history_compare_a", 1)
        choose(page, "history_compare_b", 0)
        page.locator("#history_compare").click()
        expect(page.locator("#history_diff")).to_contain_text("(learning_rate)")
        page.screenshot(path=shots / "en_history.png", full_page=True)
