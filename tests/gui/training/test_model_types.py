"""The training tabs' model types come from the model families (backend/families), not from gui/."""

from __future__ import annotations

from dataclasses import replace

import gradio as gr
import pytest

import backend.families
from backend.families import names
from backend.families.declaration import FamilyDeclaration, PredictionFacts
from gui import i18n
from gui.i18n import Translator
from gui.training.lora_actions import TabValues
from gui.training.lora_tab import build_lora_tab
from gui.training.model_types import kind_model_types, model_type_choices, model_type_label
from gui.training.presets import parse_preset
from gui.training.training_kinds import FINETUNE, LORA


def image_names() -> tuple[str, ...]:
    """The model types the LoRA and fine-tune tabs offer: video families train in a tab of their own."""
    return tuple(d.name for d in backend.families.DECLARATIONS if not d.is_video)


# A family that trains LoRAs only and implies an option SD 1.x/2.x and SDXL leave alone.
FAKE = FamilyDeclaration(
    name="fakefamily",
    label="Fake 1.0",
    implementation="tests.gui.training.no_such_module",
    commands={"lora": "train_network"},
    epsilon=PredictionFacts("fake_v1", "fake-v1", 512, "fake-v1"),
    implied_options={"v_parameterization": True},
)


@pytest.mark.parametrize("kind", [LORA, FINETUNE], ids=lambda kind: kind.key)
def test_the_selector_offers_the_declared_families_in_order(kind) -> None:  # noqa: ANN001
    with gr.Blocks():
        tab = build_lora_tab(Translator("en"), browse=None, kind=kind)
    assert [name for _, name in tab.model_type.choices] == list(image_names())
    assert tab.model_type.value == names()[0]
    assert kind.commands == {d.name: d.commands[kind.key] for d in backend.families.DECLARATIONS if not d.is_video}


def test_a_new_declaration_appears_with_its_command_label_and_implied_options(monkeypatch: pytest.MonkeyPatch) -> None:
    declared = image_names()
    monkeypatch.setattr(backend.families, "DECLARATIONS", (*backend.families.DECLARATIONS, FAKE))
    assert [m.name for m in kind_model_types("lora")] == [*declared, "fakefamily"]
    assert "fakefamily" not in [m.name for m in kind_model_types("finetune")]  # it has no fine-tuning command
    kind = replace(LORA, model_types=kind_model_types("lora"))
    assert kind.commands["fakefamily"] == "train_network"
    # No catalogue key: the family's own label.
    assert model_type_choices(Translator("ja"), kind.model_types)[-1] == ("Fake 1.0", "fakefamily")
    with gr.Blocks():
        tab = build_lora_tab(Translator("en"), browse=None, kind=kind)
    assert tab.model_type.choices[-1] == ("Fake 1.0", "fakefamily")
    # The run gets what the type implies; a preset stores the type, not the option.
    chosen = TabValues(options={"learning_rate": 0.1}, model_type="fakefamily", kind=kind)
    assert chosen.command == "train_network" and chosen.run_options()["v_parameterization"] is True
    assert "v_parameterization" not in chosen.preset_options() and chosen.form_data()["model_type"] == "fakefamily"
    loaded = parse_preset({"v_parameterization": True, "learning_rate": 0.1}, kind)
    assert (loaded.gui, loaded.values, loaded.problems) == ({"model_type": "fakefamily"}, {"learning_rate": 0.1}, [])


def test_every_declared_family_is_named_in_both_catalogues() -> None:
    for language in ("en", "ja"):
        catalogue = i18n.load_catalogue(language)
        for name in names():
            assert catalogue.get(f"ui.model_type.{name}", "").strip(), f"{language}: no label for model type {name}"
    t = Translator("ja")
    assert [model_type_label(t, m) for m in LORA.model_types] == [
        t.t(f"ui.model_type.{name}") for name in image_names()]


@pytest.mark.parametrize("kind", [LORA, FINETUNE], ids=lambda kind: kind.key)
def test_options_of_other_model_types_on_the_same_command_are_hidden(kind) -> None:  # noqa: ANN001
    """Chroma trains with FLUX.1's commands but has no CLIP-L and no guidance input: those fields hide for it."""
    chroma = kind.model_type("chroma")
    assert set(chroma.unused_options) == {"clip_l", "guidance_scale"} and not kind.model_type("flux_dev").unused_options
    with gr.Blocks():
        tab = build_lora_tab(Translator("en"), browse=None, kind=kind)
    boxes = {box: name for name, box in tab.form.boxes.items()}
    for model_type, hidden in (("chroma", True), ("flux_dev", False)):
        shown = {boxes[box]: update.visible for box, update in tab.model_visibility(model_type).items()}
        assert shown["clip_l"] is not hidden and shown["guidance_scale"] is not hidden
        assert shown["t5xxl"] and shown["apply_t5_attn_mask"]
