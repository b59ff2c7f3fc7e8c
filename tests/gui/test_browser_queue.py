"""The run queue in a real browser: two tiny 2-step LoRA runs queued from the LoRA page, the GUI restarted between
them on the same user state (the first run in an English GUI, the queue then paused with the second waiting; the
second after the restart in a Japanese one), both finish and History lists both. A bad form is refused when
queued; the header line says what waits."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from gui.i18n import Translator
from tests.end_to_end.helpers import make_images
from tests.gui.test_browser import CHROMIUM, browser, field, go_to, gui_server, open_group, open_page, shots  # noqa: F401
from tests.gui.test_browser_finetune import fill
from tests.gui.test_browser_history import fill_two_step_lora, wait_for_file

pytestmark = pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian's chromium at /usr/bin/chromium")
sync_api = pytest.importorskip("playwright.sync_api")


def test_queued_runs_finish_across_a_gui_restart(
    browser: object,  # noqa: F811
    tiny: object,
    tmp_path: Path,
    shots: Path,  # noqa: F811
) -> None:
    expect = sync_api.expect
    en, ja = Translator("en"), Translator("ja")
    runs = tmp_path / "runs"  # the history folder, and the queue file in it: the user state both GUIs share
    make_images(tmp_path / "data" / "2_dog", 2)
    out = tmp_path / "out"
    env = {"KOHYA_GUI_HISTORY_DIR": str(runs)}
    with gui_server("--language", "en", env=env) as url:
        page = open_page(browser, url)
        line = page.locator("#queue_line")
        expect(line).to_have_text(en.t("ui.queue.line_empty"))
        page.locator("#lora_queue").click()  # no model, no data: refused now, not when its turn comes
        expect(page.locator("#lora_message")).to_contain_text(en.t("ui.fix_options"))
        fill_two_step_lora(page, en, tiny.get("sd15").path, tmp_path / "data", out)
        fill(page, "opt_output_name", "ichi")
        page.locator("#lora_queue").click()
        expect(page.locator("#lora_message")).to_contain_text("Added to the queue")
        wait_for_file(
            out / "ichi.safetensors"
        )  # a 2-step run may end between two polls: its file marks its end

        queue = open_page(browser, url, path="queue")
        table = queue.locator("#queue_table")
        expect(table).to_contain_text(en.t("ui.status.finished"), timeout=60_000)
        queue.locator("#queue_pause").click()
        expect(queue.locator("#queue_state")).to_contain_text("Paused")
        fill(page, "opt_output_name", "ni")
        page.locator("#lora_queue").click()
        expect(page.locator("#lora_message")).to_contain_text("The queue is paused")
        expect(line).to_have_text(en.t("ui.queue.line_paused", running=0, waiting=1), timeout=30_000)
        page.screenshot(path=shots / "en_queue_lora_page.png")
        go_to(queue, url, "queue")
        expect(table).to_contain_text("ni")
        expect(table).to_contain_text(en.t("ui.queue.status.waiting"))
        queue.screenshot(path=shots / "en_queue_page.png", full_page=True)
    assert not (out / "ni.safetensors").exists()

    with gui_server("--language", "ja", env=env) as url:  # a new GUI on the same user state
        queue = open_page(browser, url, locale="ja-JP", path="queue")
        table = queue.locator("#queue_table")
        expect(table).to_contain_text(ja.t("ui.queue.status.waiting"))
        expect(queue.locator("#queue_line")).to_have_text(ja.t("ui.queue.line_paused", running=0, waiting=1))
        queue.screenshot(path=shots / "ja_queue_paused.png", full_page=True)
        queue.locator("#queue_pause").click()  # the queue was left paused: resume it
        wait_for_file(out / "ni.safetensors")
        expect(table).not_to_contain_text(ja.t("ui.queue.status.waiting"), timeout=60_000)
        expect(table).not_to_contain_text(ja.t("ui.status.running"), timeout=60_000)
        expect(queue.locator("#queue_line")).to_have_text(ja.t("ui.queue.line_empty"), timeout=30_000)
        queue.screenshot(path=shots / "ja_queue_done.png", full_page=True)
        go_to(queue, url, "history")
        history = queue.locator("#history_table")
        expect(history).to_contain_text("ichi.safetensors")
        expect(history).to_contain_text("ni.safetensors")

    items = json.loads((runs / "queue.json").read_text(encoding="utf-8"))["items"]
    assert [(item["name"], item["status"]) for item in items] == [("ichi", "finished"), ("ni", "finished")]
    records = [json.loads(path.read_text(encoding="utf-8")) for path in sorted(runs.glob("*/run.json"))]
    assert sorted((record["output_name"], record["status"]) for record in records) == [
        ("ichi", "finished"),
        ("ni", "finished"),
    ]
    assert {record["queue_item"] for record in records} == {item["id"] for item in items}
