"""The training forms in a real browser, in Japanese, without training (issue 14, items 17-22).

One GUI start covers: the accelerate section never breaks the buttons and problems name their field
in the UI language; each kind starts from its own values and preflight warns about a fine-tuning
learning rate in a LoRA run; presets load to a defined form, broken ones change nothing, Save never
overwrites silently; a reload keeps the form; the essentials, the action bar, readable help on hover
(contrast measured in the light and dark themes) and the option search (item 22, and a field of
another model type named as such); runtime messages in Japanese: a preflight error, a broken preset,
the kohya_ss import report (item 21). A small page of its own
checks that the log follows new lines unless the user scrolled up.
"""

from __future__ import annotations

import json
import time
import uuid
from pathlib import Path

import pytest

from backend.messages import fill as fill_template
from gui.i18n import Translator, load_catalogue
from gui.plain_text import plain_info
from tests.end_to_end.helpers import make_images
from tests.gui import test_browser as base
from tests.gui.test_browser import CHROMIUM, field, fill, free_port, gui_server, open_page, sync_api

pytestmark = pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian's chromium at /usr/bin/chromium")
browser, shots = base.browser, base.shots  # the fixtures of the LoRA tab's browser test
USER = base.USER_DIR
KOHYA_CONFIGS = base.REPO / "tests" / "gui" / "data" / "kohya_configs"
JA = load_catalogue("ja")


def fill_message(template: str, **params: object) -> str:
    """A runtime message as the GUI shows it (params formatted as `backend.messages.msg` does)."""
    return fill_template(template, params)

# The WCAG contrast ratio of an element's text against the first opaque background behind it.
CONTRAST_JS = """(selector) => {
  const element = document.querySelector(selector);
  const parse = (c) => { const m = c.match(/[\\d.]+/g).map(Number); return {r: m[0], g: m[1], b: m[2], a: m.length > 3 ? m[3] : 1}; };
  const channel = (v) => { v /= 255; return v <= 0.03928 ? v / 12.92 : Math.pow((v + 0.055) / 1.055, 2.4); };
  const luminance = (c) => 0.2126 * channel(c.r) + 0.7152 * channel(c.g) + 0.0722 * channel(c.b);
  let background = {r: 255, g: 255, b: 255};
  for (let e = element; e; e = e.parentElement) {
    const c = parse(getComputedStyle(e).backgroundColor);
    if (c.a > 0.5) { background = c; break; }
  }
  const [high, low] = [luminance(parse(getComputedStyle(element).color)), luminance(background)].sort((a, b) => b - a);
  return (high + 0.05) / (low + 0.05);
}"""


def in_view(page: object, selector: str) -> bool:
    box = page.locator(selector).first.bounding_box()
    height = page.viewport_size["height"]
    return box is not None and box["y"] >= 0 and box["y"] + box["height"] <= height + 1


def ime_type(page: object, text: str) -> None:
    """Type `text` as a Japanese input method does: composition updates, then the committed text
    (no key events for the characters, unlike page.keyboard.type)."""
    cdp = page.context.new_cdp_session(page)
    for end in range(1, len(text) + 1):
        cdp.send("Input.imeSetComposition", {"text": text[:end], "selectionStart": end, "selectionEnd": end})
    cdp.send("Input.insertText", {"text": text})


def choose_preset(page: object, name: str) -> None:
    field(page, "preset_select").click()
    page.get_by_role("option", name=name, exact=True).click()


