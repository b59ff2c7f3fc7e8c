"""The Generate page in a real browser, in Japanese: a bad form is refused with the field named; then, from a tiny
2-epoch LoRA run's saves (trained outside the browser, recorded in the History), the page makes an epoch x weight
grid: the base model typed in, X = the run's saved files chosen from the History, Y = weights 0 and 1, Generate;
the grid image appears with its cells in the gallery, and the grid PNG and its JSON are on disk."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from gui.i18n import Translator
from gui.runs.run_history import RunHistory
from tests.gui.generate.history_records import record_run
from tests.gui.test_browser import CHROMIUM, browser, field, fill, gui_server, open_page, shots  # noqa: F401
from tests.gui.test_browser_history import choose
from tests.tools.generation.two_epochs import train_two_epochs

pytestmark = pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian's chromium at /usr/bin/chromium")
sync_api = pytest.importorskip("playwright.sync_api")


def test_generate_an_epoch_by_weight_grid(browser: object, tiny: object, tmp_path: Path, shots: Path) -> None:  # noqa: F811
    expect = sync_api.expect
    t = Translator("ja")
    model = tiny.get("sd15").path
    out, run = train_two_epochs(model, tmp_path / "run")
    history = RunHistory(tmp_path / "runs")
    run_id = record_run(history, ["python", "-m", "backend.train_network"], run.stdout,
                        {"pretrained_model_name_or_path": str(model), "output_name": "tiny"})  # fmt: skip
    gen = tmp_path / "gen"
    with gui_server("--language", "ja", env={"KOHYA_GUI_HISTORY_DIR": str(history.folder)}) as url:
        page = open_page(browser, url, path="generate")
        page.locator("#generate_run").click()  # nothing filled in: every missing value named, nothing started
        message = page.locator("#generate_message")
        expect(message).to_contain_text(t.t("ui.generate.cannot"))
        expect(message).to_contain_text("--pretrained_model_name_or_path")
        expect(message).to_contain_text("--prompt")

        choose(
            page, "generate_history_run", 0
        )  # the recorded run: its saves become X, its model the base model
        page.locator("#generate_use_run").click()
        expect(message).to_contain_text(run_id)
        expect(field(page, "generate_pretrained_model_name_or_path")).to_have_value(str(model))
        expect(field(page, "generate_x_values")).to_have_value(
            f"{out / 'tiny-000001.safetensors'}\n{out / 'tiny.safetensors'}"
        )
        fill(page, "generate_y_values", "0, 1")
        fill(page, "generate_prompt", "sks dog")
        for name, value in (
            ("width", "64"),
            ("height", "64"),
            ("steps", "2"),
            ("seed", "3"),
            ("outdir", str(gen)),
        ):
            fill(page, f"generate_{name}", value)
        fill(page, "generate_device", "cpu")
        page.locator("#generate_run").click()
        expect(message).to_contain_text(t.t("ui.generate.started_grid", columns=2, rows=2, images=4))
        (grid,) = wait_for_file_matching(gen, "*-grid.png")
        expect(page.locator("#generate_grid_image img")).to_be_visible(timeout=120_000)
        expect(page.locator("#generate_gallery img")).to_have_count(4)
        expect(page.locator("#generate_saved")).to_contain_text(grid.name)
        page.screenshot(path=shots / "ja_generate_grid.png", full_page=True)

    record = json.loads(grid.with_suffix(".json").read_text(encoding="utf-8"))
    assert record["x"]["labels"] == ["tiny-000001", "tiny"]  # the run's epoch save, then its last
    assert record["y"] == {"axis": "weight", "values": [0.0, 1.0], "labels": ["0", "1"]}
    assert (record["size"], record["steps"]) == ([64, 64], 2)


def wait_for_file_matching(folder: Path, pattern: str, timeout: float = 300.0) -> list[Path]:
    """The files `pattern` matches in `folder` once there are any (a 2-step run may end between two polls)."""
    deadline = time.monotonic() + timeout
    while not (found := sorted(folder.glob(pattern))):
        assert time.monotonic() < deadline, f"no {pattern} in {folder} within {timeout:.0f} s"
        time.sleep(0.2)
    return found
