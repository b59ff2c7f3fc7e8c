"""Pages served with the form as it was left in their config (gui/page_values.py), not set by a load event."""

from __future__ import annotations

from pathlib import Path

import gradio as gr
import pytest
from gradio.exceptions import Error

from gui.app import build_app
from gui.page_values import PageValuesBlocks, with_values
from gui.training import form_state
from gui.training.lora_actions import TabValues
from gui.training.training_kinds import LORA


def props_by_elem_id(config: dict) -> dict[str, dict]:
    return {entry["props"]["elem_id"]: entry["props"] for entry in config["components"] if entry["props"].get("elem_id")}


def test_values_and_updates_go_into_a_copy_of_the_config() -> None:
    with PageValuesBlocks() as app:
        text = gr.Textbox(value="a", elem_id="text")
        number = gr.Number(value=1, elem_id="number")
        with gr.Column(elem_id="box") as box:
            choice = gr.Dropdown(choices=["x", "y"], value="x", elem_id="choice")
        untouched = gr.Textbox(value="same", elem_id="untouched")
    app.config = app.get_config_file()
    launch = app.config
    served = with_values(launch, {text: "b", number: 2.5, box: gr.Column(visible=False), untouched: gr.skip(),
                                  choice: gr.Dropdown(choices=["x", "y", ("z (imported)", "z")], value="z")})  # fmt: skip
    props = props_by_elem_id(served)
    assert props["text"]["value"] == "b" and props["number"]["value"] == 2.5
    assert props["box"]["visible"] is False
    assert props["choice"]["value"] == "z" and ["z (imported)", "z"] in [list(c) for c in props["choice"]["choices"]]
    assert props["untouched"]["value"] == "same"
    assert props_by_elem_id(launch)["text"]["value"] == "a"  # what launch built is left as it was
    # The page now holds a value the dropdown did not offer: the server takes it in later events too.
    assert choice.preprocess("z") == "z"
    with pytest.raises(Error):
        choice.preprocess("w")


def test_the_lora_page_is_served_with_the_saved_form(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(form_state.STATE_DIR_ENV, str(tmp_path / "state"))
    app = build_app("en", headless=True)
    app.config = app.get_config_file()
    fresh = props_by_elem_id(app.config)
    assert fresh["opt_learning_rate"]["value"] == "0.0001"  # nothing saved: the defaults
    # ... and only the fields of the first model type (SD 1.x): no FLUX.1 or SDXL parts, SD's own shown
    assert fresh["box_clip_l"]["visible"] is False and fresh["box_cache_text_encoder_outputs"]["visible"] is False
    assert fresh["box_v_parameterization"]["visible"] is True
    assert fresh["dreambooth_box_stop_text_encoder_training"]["visible"] is True
    assert fresh["dreambooth_box_learning_rate_te1"]["visible"] is False
    saved = TabValues(options={"learning_rate": 0.00042, "output_dir": "/o"}, model_type="sdxl", network_type="LoCon",
                      network_fields={"conv_dim": "4"}, kind=LORA)  # fmt: skip
    form_state.save_form(LORA, saved.form_data())
    props = props_by_elem_id(app.config)  # read again: the file as it is now
    assert props["opt_learning_rate"]["value"] == "0.00042" and props["opt_output_dir"]["value"] == "/o"
    assert props["model_type"]["value"] == "sdxl" and props["netarg_conv_dim"]["value"] == "4"
    assert props["opt_max_train_epochs"]["value"] == "10"  # not in the saved form: the tab's initial value
    assert props["finetune_opt_learning_rate"]["value"] == "1e-05"  # another page's form: its own
