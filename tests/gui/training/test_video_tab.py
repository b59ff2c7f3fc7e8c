"""The Video training tab (issue 18): finetrainers' `train_video` as a third training kind, on named values
and the tab's widgets (no browser; tests/gui/test_browser_video.py trains from the page)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import gradio as gr
import pytest
import toml

import backend.families
from backend.options.schema import options_for
from gui.i18n import Translator
from gui.runs.sample_videos import servable_copy, video_samples
from gui.training import lora_actions
from gui.training.lora_actions import TabValues
from gui.training.lora_tab import build_lora_tab
from gui.training.presets import load_preset
from gui.training.progress_panel import _video_update
from gui.training.training_kinds import KINDS, SELECTOR_OPTIONS, VIDEO, kind_options
from tests.data.video.make_clips import write_clip

T = Translator("en")
VIDEO_FAMILIES = [d for d in backend.families.DECLARATIONS if d.is_video and "video" in d.commands]


def test_the_video_kind_offers_the_video_families_and_sets_model_name() -> None:
    assert KINDS["video"] is VIDEO and VIDEO.id_prefix == "video_" and not VIDEO.networks
    assert [m.name for m in VIDEO.model_types] == [d.name for d in VIDEO_FAMILIES]
    assert set(VIDEO.commands.values()) == {"train_video"}
    # The selector stands for --model_name: not a field, and each type implies its own finetrainers name.
    assert "model_name" in SELECTOR_OPTIONS and "model_name" not in kind_options(VIDEO)
    for family in VIDEO_FAMILIES:
        assert VIDEO.model_type(family.name).distinguishing_options() == {"model_name": family.video_model_name}
        assert VIDEO.model_type_of("train_video", {"model_name": family.video_model_name}) == family.name
        assert VIDEO.model_type_implied_by({"model_name": family.video_model_name}) == family.name


def test_the_form_starts_as_a_lora_run_and_shows_the_essentials() -> None:
    shown = kind_options(VIDEO)
    assert set(VIDEO.essentials) <= set(shown)
    # Every option the trainer requires is an essential field or the model type selector.
    required = {name for name, option in options_for("train_video").items() if option.required}
    assert required <= {*VIDEO.essentials, "model_name"}
    assert shown["training_type"].default == "lora" and shown["rank"].default == 32 and shown["lr"].default == 5e-5
    assert {"data_root", "dataset_config", "video_resolution_buckets", "validation_prompts"} <= set(VIDEO.essentials)
    with gr.Blocks():
        tab = build_lora_tab(T, browse=None, kind=VIDEO)
    assert tab.network_type is None and tab.model_type.elem_id == "video_model_type"
    assert tab.form.fields["training_type"].elem_id == "video_opt_training_type"
    assert [name for _, name in tab.model_type.choices] == [d.name for d in VIDEO_FAMILIES]


def test_print_command_launches_train_video_with_the_chosen_model_name(tmp_path: Path) -> None:
    tab = TabValues(options={"pretrained_model_name_or_path": str(tmp_path / "wan"), "output_dir": str(tmp_path / "out"),
                             "data_root": str(tmp_path / "clips"), "training_type": "lora", "rank": 8,
                             "learning_rate": 1e-4},  # another kind's option is dropped, not refused
                    model_type="wan", kind=VIDEO)  # fmt: skip
    printed = lora_actions.print_command(tab, T)
    assert "accelerate.commands.launch" in printed.bash, printed.message
    assert re.search(r"-m backend\.train_video --config_file \S+\.toml", printed.bash)
    run = toml.loads(printed.toml)
    flat = {key: value for section in run.values() for key, value in section.items()}
    assert flat["model_name"] == "wan" and flat["rank"] == 8 and "learning_rate" not in flat
    # The preset keeps the model type, not the option it implies.
    assert "model_name" not in tab.preset_options() and tab.gui_keys()["model_type"] == "wan"


def test_a_run_without_its_required_values_is_refused_naming_them(tmp_path: Path) -> None:
    printed = lora_actions.print_command(TabValues(options={"output_dir": str(tmp_path)}, kind=VIDEO), T)
    assert printed.bash == "" and "pretrained_model_name_or_path" in printed.message


def test_preflight_runs_the_video_command_and_passes_for_the_tiny_wan(tiny, tmp_path: Path) -> None:
    write_clip(tmp_path / "clips" / "clip.mp4", frames=9, size=(64, 64), fps=8)
    (tmp_path / "clips" / "clip.txt").write_text("a red square", encoding="utf-8")
    options = {"pretrained_model_name_or_path": str(tiny.get("wan2.1-t2v-1.3b").path), "output_dir": str(tmp_path / "o"),
               "data_root": str(tmp_path / "clips"), "video_resolution_buckets": ["5x64x64"], "training_type": "lora"}
    report = lora_actions.preflight(TabValues(options=options, model_type="wan", kind=VIDEO), T)
    assert report.startswith(f"### {T.t('ui.preflight_ok')}"), report
    # The other model type for the same folder: the video preflight says what the folder is.
    report = lora_actions.preflight(TabValues(options=options, model_type="ltx_video", kind=VIDEO), T)
    assert not report.startswith(f"### {T.t('ui.preflight_ok')}") and "ltx_video" in report, report


@pytest.mark.parametrize("path", sorted(VIDEO.shipped_presets.glob("*.json")), ids=lambda p: p.stem)
def test_shipped_video_presets_load_cleanly(path: Path) -> None:
    loaded = load_preset(path, VIDEO)
    assert loaded.unknown == [] and loaded.problems == []
    assert loaded.gui["model_type"] in VIDEO.model_type_names and "network_type" not in loaded.gui
    assert loaded.values["layerwise_upcasting_modules"] == ["transformer"]
    assert loaded.values["gradient_checkpointing"] is True and loaded.values["enable_precomputation"] is True
    assert not [name for name in loaded.values if options_for("train_video")[name].kind == "path"]


def test_there_are_presets_per_family_and_card_size() -> None:
    stems = {path.stem for path in VIDEO.shipped_presets.glob("*.json")}
    assert stems >= {"ltx_video_lora_16gb", "ltx_video_lora_24gb", "wan_lora_12gb", "wan_lora_24gb"}


def test_the_newest_validation_video_is_shown_from_a_servable_copy(tmp_path: Path, monkeypatch) -> None:  # noqa: ANN001
    monkeypatch.setattr(tempfile_module(), "tempdir", str(tmp_path / "tmp"))
    first, second = tmp_path / "out" / "a.mp4", tmp_path / "out" / "b.mp4"
    write_clip(first, frames=5, size=(32, 32), fps=8)
    write_clip(second, frames=5, size=(32, 32), fps=8, seed=2)
    snapshot = {"samples": [{"path": str(first), "step": 2}, {"path": str(tmp_path / "x.png"), "step": 3},
                            {"path": str(second), "step": 4}]}  # fmt: skip
    assert [s["step"] for s in video_samples(snapshot)] == [2, 4]
    update = _video_update(snapshot, T)
    assert update.label == "Validation video (step 4)"
    copied = Path(update.value["path"])
    assert copied.read_bytes() == second.read_bytes()
    copy = servable_copy(str(second))
    assert copy is not None and Path(copy).is_relative_to(tmp_path / "tmp")  # a folder Gradio may serve
    assert servable_copy(str(second)) == copy  # one copy per file version
    assert servable_copy(str(tmp_path / "missing.mp4")) is None  # not written yet: a later tick tries again
    assert _video_update({"samples": [{"path": str(tmp_path / "missing.mp4"), "step": 1}]}, T) is None
    assert _video_update({"samples": []}, T).value is None


def tempfile_module():  # noqa: ANN201
    import tempfile

    return tempfile


def test_the_tab_texts_exist() -> None:
    catalogue = json.loads((Path(__file__).parents[3] / "localizations" / "en.json").read_text("utf-8"))
    for key in ("ui.tab.video", "ui.model_type_info.video", "ui.validation_video", "ui.validation_video_step"):
        assert catalogue.get(key), key


def test_a_list_option_with_fixed_items_is_a_multiselect() -> None:
    """finetrainers' --layerwise_upcasting_modules (items: transformer): not a text box, never the text "()"."""
    from gui.training.schema_form import from_widget, to_widget

    option = kind_options(VIDEO)["layerwise_upcasting_modules"]
    assert to_widget(option, ()) == [] and to_widget(option, ("transformer",)) == ["transformer"]
    assert from_widget(option, []) is None and from_widget(option, None) is None
    assert from_widget(option, ["transformer"]) == ["transformer"]
    with gr.Blocks():
        tab = build_lora_tab(T, browse=None, kind=VIDEO)
    widget = tab.form.fields["layerwise_upcasting_modules"]
    assert isinstance(widget, gr.Dropdown) and widget.multiselect and widget.value == []
    # Read back unchanged, the field is unset; a preset's list fills it.
    assert "layerwise_upcasting_modules" not in {k for k, v in tab.form.read({widget: []}).items() if v is not None}
    assert tab.form.update({"layerwise_upcasting_modules": ["transformer"]})[widget] == ["transformer"]


def test_an_image_command_on_a_video_model_names_the_model_name_to_give(tiny) -> None:  # noqa: ANN001
    from backend.models.detect import check_model_flags, detect_model
    from backend.models.errors import ModelMismatchError

    info = detect_model(tiny.get("wan2.1-t2v-1.3b").path)
    with pytest.raises(ModelMismatchError, match=r"\(train_video\) with --model_name wan\.$"):
        check_model_flags(info, command="train_network", v2=False, v_parameterization=False)
