"""A Wan 2.1 LoRA trained from the Video training tab in a real browser (issue 18): the model type sets
finetrainers' --model_name, the run (`accelerate launch -m backend.train_video`) trains the tiny Wan
transformer on one clip to `pytorch_lora_weights.safetensors` and the page plays its validation video (the tab's Japanese label: test_browser.py's Japanese test)."""

from __future__ import annotations

from pathlib import Path

import pytest
from safetensors import safe_open

from gui.i18n import Translator
from tests.data.video.make_clips import write_clip
from tests.gui import test_browser as base
from tests.gui.test_browser import CHROMIUM, field, fill, gui_server, open_page, sync_api

pytestmark = pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian's chromium at /usr/bin/chromium")
browser, shots = base.browser, base.shots


def open_video_group(page: object, group: str, label: str) -> None:
    page.locator(f"#video_group_{group}").get_by_text(label, exact=True).first.click()


def test_train_a_tiny_wan_lora_and_see_its_validation_video(browser: object, tiny: object, tmp_path: Path,  # noqa: F811
                                                            shots: Path) -> None:
    expect = sync_api.expect
    t = Translator("en")
    model = tiny.get("wan2.1-t2v-1.3b").path
    write_clip(tmp_path / "data" / "clip.mp4", frames=9, size=(64, 64), fps=8, seed=3)
    (tmp_path / "data" / "clip.txt").write_text("a red square moves right", encoding="utf-8")
    out = tmp_path / "out"
    with gui_server("--language", "en") as url:
        page = open_page(browser, url, path="video")
        page.locator("#video_model_type label").filter(has_text="Wan 2.1").first.click()
        fill(page, "video_opt_pretrained_model_name_or_path", str(model))
        fill(page, "video_opt_data_root", str(tmp_path / "data"))
        fill(page, "video_opt_video_resolution_buckets", "5x64x64")
        fill(page, "video_opt_output_dir", str(out))
        expect(field(page, "video_opt_rank")).to_have_value("32")  # the tab's starting values
        fill(page, "video_opt_rank", "4")
        fill(page, "video_opt_lora_alpha", "4")
        fill(page, "video_opt_train_steps", "2")
        fill(page, "video_opt_checkpointing_steps", "2")
        # v0.2's validation table: 2 inference steps (a prompt in --validation_prompts renders finetrainers' 50)
        table = tmp_path / "validation.json"
        table.write_text('{"data": [{"caption": "a red square", "num_frames": 5, "num_inference_steps": 2}]}')
        fill(page, "video_opt_validation_steps", "2")
        open_video_group(page, "samples", t.group_label("samples"))
        fill(page, "video_opt_validation_dataset_file", str(table))
        page.locator("#video_print").click()
        expect(page.locator("#video_command_bash")).to_contain_text("-m backend.train_video --config_file")
        expect(page.locator("#video_command_toml")).to_contain_text('model_name = "wan"')
        page.screenshot(path=shots / "en_video_form.png", full_page=True)

        # What the page was sent and what it said, reported if the player stays empty (a rare failure under load).
        seen: list[str] = []
        page.on("console", lambda message: seen.append(f"console {message.type}: {message.text}"))
        page.on("pageerror", lambda error: seen.append(f"page error: {error}"))

        def on_response(response: object) -> None:
            if "/gradio_api/" in response.url:
                body = response.text() if "/run/" in response.url else ""
                seen.append(f"{response.status} {response.url} {body[:300] if 'mp4' in body or 'ideo' in body else ''}")

        page.on("response", on_response)
        page.on("requestfailed", lambda request: seen.append(f"failed: {request.url} {request.failure}"))
        page.locator("#video_start").click()
        expect(field(page, "video_status")).to_have_value(t.t("ui.status.finished"), timeout=300_000)
        player = page.locator("#video_video video")
        try:
            expect(player).to_be_visible(timeout=30_000)
        except AssertionError:
            page.screenshot(path=shots / "en_video_no_player.png", full_page=True)
            # Short, and instead of Playwright's page snapshot: CI keeps only the end of a failure's output.
            shown_log = field(page, "video_log").input_value().splitlines()[-3:]
            written = sorted(path.name for path in (out / "sample").glob("*")) if (out / "sample").exists() else []
            report = [f"no player after Finished; videos written: {written}; the page's log ends: {shown_log}",
                      *[line for line in seen if not line.startswith(("console", "page", "failed"))][-12:],
                      *[line for line in seen if line.startswith(("console error", "page", "failed"))][-8:]]
            raise AssertionError("\n".join(report)) from None
        expect(page.locator("#video_video")).to_contain_text(t.t("ui.validation_video_step", step=2))
        page.locator("#video_video").scroll_into_view_if_needed()
        page.screenshot(path=shots / "en_video_finished.png", full_page=True)

    with safe_open(str(out / "pytorch_lora_weights.safetensors"), "pt") as lora:
        keys = set(lora.keys())
    assert any(key.startswith("transformer.blocks.0.attn1.to_q.lora_A") for key in keys), sorted(keys)[:4]
    assert [p.suffix for p in (out / "sample").iterdir()] == [".mp4"]