def test_training_form_in_japanese(browser: object, tiny: object, tmp_path: Path, shots: Path) -> None:  # noqa: F811
    expect = sync_api.expect
    ja = Translator("ja")
    model = str(tiny.get("sd15").path)
    make_images(tmp_path / "data" / "2_dog", 2)
    tag = uuid.uuid4().hex[:8]
    broken, mine, other = USER / f"bt-broken-{tag}.json", USER / f"bt-mine-{tag}.json", USER / f"bt-other-{tag}.json"
    USER.mkdir(parents=True, exist_ok=True)
    broken.write_text('{"learning_rate": "fast"}', encoding="utf-8")
    imported_prompts = USER / "sd15_standard_prompts.txt"  # written by the kohya_ss import
    prompts_existed = imported_prompts.exists()
    try:
        with gui_server("--language", "ja") as url:
            page = open_page(browser, url, locale="en-US")
            toasts = page.locator(".toast-body")

            # Item 22: every required field is in the open essentials section; the actions are in view.
            for name in ("pretrained_model_name_or_path", "output_dir", "train_data_dir", "learning_rate"):
                expect(field(page, f"opt_{name}")).to_be_visible()
            assert in_view(page, "#lora_action_bar") and in_view(page, "#lora_start")
            page.mouse.move(700, 400)
            page.mouse.wheel(0, 2500)
            time.sleep(0.3)
            assert in_view(page, "#lora_start") and in_view(page, "#lora_bar_status")
            page.evaluate("window.scrollTo(0, 0)")

            # Help is folded away, shows on hover, reads as written and is readable in this theme.
            info = page.locator("#opt_learning_rate .info-text")
            expect(info).to_be_hidden()
            page.locator("#opt_learning_rate [data-testid=block-info]").hover()
            expect(info).to_be_visible()
            assert page.evaluate(CONTRAST_JS, "#opt_learning_rate .info-text") >= 4.5
            assert page.evaluate(CONTRAST_JS, "#kohya_config_path .info-text") >= 4.5  # shown in place
            text = page.locator("#opt_train_data_dir .info-text").text_content()
            assert text == plain_info(ja.option_help("train_data_dir"))  # '<繰り返し回数>_<…>' kept
            page.screenshot(path=shots / "ja_help_hover.png")

            # Finding an option by (part of) its Japanese label opens its section and jumps to it.
            search = field(page, "option_search")
            search.click()
            ime_type(page, "ノイズオフセット")
            expect(page.get_by_role("option").first).to_contain_text("(noise_offset)")
            page.get_by_role("option").first.click()
            expect(field(page, "opt_noise_offset")).to_be_visible(timeout=10_000)
            expect(field(page, "opt_noise_offset")).to_be_focused()
            assert in_view(page, "#opt_noise_offset")
            # The formulas in help texts keep their '*' (Gradio's Markdown had made them italics).
            search.click()
            search.fill("")
            page.keyboard.type("v_pred_like")
            expect(page.get_by_role("option").first).to_contain_text("(v_pred_like_loss)")
            page.get_by_role("option").first.click()
            expect(field(page, "opt_v_pred_like_loss")).to_be_focused(timeout=10_000)
            help_text = page.locator("#opt_v_pred_like_loss .info-text")
            assert "(SNR+1)/SNR\u2217" in help_text.text_content() and help_text.locator("em").count() == 0
            page.screenshot(path=shots / "ja_search_jump.png")
            # A field of another model type (clip_skip under SDXL) cannot be shown: the search says whose it is.
            page.evaluate("window.scrollTo(0, 0)")
            page.locator("#model_type").get_by_text("SDXL", exact=True).click()
            search.click()
            search.fill("")
            page.keyboard.type("clip_skip")
            page.get_by_role("option").first.click()
            clip_skip = f"{ja.option_label('clip_skip')} (clip_skip)"
            note = ja.t("ui.search_other_model", option=clip_skip, types="SD 1.x, SD 2.x")
            expect(page.locator("#option_search_note")).to_have_text(note, timeout=10_000)
            page.screenshot(path=shots / "ja_search_other_model.png")
            page.locator("#model_type").get_by_text("SD 1.x", exact=True).click()
            expect(page.locator("#option_search_note")).to_have_text("", timeout=10_000)

            # Item 19: the LoRA tab starts from LoRA values, captions are .txt.
            expect(field(page, "opt_learning_rate")).to_have_value("0.0001")
            expect(field(page, "opt_caption_extension")).to_have_value(".txt")
            expect(field(page, "opt_max_train_epochs")).to_have_value("10")

            # Item 17: opening the accelerate section changes nothing; a bad value is named, in Japanese.
            page.locator("#group_accelerate > .label-wrap").click()
            expect(field(page, "acc_num_processes")).to_have_value("")
            page.locator("#lora_print").click()
            expect(page.locator("#lora_message")).to_contain_text("pretrained_model_name_or_path", timeout=30_000)
            fill(page, "acc_num_processes", "0")
            page.locator("#lora_print").click()
            expect(page.locator("#lora_message")).to_contain_text("プロセス数 (num_processes)", timeout=30_000)
            expect(page.locator("#lora_message")).to_contain_text("1 以上")
            fill(page, "acc_num_processes", "")
            assert toasts.count() == 0, toasts.all_inner_texts()  # never Gradio's own English error

            # Item 21: a preflight that finds a real problem reports it in Japanese (the trainer runs with
            # KOHYA_LANGUAGE=ja), under Japanese headings; the path in it reads exactly as written although
            # the report is Markdown (Gradio's sanitizer ate "<folder>" and what followed; * and _ made italics).
            missing = tmp_path / "<folder>" / "my *best* __model__ [v1].safetensors"
            fill(page, "opt_pretrained_model_name_or_path", str(missing))
            fill(page, "opt_train_data_dir", str(tmp_path / "data"))
            fill(page, "opt_output_dir", str(tmp_path / "out"))
            fill(page, "opt_resolution", "64")
            page.locator("#lora_preflight").click()
            report = page.locator("#lora_preflight_report")
            expect(report).to_contain_text(ja.t("ui.preflight_failed"), timeout=180_000)
            error = fill_message(JA["msg.preflight.model_not_found"], path=missing)
            expect(report).to_contain_text(error)
            assert f"❌ {error}" in report.locator("li").all_inner_texts()
            assert report.locator("li em, li strong, li a, li code").count() == 0  # no markup made from it
            expect(report).to_contain_text(ja.t("ui.preflight.errors"))
            report.scroll_into_view_if_needed()
            page.screenshot(path=shots / "ja_preflight_error.png")

            # Item 19: preflight of a LoRA at sd-scripts' fine-tuning rate warns.
            fill(page, "opt_pretrained_model_name_or_path", model)
            fill(page, "opt_train_data_dir", str(tmp_path / "data"))
            fill(page, "opt_output_dir", str(tmp_path / "out"))
            fill(page, "opt_resolution", "64")
            fill(page, "opt_learning_rate", "2e-6")
            page.locator("#lora_preflight").click()
            expect(page.locator("#lora_preflight_report")).to_contain_text("--learning_rate 2e-06", timeout=180_000)

            # Item 18: a shipped preset over another one gives the same form as over the defaults.
            fill(page, "opt_pretrained_model_name_or_path", model)
            choose_preset(page, "[sdxl_lokr_prodigy]")
            page.locator("#preset_load").click()
            expect(field(page, "opt_optimizer_type")).to_have_value("Prodigy", timeout=30_000)
            choose_preset(page, "[sdxl_locon]")
            page.locator("#preset_load").click()
            expect(field(page, "opt_optimizer_type")).to_have_value("AdamW", timeout=30_000)
            expect(field(page, "opt_optimizer_args")).to_have_value("")  # Prodigy's arguments are gone
            expect(field(page, "network_type")).to_have_value(ja.t("ui.network.LoCon"))
            expect(field(page, "opt_pretrained_model_name_or_path")).to_have_value(model)  # paths are kept
            expect(page.locator("#preset_message")).to_contain_text("既定値に戻しました")
            page.screenshot(path=shots / "ja_preset_loaded.png")
            # A broken file changes nothing and says what is wrong, and where.
            fill(page, "opt_learning_rate", "0.123")
            choose_preset(page, broken.stem)
            page.locator("#preset_load").click()
            expect(page.locator("#preset_message")).to_contain_text("読み込まず", timeout=30_000)
            expect(page.locator("#preset_message")).to_contain_text('1 行目: "learning_rate"')  # in Japanese (item 21)
            expect(field(page, "opt_learning_rate")).to_have_value("0.123")
            # Save writes under the typed name; replacing an existing preset needs Overwrite.
            fill(page, "preset_name", mine.stem)
            page.locator("#preset_save").click()
            expect(page.locator("#preset_message")).to_contain_text(str(mine), timeout=30_000)
            saved = mine.read_text(encoding="utf-8")
            expect(field(page, "preset_name")).to_have_value(mine.stem)
            fill(page, "opt_learning_rate", "0.5")
            page.locator("#preset_save").click()
            expect(page.locator("#preset_overwrite")).to_be_visible(timeout=30_000)
            assert mine.read_text(encoding="utf-8") == saved  # nothing replaced without asking
            fill(page, "preset_name", other.stem)  # typing another name instead: a new preset
            expect(page.locator("#preset_overwrite")).to_be_hidden()
            page.locator("#preset_save").click()
            expect(page.locator("#preset_message")).to_contain_text(str(other), timeout=30_000)
            assert mine.read_text(encoding="utf-8") == saved and json.loads(other.read_text())["learning_rate"] == 0.5
            choose_preset(page, mine.stem)
            expect(field(page, "preset_name")).to_have_value(mine.stem)
            page.locator("#preset_save").click()
            page.locator("#preset_overwrite").click()
            # (the "already exists" message names the file too: the overwrite is done when the file says so)
            deadline = time.monotonic() + 30
            while json.loads(mine.read_text())["learning_rate"] != 0.5 and time.monotonic() < deadline:
                time.sleep(0.2)
            assert json.loads(mine.read_text())["learning_rate"] == 0.5
            expect(page.locator("#preset_overwrite")).to_be_hidden()

            # Item 20: a reload comes back to the form as it was left (also after a browser crash).
            fill(page, "opt_learning_rate", "0.00042")
            fill(page, "opt_max_train_epochs", "")  # emptied on purpose: stays empty
            time.sleep(1)  # the last field's save
            page.reload()
            page.wait_for_selector("#model_type", timeout=base.PAGE_LOAD_MS)
            expect(field(page, "opt_learning_rate")).to_have_value("0.00042", timeout=base.PAGE_LOAD_MS)
            expect(field(page, "opt_max_train_epochs")).to_have_value("")
            expect(field(page, "opt_output_dir")).to_have_value(str(tmp_path / "out"))
            expect(field(page, "network_type")).to_have_value(ja.t("ui.network.LoCon"))

            # The fine-tuning tab starts from fine-tuning values.
            base.go_to(page, url, "finetune")
            expect(field(page, "finetune_opt_learning_rate")).to_have_value("1e-05")
            expect(field(page, "finetune_opt_caption_extension")).to_have_value(".txt")
            assert toasts.count() == 0, toasts.all_inner_texts()

            # The dark theme's help texts are readable too (Gradio's ?__theme=dark puts "dark" on <body>).
            page.evaluate("document.body.classList.add('dark')")
            page.locator("#finetune_opt_learning_rate [data-testid=block-info]").hover()
            expect(page.locator("#finetune_opt_learning_rate .info-text")).to_be_visible()
            assert page.evaluate(CONTRAST_JS, "#finetune_opt_learning_rate .info-text") >= 4.5
            assert page.evaluate(CONTRAST_JS, "#finetune_opt_learning_rate [data-testid=block-info]") >= 4.5
            page.screenshot(path=shots / "ja_dark_help.png")

            # Item 21: the kohya_ss import report is Japanese line by line, key names and values as written.
            page.evaluate("document.body.classList.remove('dark')")
            base.go_to(page, url)
            fill(page, "kohya_config_path", str(KOHYA_CONFIGS / "sd15_standard.json"))
            page.locator("#kohya_import").click()
            message = page.locator("#preset_message")
            expect(message).to_contain_text(ja.t("ui.kohya_reason.secret"), timeout=30_000)
            expect(message).to_contain_text(f"huggingface_token = <hidden>: {JA['msg.gui.kohya.secret']}")
            expect(message).not_to_contain_text("never carried over")
            message.scroll_into_view_if_needed()
            page.screenshot(path=shots / "ja_kohya_import_report.png")
    finally:
        for path in (broken, mine, other):
            path.unlink(missing_ok=True)
        if not prompts_existed:
            imported_prompts.unlink(missing_ok=True)


