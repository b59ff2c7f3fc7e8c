"""The LoRA tab in a real browser (Playwright + Debian's Chromium) against `kohya_gui.py --headless`.

Trains a tiny SD 1.5 LoRA for 2 steps from the form, runs the preflight check, exports the command
(the same run files as Start wrote), stops a long run, saves and reloads a preset, imports a
kohya_ss config, and checks that
`--language ja` builds the page in Japanese whatever the browser's language. Screenshots go to
$GUI_SCREENSHOTS when set (else the test's tmp folder).
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

import pytest
import toml

from gui.i18n import Translator
from gui.runs.forked_launch import FORK_SOCKET_ENV
from gui.training.presets import USER_DIR
from tests.end_to_end.helpers import _ENV_AT_START, make_images, trainer_env
from tests.forked_commands import fork_socket

REPO = Path(__file__).resolve().parents[2]
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update"]

pytestmark = pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian's chromium at /usr/bin/chromium (apt-get install chromium)")
sync_api = pytest.importorskip("playwright.sync_api")
# Playwright's 5 s default for an expectation is shorter than one Gradio round trip on two busy cores (the
# suite runs a worker per core): a wait, not what is asserted, so every browser test waits up to 60 s.
sync_api.expect.set_options(timeout=60_000)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@contextmanager
def gui_server(*flags: str, env: Mapping[str, str] | None = None) -> Iterator[str]:
    """The GUI on a free port. Its last-form files go to a temporary folder (never the user's), unless
    `env` names one in KOHYA_GUI_STATE_DIR. Its output goes to `gui.log` there, printed when the test fails
    (a pipe nobody reads would block the server once full).

    Its runs (training, tools) start as forks of the worker's fork server, which has the heavy libraries
    imported (KOHYA_TEST_FORK_SOCKET: gui/runs/forked_launch.py, tests/forked_commands.py): the same command
    lines, without 10-20 s of imports each. The GUI gets the environment the end-to-end tests' runs have
    (trainer_env: HF_HUB_OFFLINE=1, PYTHONUNBUFFERED=1) so that they match the server's; a test that sets other
    variables in `env` gets fresh interpreters, as does KOHYA_TEST_FORK=0. `accelerate launch` in a fresh
    interpreter is tests/gui/runs/test_runner.py's real run."""
    port = free_port()
    state = tempfile.TemporaryDirectory(prefix="gui-state-")
    log_path = Path(state.name) / "gui.log"
    server_env = trainer_env(_ENV_AT_START)
    socket_path = fork_socket(server_env)
    forked = {FORK_SOCKET_ENV: socket_path} if socket_path else {}
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            [sys.executable, "kohya_gui.py", "--headless", "--server_port", str(port), *flags],
            cwd=REPO, stdout=log, stderr=subprocess.STDOUT,
            env={**trainer_env(), **forked, "KOHYA_GUI_STATE_DIR": state.name, **(env or {})},
        )  # fmt: skip
    url = f"http://127.0.0.1:{port}/"
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and process.poll() is None:
            try:
                with urllib.request.urlopen(url, timeout=5):
                    break
            except OSError:
                time.sleep(0.5)
        assert process.poll() is None, log_path.read_text(errors="replace")
        assert time.monotonic() < deadline, f"the GUI did not answer at {url} within 120 s"
        yield url
    except BaseException:
        print("GUI server output:\n" + log_path.read_text(errors="replace")[-20_000:])
        raise
    finally:
        process.terminate()
        process.wait(timeout=60)
        state.cleanup()


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    with sync_api.sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture
def shots(tmp_path: Path) -> Path:
    folder = Path(os.environ.get("GUI_SCREENSHOTS") or tmp_path / "screenshots")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


# Waits (not assertions) for the page: Gradio builds a training page's ~800 components in the browser, which
# takes tens of seconds when the suite's other worker is training on the second core.
PAGE_LOAD_MS = 180_000
# A click or fill waits for a page whose main thread may be busy rendering a Gradio update for tens of seconds.
ACTION_MS = 90_000


# Each training kind has its own page (gui/app.py); the element that shows a page has been built.
READY = {"": "#model_type", "dreambooth": "#dreambooth_model_type", "finetune": "#finetune_model_type",
         "textual_inversion": "#ti_model_type", "leco": "#leco_model_type", "video": "#video_model_type",
          "data": "#tab_captioning", "history": "#history_table", "queue": "#queue_table", "generate": "#generate_run"}


def go_to(page: object, url: str, path: str = "") -> None:
    """Open the app's page `path` ("" = the LoRA page) and wait until it is built."""
    try:
        page.goto(url + path, timeout=PAGE_LOAD_MS)
    except Exception as exc:  # a request of the page left still running can abort the navigation: once more
        if "ERR_ABORTED" not in str(exc):
            raise
        page.wait_for_timeout(1000)
        page.goto(url + path, timeout=PAGE_LOAD_MS)
    page.wait_for_selector(READY[path], timeout=PAGE_LOAD_MS)


