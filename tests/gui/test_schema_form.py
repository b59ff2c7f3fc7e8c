"""Schema -> widgets: every LoRA option gets a widget of its kind, and values survive widget -> dict -> widget."""

from __future__ import annotations

from typing import Any

import gradio as gr
import pytest

from backend.options.schema import LORA_COMMANDS, Option, options_for
from gui.i18n import Translator
from gui.lora_actions import TabValues
from gui.lora_tab import SELECTOR_OPTIONS, build_lora_tab, tab_options
from gui.network_types import NETWORK_TYPES, compose, decompose
from gui.schema_form import build_form, from_widget, to_widget

SAMPLES: dict[str, Any] = {
    "bool": True, "int": 7, "float": 0.25, "str": "hello", "path": "/data/my images",
    "int_or_float": 0.1, "str_list": ["conv_dim=8", "weird value=a b"], "float_list": [1e-4, 5e-5],
}  # fmt: skip


def expected_widget(option: Option) -> type:
    if option.kind == "bool":
        return gr.Checkbox
    if option.choices is not None:
        return gr.Dropdown
    if option.kind in ("int", "float", "int_or_float"):
        return gr.Textbox if option.default is None else gr.Number
    return gr.Textbox


def sample(option: Option) -> Any:
    if option.choices is not None:
        return next(choice for choice in option.choices if choice is not None)
    value = SAMPLES[option.kind]
    if option.kind in ("int", "float") and option.minimum is not None:
        value = max(value, option.minimum)
    if option.kind in ("int", "float") and option.maximum is not None:
        value = min(value, option.maximum)
    return int(value) if option.kind == "int" else value


@pytest.mark.parametrize("command", LORA_COMMANDS)
def test_every_option_gets_a_widget_of_its_kind(command: str) -> None:
    with gr.Blocks():
        tab = build_lora_tab(Translator("en"), browse=None)
    shown = {
        name for name, option in options_for(command).items() if not option.cli_only and name not in SELECTOR_OPTIONS
    }
    assert shown <= tab.form.fields.keys()
    for name in shown:
        option = options_for(command)[name]
        assert isinstance(tab.form.fields[name], expected_widget(option)), name
        assert name in tab.form.fields[name].label  # the flag name is shown beside the label
        if option.choices is None and option.kind in ("int", "float") and option.default is not None:
            assert tab.form.fields[name].minimum == option.minimum


@pytest.mark.parametrize("name", sorted(tab_options()))
def test_value_round_trips_through_its_widget(name: str) -> None:
    option = tab_options()[name]
    value = sample(option)
    assert from_widget(option, to_widget(option, value)) == value
    assert from_widget(option, to_widget(option, None)) in (None, False)  # unset stays unset


def test_form_reads_back_what_it_was_given() -> None:
    options = tab_options()
    values = {name: sample(option) for name, option in options.items()}
    with gr.Blocks():
        form = build_form(options, Translator("en"))
    assert form.read(form.update(values)) == values
    assert form.read(form.update({})) == {
        name: option.default for name, option in options.items() if option.default is not None and option.default is not False and option.default != ""
    }


def test_bad_number_text_is_left_for_the_validator() -> None:
    assert from_widget(options_for("train_network")["seed"], " 12 ") == 12
    assert from_widget(options_for("train_network")["seed"], "abc") == "abc"


def test_japanese_form_uses_translated_labels_and_groups() -> None:
    t = Translator("ja")
    with gr.Blocks():
        tab = build_lora_tab(t, browse=None)
    assert tab.form.accordions["network"].label == t.group_label("network")
    assert tab.form.fields["learning_rate"].label == "学習率 (learning_rate)"
    assert t.missing == set()


@pytest.mark.parametrize("network_type", sorted(NETWORK_TYPES))
def test_network_types_compose_and_decompose(network_type: str) -> None:
    kind = NETWORK_TYPES[network_type]
    fields = {name: ("full" if name == "preset" else True if name.startswith(("use_", "dora", "decompose", "full_m", "bypass", "rescaled", "train_")) else 4)
              for name in kind.args}  # fmt: skip
    module, args = compose(network_type, fields, ["loraplus_lr_ratio=16"])
    assert module == kind.module
    assert args[-1] == "loraplus_lr_ratio=16"
    split = decompose(module, args, None)
    assert split.network_type == network_type or (network_type == "Standard" and split.network_type == "Standard")
    assert split.fields == fields
    assert split.extra == ["loraplus_lr_ratio=16"]


def test_network_selector_sets_module_and_args() -> None:
    tab = TabValues(options={"network_args": ["loraplus_lr_ratio=4"]}, network_type="LyCORIS/LoKr",
                    network_fields={"factor": "8", "conv_dim": "", "use_tucker": False})  # fmt: skip
    values = tab.run_options()
    assert values["network_module"] == "lycoris.kohya"
    assert values["network_args"] == ["algo=lokr", "factor=8", "loraplus_lr_ratio=4"]
    assert TabValues(options={}, model_type="sd2").run_options()["v2"] is True
    assert "clip_skip" not in TabValues(options={"clip_skip": 2}, model_type="sdxl").run_options()


def test_each_tab_offers_only_the_save_formats_its_trainer_accepts() -> None:
    from backend.training.finetune_files import FOLDER_FORMATS, SINGLE_FILE_FORMATS
    from backend.training.preflight import LORA_FORMATS
    from gui.training_kinds import FINETUNE, LORA

    assert tab_options(LORA)["save_model_as"].choices == LORA_FORMATS
    assert tab_options(FINETUNE)["save_model_as"].choices == SINGLE_FILE_FORMATS + FOLDER_FORMATS
    with gr.Blocks():
        form = build_form({"save_model_as": tab_options(LORA)["save_model_as"]}, Translator("en"))
    offered = [value for _, value in form.fields["save_model_as"].choices]
    assert offered == list(LORA_FORMATS)