def test_the_log_follows_new_lines_unless_scrolled_up(browser: object) -> None:  # noqa: F811
    import gradio as gr

    from gui.runs.log_view import log_box

    lines: list[str] = []
    with gr.Blocks() as app:
        log = log_box("log", "probe_log")
        gr.Timer(0.2).tick(lambda: "\n".join(lines), outputs=log)
    port = free_port()
    app.launch(server_port=port, prevent_thread_lock=True, _frontend=False, quiet=True)
    try:
        page = browser.new_page(viewport={"width": 900, "height": 700})
        page.set_default_timeout(base.ACTION_MS)
        page.goto(f"http://127.0.0.1:{port}/", timeout=180_000)
        box = page.locator("#probe_log textarea")
        lines.extend(f"line {n}" for n in range(200))
        sync_api.expect(box).to_have_value("\n".join(lines), timeout=20_000)

        def gap() -> float:  # pixels between the end of the text and the bottom of the box
            return box.evaluate("e => e.scrollHeight - e.scrollTop - e.clientHeight")

        deadline = time.monotonic() + 10
        while gap() > 8 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert gap() <= 8  # at the end
        box.evaluate("e => { e.scrollTop = 0; e.dispatchEvent(new Event('scroll')); }")
        lines.extend(f"more {n}" for n in range(50))
        sync_api.expect(box).to_have_value("\n".join(lines), timeout=20_000)
        time.sleep(0.5)
        assert box.evaluate("e => e.scrollTop") == 0  # reading older lines is not interrupted
        box.evaluate("e => { e.scrollTop = e.scrollHeight; e.dispatchEvent(new Event('scroll')); }")
        lines.extend(f"last {n}" for n in range(50))
        sync_api.expect(box).to_have_value("\n".join(lines), timeout=20_000)
        time.sleep(0.5)
        assert gap() <= 8  # back at the end: following again
    finally:
        app.close()
