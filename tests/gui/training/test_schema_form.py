"""Schema -> widgets: every LoRA option gets a widget of its kind, and values survive widget -> dict -> widget.
Gradio itself never judges a value (issue 14, item 17); each kind starts from its own values (item 19);
the essentials come first and help texts read as written (item 22)."""

from __future__ import annotations

from typing import Any

import gradio as gr
import pytest

from backend.options.schema import LORA_COMMANDS, Option, options_for
from gui.i18n import Translator
from gui.training.lora_actions import TabValues
from gui.training.lora_tab import SELECTOR_OPTIONS, build_lora_tab, tab_options
from gui.training.network_types import NETWORK_TYPES, compose, decompose
from gui.training.schema_form import build_form, from_widget, to_widget
from gui.training.training_kinds import FINETUNE, KINDS, LORA, TrainingKind

SAMPLES: dict[str, Any] = {
    "bool": True, "int": 7, "float": 0.25, "str": "hello", "path": "/data/my images",
    "int_or_float": 0.1, "str_list": ["conv_dim=8", "weird value=a b"], "float_list": [1e-4, 5e-5],
}  # fmt: skip


def expected_widget(option: Option) -> type:
    if option.kind == "bool":
        return gr.Checkbox
    if option.choices is not None:
        return gr.Dropdown
    return gr.Textbox  # numbers too: see test_gradio_never_refuses_a_value_of_a_training_form


def sample(option: Option) -> Any:
    if option.choices is not None:
        first = next(choice for choice in option.choices if choice is not None)
        return [first] if option.kind == "str_list" else first  # a multiselect holds a list
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
        name for name, option in options_for(command).items()
        if not option.cli_only and not option.secret and name not in SELECTOR_OPTIONS  # secrets: never in a form
    }
    assert shown <= tab.form.fields.keys()
    for name in shown:
        option = tab_options()[name]  # with the LoRA tab's own starting values
        assert isinstance(tab.form.fields[name], expected_widget(option)), name
        assert name in tab.form.fields[name].label  # the flag name is shown beside the label


@pytest.mark.parametrize("kind", [LORA, FINETUNE], ids=lambda kind: kind.key)
def test_gradio_never_refuses_a_value_of_a_training_form(kind: TrainingKind) -> None:
    """Gradio's own checks answer in English without naming the field and block every later button
    ("Value 0 is less than minimum value 1"), and an empty gr.Number turns into 0: numbers are text
    boxes (the schema validator judges them), and a value a dropdown does not offer is added to it
    rather than handed to Gradio."""
    with gr.Blocks():
        tab = build_lora_tab(Translator("ja"), browse=None, kind=kind)
    assert [c.elem_id for c in tab.inputs if isinstance(c, (gr.Number, gr.Slider))] == []
    numbers = [n for n, o in tab.form.options.items() if o.kind in ("int", "float", "int_or_float") and not o.choices]
    assert all(isinstance(tab.form.fields[name], gr.Textbox) for name in numbers)
    option = tab.form.options["train_batch_size"]
    assert from_widget(option, "0") == 0 and from_widget(option, "2.5") == 2.5  # for the validator to name
    assert from_widget(option, "") is None
    updates = tab.form.update({"save_model_as": "a_format_nobody_offers", "lr_scheduler": "nope"})
    for name in ("save_model_as", "lr_scheduler"):
        update = updates[tab.form.fields[name]]
        offered = [value for _, value in update.choices]
        assert update.value in offered
        tab.form.fields[name].choices = update.choices
        assert tab.form.fields[name].preprocess(update.value) == update.value  # no Gradio error later


def test_unreadable_text_is_reported_by_field_not_raised() -> None:
    options = tab_options()
    with gr.Blocks():
        form = build_form(options, Translator("en"))
    problems: list[tuple[str, str]] = []
    values = form.read({form.fields["network_args"]: 'a="b', form.fields["text_encoder_lr"]: "1e-4 x",
                        form.fields["learning_rate"]: 2.0}, problems)  # fmt: skip
    assert values == {"learning_rate": 2.0}
    assert {name for name, _ in problems} == {"network_args", "text_encoder_lr"}
    assert any("quotes" in error for _, error in problems)


