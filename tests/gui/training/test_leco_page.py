"""The LECO page without a browser: its kind (save formats, starting values, no dataset section, presets) and the
"new prompt file" action (a commented starting file the trainer's own reader takes, never written over a file)."""

from __future__ import annotations

from pathlib import Path

import gradio as gr
import pytest

from backend import messages
from backend.training.leco_prompts import load_prompt_settings
from backend.training.preflight import LORA_FORMATS
from gui.i18n import Translator
from gui.training import form_state
from gui.training.leco_prompt_files import TEMPLATES, new_prompt_file, target_path, template_text
from gui.training.lora_tab import build_lora_tab, tab_options
from gui.training.presets import load_preset
from gui.training.training_kinds import KINDS, LECO

EN, JA = Translator("en"), Translator("ja")


def test_the_leco_kind_offers_what_its_commands_take() -> None:
    assert KINDS["leco"] is LECO and LECO.networks and LECO.id_prefix == "leco_"
    assert set(LECO.commands.values()) == {"train_leco", "sdxl_train_leco"}
    options = tab_options(LECO)
    assert options["save_model_as"].choices == LORA_FORMATS
    assert "prompts_file" in LECO.essentials and options["prompts_file"].required
    assert {name: options[name].default for name in ("network_dim", "network_alpha", "learning_rate",
                                                      "max_train_steps", "max_denoising_steps")} == {
        "network_dim": 8, "network_alpha": 4.0, "learning_rate": 1e-4, "max_train_steps": 500, "max_denoising_steps": 40}
    # LECO has no images: no dataset, caption or bucket options on its page.
    assert not {"train_data_dir", "caption_extension", "resolution", "enable_bucket", "train_batch_size"} & set(options)
    assert {option.group for option in options.values()}.isdisjoint({"dataset", "folders"})
    # Taken as sd-scripts parses them, refused by preflight: not offered on the page.
    assert not {"max_train_epochs", "network_train_text_encoder_only"} & set(options)


@pytest.mark.parametrize("path", sorted(LECO.shipped_presets.glob("*.json")), ids=lambda path: path.stem)
def test_shipped_leco_presets_load_cleanly(path: Path) -> None:
    preset = load_preset(path, LECO)
    assert preset.problems == []
    assert preset.gui["model_type"] in LECO.model_type_names
    assert not any(isinstance(value, str) and ("/" in value or "\\" in value) for value in preset.values.values())


def test_there_are_both_shipped_leco_presets() -> None:
    assert {path.stem for path in LECO.shipped_presets.glob("*.json")} == {"sd15_leco", "sdxl_leco"}


@pytest.mark.parametrize("template", TEMPLATES)
@pytest.mark.parametrize("t", [EN, JA], ids=["en", "ja"])
def test_each_template_is_a_prompt_file_the_trainer_reads(template: str, t: Translator, tmp_path: Path) -> None:
    path = tmp_path / "prompts.toml"
    path.write_text(template_text(template, t, 1024), encoding="utf-8")
    settings = load_prompt_settings(path)
    assert settings and all(setting.resolution == (1024, 1024) for setting in settings)
    if template == "erase":
        assert [(s.target, s.action) for s in settings] == [("van gogh", "erase")]
    else:  # both ends given: erase and enhance at +1 and -1, once per neutral prompt
        assert len(settings) == 4 * 3 and {s.multiplier for s in settings} == {1.0, -1.0}
    comments = [line for line in path.read_text(encoding="utf-8").splitlines() if line.startswith("#")]
    assert len(comments) >= 5 and (t is EN or any("プロンプト" in line for line in comments))


def test_a_new_prompt_file_goes_beside_the_outputs_and_fills_the_field(tmp_path: Path) -> None:
    out = tmp_path / "out"  # made if missing
    made = new_prompt_file("slider", "", str(out), "smile_slider", EN, "sd1")
    assert made.path == out / "smile_slider_prompts.toml" and made.path.is_file()
    assert str(made.path) in made.message.replace("\\", "")
    assert load_prompt_settings(made.path)[0].resolution == (512, 512)
    # The file's resolution follows the model type's native size.
    sdxl = new_prompt_file("erase", str(tmp_path / "x.toml"), "", "", EN, LECO.model_types[-1].name)
    assert sdxl.path is not None and load_prompt_settings(sdxl.path)[0].resolution == (1024, 1024)