def open_page(browser: object, url: str, locale: str = "en-US", path: str = "") -> object:
    page = browser.new_page(viewport={"width": 1400, "height": 1000}, locale=locale)
    page.set_default_timeout(ACTION_MS)
    go_to(page, url, path)
    return page


def field(page: object, elem_id: str) -> object:
    return page.locator(f"#{elem_id}").locator("textarea, input").first


def fill(page: object, elem_id: str, text: str) -> None:
    box = field(page, elem_id)
    box.fill(text)
    box.blur()


def open_group(page: object, group: str, label: str) -> None:
    page.locator(f"#group_{group}").get_by_text(label, exact=True).first.click()


def test_train_a_tiny_lora_from_the_form_and_use_presets(browser: object, tiny: object, tmp_path: Path, shots: Path) -> None:
    expect = sync_api.expect
    model = tiny.get("sd15").path
    make_images(tmp_path / "data" / "2_dog", 2)
    out = tmp_path / "out"
    t = Translator("en")
    preset_name = f"browser-test-{uuid.uuid4().hex[:8]}"
    imported_prompts = USER_DIR / "sd15_standard_prompts.txt"
    prompts_existed = imported_prompts.exists()
    try:
        with gui_server("--language", "en") as url:
            page = open_page(browser, url)
            fill(page, "opt_pretrained_model_name_or_path", str(model))
            fill(page, "opt_train_data_dir", str(tmp_path / "data"))
            fill(page, "opt_resolution", "64")
            fill(page, "opt_max_train_epochs", "")  # the LoRA tab counts in epochs (10); this run in steps
            fill(page, "opt_max_train_steps", "2")
            fill(page, "opt_seed", "7")
            expect(field(page, "opt_caption_extension")).to_have_value(".txt")  # the GUI's caption default
            open_group(page, "advanced", t.group_label("advanced"))
            fill(page, "opt_max_data_loader_n_workers", "0")
            fill(page, "opt_output_dir", str(out))  # in the essentials, not in the closed "Saving" section
            fill(page, "opt_output_name", "tiny")
            page.screenshot(path=shots / "en_form.png", full_page=True)

            # Print command names the config file that Start then writes (issue 14, item 20).
            page.locator("#lora_print").click()
            expect(page.locator("#lora_message")).to_contain_text(".toml", timeout=60_000)
            printed = next(word for word in page.locator("#lora_message").inner_text().split() if word.endswith(".toml"))
            page.locator("#lora_start").click()
            expect(page.locator("#lora_message")).to_contain_text(t.t("ui.started", path="")[:10], timeout=60_000)
            expect(page.locator("#lora_message")).to_contain_text(printed)
            assert Path(printed).is_file()
            expect(field(page, "lora_status")).to_have_value(t.t("ui.status.finished"), timeout=600_000)
            expect(page.locator("#lora_progress")).to_contain_text(t.t("ui.step_of", step=2, total=2))
            page.screenshot(path=shots / "en_finished.png", full_page=True)
            assert (out / "tiny.safetensors").is_file()
            (out / "tiny.safetensors").rename(tmp_path / "from_gui.safetensors")

            page.locator("#lora_preflight").click()
            expect(page.locator("#lora_preflight_report")).to_contain_text(t.t("ui.preflight_ok"), timeout=120_000)

            # Export writes the run the form started: the same TOML and snapshot, scripts that launch it
            # as Start did (that such a script trains the same LoRA as the runner is
            # tests/gui/runs/test_runner.py::test_real_lora_run_through_accelerate_and_the_exported_script).
            page.locator("#lora_export").click()
            expect(page.locator("#lora_message")).to_contain_text(t.t("ui.command_exported", path="")[:15], timeout=30_000)
            scripts = sorted(out.glob("*.sh"))
            assert len(scripts) == 1 and scripts[0].with_suffix(".bat").is_file()
            assert not (out / "tiny.safetensors").exists()  # exporting has no side effect beyond its files
            exported = scripts[0].with_suffix(".toml")
            assert exported != Path(printed) and toml.loads(exported.read_text()) == toml.loads(Path(printed).read_text())
            snapshot = json.loads(exported.with_suffix(".json").read_text())
            assert snapshot == json.loads(Path(printed).with_suffix(".json").read_text())
            script = scripts[0].read_text()
            assert f"--config_file {exported}" in script.replace("'", "").replace('"', "")
            assert "accelerate" in script and "backend.train_network" in script

            # Stop ends a long run from the page.
            fill(page, "opt_max_train_steps", "100000")
            page.locator("#lora_start").click()
            expect(page.locator("#lora_progress")).to_contain_text("of 100000", timeout=180_000)
            # A reload during the run shows that run's settings, not the defaults (item 20); the fine-tune
            # tab does not show the LoRA run as its own but names the tab it runs in.
            fill(page, "opt_max_train_steps", "777")  # edited after the start: not what is running
            page.reload()
            page.wait_for_selector("#model_type", timeout=PAGE_LOAD_MS)
            expect(field(page, "opt_max_train_steps")).to_have_value("100000", timeout=PAGE_LOAD_MS)  # the page load's restore
            expect(field(page, "opt_output_dir")).to_have_value(str(out))
            expect(field(page, "lora_status")).to_have_value(t.t("ui.status.running"), timeout=30_000)
            go_to(page, url, "finetune")
            expect(field(page, "finetune_status")).to_have_value(
                t.t("ui.other_run_running", tab=t.t("ui.tab.lora")), timeout=30_000
            )
            expect(page.locator("#finetune_progress")).not_to_contain_text("100000")
            page.screenshot(path=shots / "en_finetune_tab_during_lora_run.png", full_page=False)
            go_to(page, url)
            page.locator("#lora_stop").click()
            expect(field(page, "lora_status")).to_have_value(t.t("ui.status.stopped"), timeout=60_000)
            fill(page, "opt_max_train_steps", "2")

            fill(page, "preset_name", preset_name)
            page.locator("#preset_save").click()
            expect(page.locator("#preset_message")).to_contain_text(preset_name, timeout=30_000)
            assert (USER_DIR / f"{preset_name}.json").is_file()

            page.reload()  # no run now: the form as it was left
            page.wait_for_selector("#model_type", timeout=PAGE_LOAD_MS)
            expect(field(page, "opt_max_train_steps")).to_have_value("2", timeout=PAGE_LOAD_MS)
            fill(page, "opt_max_train_steps", "5")
            fill(page, "opt_train_data_dir", "")
            field(page, "preset_select").click()
            page.get_by_role("option", name=preset_name, exact=True).click()
            page.locator("#preset_load").click()
            expect(page.locator("#preset_message")).to_contain_text(preset_name, timeout=30_000)
            expect(field(page, "opt_max_train_steps")).to_have_value("2")
            expect(field(page, "opt_train_data_dir")).to_have_value(str(tmp_path / "data"))
            expect(field(page, "opt_output_name")).to_have_value("tiny")
            # The run belongs to the GUI process: the reloaded page still shows the last one (stopped).
            expect(field(page, "lora_status")).to_have_value(t.t("ui.status.stopped"), timeout=30_000)
            page.screenshot(path=shots / "en_preset_loaded.png", full_page=True)

            fill(page, "kohya_config_path", str(REPO / "tests" / "gui" / "data" / "kohya_configs" / "sd15_standard.json"))
            page.locator("#kohya_import").click()
            expect(page.locator("#preset_message")).to_contain_text("sd15_standard.json", timeout=30_000)
            expect(field(page, "opt_network_dim")).to_have_value("32")
            expect(field(page, "opt_output_name")).to_have_value("sks_dog_v1")
            expect(field(page, "netarg_rank_dropout")).to_have_value("0.1")  # the network's own field
            page.screenshot(path=shots / "en_kohya_imported.png", full_page=True)
            # A LyCORIS config keeps its network type and fields (issue 14, item 13).
            fill(page, "kohya_config_path", str(REPO / "tests" / "gui" / "data" / "kohya_configs" / "sdxl_lycoris_locon.json"))
            page.locator("#kohya_import").click()
            expect(page.locator("#preset_message")).to_contain_text("sdxl_lycoris_locon.json", timeout=30_000)
            expect(field(page, "network_type")).to_have_value("LyCORIS/LoCon")
            expect(field(page, "netarg_conv_dim")).to_have_value("8")
            expect(field(page, "netarg_conv_alpha")).to_have_value("4")
    finally:
        (USER_DIR / f"{preset_name}.json").unlink(missing_ok=True)
        if not prompts_existed:
            imported_prompts.unlink(missing_ok=True)


def test_japanese_gui_whatever_the_browser_language(browser: object, shots: Path) -> None:
    ja = Translator("ja")
    with gui_server("--language", "ja") as url:
        page = open_page(browser, url, locale="en-US")
        for text in (ja.t("ui.tab.lora"), ja.t("ui.tab.video"), ja.group_label("network"), ja.group_label("basic"),
                     ja.t("ui.start")):
            sync_api.expect(page.get_by_text(text, exact=True).first).to_be_visible()
        sync_api.expect(page.locator("#opt_learning_rate")).to_contain_text("学習率 (learning_rate)")
        page.screenshot(path=shots / "ja_form.png", full_page=True)