def test_each_kind_starts_from_its_own_values() -> None:
    lora, finetune = tab_options(LORA), tab_options(FINETUNE)
    # kohya_ss's LoRA tab values, not sd-scripts' fine-tuning defaults (2e-6, 1,600 steps).
    assert (lora["learning_rate"].default, lora["lr_scheduler"].default) == (1e-4, "cosine")
    assert (lora["max_train_epochs"].default, lora["max_train_steps"].default) == (10, None)
    assert (lora["network_dim"].default, lora["network_alpha"].default) == (8, 1.0)
    assert finetune["learning_rate"].default == 1e-5
    # One caption default in every GUI form (the command line keeps sd-scripts' .caption).
    assert lora["caption_extension"].default == finetune["caption_extension"].default == ".txt"
    assert options_for("train_network")["caption_extension"].default == ".caption"
    assert options_for("train_network")["learning_rate"].default == 2e-6
    with gr.Blocks():
        tab = build_lora_tab(Translator("en"), browse=None)
    assert tab.form.fields["learning_rate"].value == "0.0001"
    assert tab.form.fields["max_train_steps"].value == ""


def test_an_emptied_field_stays_empty_where_the_form_starts_with_a_value() -> None:
    """Emptying max_train_epochs (to train by steps) must survive a preset, the saved form and a reload."""
    options = tab_options()
    with gr.Blocks():
        form = build_form(options, Translator("en"))
    values = form.read({form.fields["max_train_epochs"]: "", form.fields["max_train_steps"]: "",
                        form.fields["seed"]: ""})  # fmt: skip
    assert values == {"max_train_epochs": None}  # steps and seed start empty: empty there is no choice
    assert form.update(values)[form.fields["max_train_epochs"]] == ""
    assert form.update({})[form.fields["max_train_epochs"]] == "10"
    tab = TabValues(options=values)
    assert "max_train_epochs" not in tab.run_options() or tab.run_options()["max_train_epochs"] is None
    from gui.training.presets import parse_preset

    assert parse_preset(tab.form_data()).values["max_train_epochs"] is None


def test_every_gui_form_starts_with_txt_captions() -> None:
    from gui.tools.tool_specs import ALL_TOOLS

    defaults = {spec.name: arg.default for spec in ALL_TOOLS for arg in spec.args if arg.name == "caption_extension"}
    assert len(defaults) >= 6 and set(defaults.values()) == {".txt"}, defaults


@pytest.mark.parametrize("kind", [LORA, FINETUNE], ids=lambda kind: kind.key)
def test_essentials_come_first_and_hold_every_required_option(kind: TrainingKind) -> None:
    options = tab_options(kind)
    required = {name for name, option in options.items() if option.required}
    assert required and required <= set(kind.essentials)
    assert set(kind.essentials) <= options.keys()
    with gr.Blocks():
        tab = build_lora_tab(Translator("en"), browse=None, kind=kind)
    assert list(tab.form.accordions)[0] == "essentials"
    assert tab.form.accordions["essentials"].open is True
    assert tab.form.accordions["essentials"].elem_id == kind.elem("group_essentials")


def element_ids(block: Any) -> list[str]:
    """The element ids inside `block`, in page order."""
    found = []
    for child in getattr(block, "children", []):
        if getattr(child, "elem_id", None):
            found.append(child.elem_id)
        found += element_ids(child)
    return found


@pytest.mark.parametrize("kind", [LORA, FINETUNE], ids=lambda kind: kind.key)
def test_essentials_read_model_data_output_network_basics(kind: TrainingKind) -> None:
    with gr.Blocks():
        tab = build_lora_tab(Translator("en"), browse=None, kind=kind)
    ids = element_ids(tab.form.accordions["essentials"])
    order = ["model_type", "opt_pretrained_model_name_or_path", "opt_train_data_dir", "opt_output_dir"]
    if kind.networks:  # the network type's own fields under its shape, after every path (issue 14, part 2)
        order += ["network_type", "opt_network_dim", "opt_network_alpha", "netarg_rank_dropout"]
    order += ["opt_max_train_epochs", "opt_learning_rate"]
    positions = [ids.index(kind.elem(name) if not name.startswith(("network_type", "netarg_")) else name) for name in order]
    assert positions == sorted(positions), [ids[i] for i in sorted(positions)]
    assert [name for name in kind.essentials if kind.elem(f"opt_{name}") not in ids] == []