def test_an_existing_file_is_never_written_over(tmp_path: Path) -> None:
    mine = tmp_path / "mine.toml"
    mine.write_text("my own prompts\n", encoding="utf-8")
    for where in (str(mine), f'"{mine}"'):
        made = new_prompt_file("erase", where, "", "", JA)
        assert made.path is None and mine.read_text(encoding="utf-8") == "my own prompts\n"
        assert "すでにある" in made.message and "mine.toml" in made.message
    first = new_prompt_file("erase", str(tmp_path), "", "", EN)  # a folder: leco_prompts.toml in it
    assert first.path == tmp_path / "leco_prompts.toml"
    again = new_prompt_file("slider", str(tmp_path), "", "", EN)
    assert again.path is None and "exists already" in again.message
    assert 'action = "erase"' in first.path.read_text(encoding="utf-8")


def test_no_place_given_asks_for_one_and_writes_nothing(tmp_path: Path) -> None:
    assert target_path("  ", "", "") is None
    made = new_prompt_file("erase", "", "", "name", EN)
    assert made.path is None and made.message == EN.t("ui.leco_prompts.where_needed")
    assert target_path("", str(tmp_path), "../up") == tmp_path / "up_prompts.toml"  # a name, not a path


def test_a_place_that_cannot_be_written_says_why(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("", encoding="utf-8")
    made = new_prompt_file("erase", str(blocker / "sub" / "p.toml"), "", "", EN)
    assert made.path is None and "Could not write" in made.message


def _click(app: gr.Blocks, button: gr.Button) -> object:
    return next(fn for fn in app.fns.values() if any(target[0] == button._id for target in fn.targets))


def test_the_page_button_writes_the_file_puts_it_in_the_field_and_saves_the_form(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(form_state.STATE_DIR_ENV, str(tmp_path / "state"))
    messages.set_language("ja")
    try:
        with gr.Blocks() as app:
            tab = build_lora_tab(JA, None, None, LECO)
        ids = {getattr(block, "elem_id", None) for block in app.blocks.values()}
        # The network selector's ids are the page's own (the LoRA page keeps "network_type", "netarg_<name>").
        assert {"leco_network_type", "leco_netarg_conv_dim"} <= ids and "network_type" not in ids
        row = next(block for block in app.blocks.values() if getattr(block, "elem_id", None) == "leco_prompt_new")
        fields = tab.form.fields
        template = next(b for b in app.blocks.values() if getattr(b, "elem_id", None) == "leco_prompt_template")
        where = next(b for b in app.blocks.values() if getattr(b, "elem_id", None) == "leco_prompt_where")
        message = next(b for b in app.blocks.values() if getattr(b, "elem_id", None) == "leco_prompt_message")
        on_create = _click(app, row).fn
        data = {template: "erase", where: "", fields["output_dir"]: str(tmp_path / "out"),
                fields["output_name"]: "nogogh", tab.model_type: LECO.default_model_type}  # fmt: skip
        result = on_create(data)
        written = tmp_path / "out" / "nogogh_prompts.toml"
        assert result[fields["prompts_file"]] == str(written) and written.is_file()
        assert "nogogh_prompts.toml" in result[message] and "事前チェック" in result[message]
        saved = form_state.load_form(LECO)
        assert saved is not None and saved.values["prompts_file"] == str(written)
        again = on_create(data)  # the same place again: a message only, the field left as it is
        assert fields["prompts_file"] not in again and "すでにある" in again[message]
    finally:
        messages.set_language("en")


def test_the_preflight_report_names_the_prompt_file_and_its_settings() -> None:
    from gui.runs.progress_view import preflight_markdown

    report = {"ok": True, "leco": {"prompts_file": "/p/a_b.toml", "settings": 12}}
    assert "学習設定 12 件" in preflight_markdown(report, JA)
    assert "12 training settings" in preflight_markdown(report, EN) and "/p/a_b.toml" in preflight_markdown(report, EN)