@pytest.mark.parametrize("language", ["en", "ja"])
def test_search_says_when_a_field_belongs_to_another_model_or_network_type(language: str) -> None:
    from gui.training.option_search import hidden_note

    t = Translator(language)
    # clip_skip: SD 1.x/2.x only; hidden under SDXL, where the search used to open a section showing nothing.
    note = hidden_note("group_model opt_clip_skip", "sdxl", "Standard", LORA, t)
    assert t.option_label("clip_skip") in note and "SD 1.x, SD 2.x" in note and "SDXL" not in note
    assert note == t.t("ui.search_other_model", option=f"{t.option_label('clip_skip')} (clip_skip)", types="SD 1.x, SD 2.x")
    assert hidden_note("group_model opt_clip_skip", "sd2", "Standard", LORA, t) == ""
    assert hidden_note("group_basic opt_learning_rate", "sdxl", "Standard", LORA, t) == ""  # every model type
    assert "SD 1.x" in hidden_note("finetune_group_model finetune_opt_clip_skip", "sdxl", None, FINETUNE, t)
    # The network type's own fields likewise: LoKr's factor under Standard.
    note = hidden_note("group_essentials netarg_factor", "sd1", "Standard", LORA, t)
    assert "(factor)" in note and "LyCORIS/LoKr" in note and "LoHa" not in note
    assert hidden_note("group_essentials netarg_factor", "sdxl", "LyCORIS/LoKr", LORA, t) == ""
    assert hidden_note(None, "sd1", "Standard", LORA, t) == ""


@pytest.mark.parametrize("language", ["en", "ja"])
def test_search_lists_every_field_by_label_and_flag(language: str) -> None:
    from gui.training.option_search import search_entries

    t = Translator(language)
    options = tab_options()
    entries = dict((value.split(" ")[1], label) for label, value in search_entries(options, LORA.essentials, t))
    assert set(entries) == {f"opt_{name}" for name in options}
    assert "(learning_rate)" in entries["opt_learning_rate"]
    if language == "ja":  # both labels, so either finds it
        assert "学習率" in entries["opt_learning_rate"] and "Learning rate" in entries["opt_learning_rate"]
    with gr.Blocks():
        tab = build_lora_tab(t, browse=None)
    groups = {accordion.elem_id for accordion in tab.form.accordions.values()}
    for _, value in search_entries(options, LORA.essentials, t):
        group, field = value.split(" ")
        assert group in groups and field.removeprefix("opt_") in tab.form.fields


def test_help_texts_render_as_written() -> None:
    """Gradio renders `info` as a Markdown subset that ate '*' in formulas; every help text of every
    form shows exactly its characters (look-alikes for the markup ones)."""
    import re

    from gui.i18n import load_catalogue
    from gui.plain_text import ASTERISK, BACKTICK, JOINER, LOW_LINE, plain_info, render_like_gradio

    back = {ASTERISK: "*", BACKTICK: "`", LOW_LINE: "_", JOINER: ""}
    assert "<em>" in render_like_gradio("loss*(SNR+1)/SNR*value")  # what went wrong before
    for language in ("en", "ja"):
        for key, text in load_catalogue(language).items():
            if not (key.endswith((".help", "_info")) or ".toolhelp." in key or ".accelerate_info." in key):
                continue
            shown = render_like_gradio(plain_info(text))
            assert not re.search(r"<(em|strong|code|a)\b", shown), key
            visible = shown.replace("&lt;", "<").replace("&gt;", ">").replace("&quot;", '"').replace("&amp;", "&")
            assert "".join(back.get(c, c) for c in visible) == text, key


@pytest.mark.parametrize("name", sorted(tab_options()))
def test_value_round_trips_through_its_widget(name: str) -> None:
    option = tab_options()[name]
    value = sample(option)
    assert from_widget(option, to_widget(option, value)) == value
    assert from_widget(option, to_widget(option, None)) in (None, False)  # unset stays unset


@pytest.mark.parametrize("kind", list(KINDS.values()), ids=lambda kind: kind.key)
def test_form_reads_back_what_it_was_given(kind: TrainingKind) -> None:
    options = tab_options(kind)
    values = {name: sample(option) for name, option in options.items()}
    with gr.Blocks():
        form = build_form(options, Translator("en"))
    assert form.read(form.update(values)) == values
    assert form.read(form.update({})) == {  # list defaults (the video options') read back as lists
        name: list(option.default) if isinstance(option.default, tuple) else option.default
        for name, option in options.items()
        if option.default is not None and option.default is not False and option.default != "" and option.default != ()
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
    from gui.training.training_kinds import FINETUNE, LORA

    assert tab_options(LORA)["save_model_as"].choices == LORA_FORMATS
    assert tab_options(FINETUNE)["save_model_as"].choices == SINGLE_FILE_FORMATS + FOLDER_FORMATS
    with gr.Blocks():
        form = build_form({"save_model_as": tab_options(LORA)["save_model_as"]}, Translator("en"))
    offered = [value for _, value in form.fields["save_model_as"].choices]
    assert offered == list(LORA_FORMATS)
