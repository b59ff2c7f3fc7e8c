"""Importing kohya_ss Textual Inversion configs: train_textual_inversion for SD 1.x/2.x and
sdxl_train_textual_inversion for SDXL, as kohya_ss's Textual Inversion tab starts them; its template dropdown as
use_object_template / use_style_template, every key ruled, each kind on its own page.

Fixtures: v26 Textual Inversion saves (all 129 keys of textual_inversion_gui.save_configuration but file_path,
sorted as SaveConfigFile writes them) and kohya_ss's own test/config/TI-AdamW8bit-SDXL.json.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from backend.messages import set_language
from backend.options import parse_args
from backend.options.schema import all_options
from backend.options.sd_scripts_flags import COMMAND_GROUPS, sd_scripts_flags
from gui.i18n import Translator
from gui.kohya_import import convert
from gui.kohya_import.importer import KohyaImportError, convert_kohya_config, main, write_run_files
from gui.training.lora_actions import import_kohya
from gui.training.training_kinds import TEXTUAL_INVERSION
from tests.gui.kohya_import.test_kohya_import import ruled_keys

CONFIGS = Path(__file__).parents[1] / "data" / "kohya_configs"
# (name, number of keys, command)
TI_CONFIGS = [
    ("sd15_textual_inversion", 129, "train_textual_inversion"),
    ("sdxl_textual_inversion", 129, "sdxl_train_textual_inversion"),
    ("kohya_ss_TI-AdamW8bit-SDXL", 123, "sdxl_train_textual_inversion"),
]
# The DreamBooth keys the Textual Inversion tab saves too (textual_inversion_steps.py rules them).
DREAMBOOTH_KEYS = {"no_token_padding", "stop_text_encoder_training"}


def load(name: str) -> dict:
    return json.loads((CONFIGS / f"{name}.json").read_text(encoding="utf-8"))


@pytest.mark.parametrize(("name", "keys", "command"), TI_CONFIGS)
def test_every_key_has_a_rule_and_the_toml_passes_the_trainers_validation(
    name: str, keys: int, command: str, tmp_path: Path
) -> None:
    data = load(name)
    assert len(data) == keys and list(data) == sorted(data)  # as kohya_ss saves them
    result = convert_kohya_config(data)
    assert result.command == command and result.network_type == ""
    ruled = ruled_keys(command) | DREAMBOOTH_KEYS | set(all_options()) | {
        flag for script in COMMAND_GROUPS for flag in sd_scripts_flags(script)
    }  # (another command's option, ours or sd-scripts': reported as such)
    assert set(data) - ruled == set()
    assert [e.key for e in result.unmapped if e.reason == "unknown"] == []
    written = write_run_files(result, tmp_path / "run.toml")
    args = parse_args(command, ["--config_file", str(written[-1])])
    for option, value in result.options.items():
        if option != "sample_prompts":
            assert getattr(args, option) == value, option


def test_an_sd15_config_keeps_its_word_and_trains_on_captions() -> None:
    result = convert_kohya_config(load("sd15_textual_inversion"))
    options = result.options
    assert (options["token_string"], options["init_word"], options["num_vectors_per_token"]) == ("sksdog", "dog", 4)
    assert options["learning_rate"] == 0.005 and options["output_name"] == "sksdog"
    assert not {"use_object_template", "use_style_template", "weights"} & set(options)  # template "caption"
    assert {e.key for e in result.unmapped} == set()  # the form's DreamBooth fields at 0/False: dropped silently


def test_an_sdxl_config_goes_on_from_its_embedding_with_the_style_templates() -> None:
    result = convert_kohya_config(load("sdxl_textual_inversion"))
    options = result.options
    assert options["init_word"] == "*"  # the form's default, passed as sd-scripts got it
    assert options["weights"] == "/data/emb/wtrclr_v1.safetensors" and options["num_vectors_per_token"] == 8
    assert options["use_style_template"] is True and "use_object_template" not in options
    assert options["no_half_vae"] is True and options["lowram"] is True  # sdxl_no_half_vae; additional_parameters
    assert any('template = "style template" -> use_style_template' in w for w in result.warnings)
    report = {e.key: (e.value, e.reason, e.detail) for e in result.unmapped}
    assert report["no_token_padding"] == (True, "not_used", "kohya_ss passes it, but sd-scripts' "
                                          "sdxl_train_textual_inversion does not define it (train_db's option), "
                                          "so it changed nothing")  # fmt: skip


def test_the_template_dropdown_and_the_dreambooth_fields() -> None:
    data = {**load("sd15_textual_inversion"), "template": "object template", "stop_text_encoder_training": 30,
            "init_word": ""}  # fmt: skip
    result = convert_kohya_config(data)
    assert result.options["use_object_template"] is True and "init_word" not in result.options
    assert any("init_word is empty (kohya_ss refuses to start without one)" in w for w in result.warnings)
    report = {e.key: (e.value, e.reason, e.detail) for e in result.unmapped}
    assert report["stop_text_encoder_training"] == (
        30, "not_used", "kohya_ss does not pass it to train_textual_inversion")
    odd = convert_kohya_config({**data, "template": "subject"})
    assert {e.key: e.reason for e in odd.unmapped}["template"] == "invalid"
    assert not {"use_object_template", "use_style_template"} & set(odd.options)


def test_each_kind_imports_on_its_own_page(monkeypatch: pytest.MonkeyPatch) -> None:
    ti = load("sd15_textual_inversion")
    for page in ("lora", "dreambooth"):
        with pytest.raises(KohyaImportError, match="Textual Inversion config: import it on the Textual Inversion page"):
            convert_kohya_config(ti, page)
    with pytest.raises(KohyaImportError, match="a kohya_ss DreamBooth config: import it on the DreamBooth page"):
        convert_kohya_config(load("sd15_dreambooth"), "textual_inversion")
    monkeypatch.setattr(convert, "IMPORTED_KINDS", ("lora", "dreambooth"))  # a kind that does not import (yet)
    with pytest.raises(KohyaImportError, match="Textual Inversion config: only LoRA, DreamBooth configs import so far"):
        convert_kohya_config(ti)


def test_the_textual_inversion_page_imports_into_its_form(tmp_path: Path) -> None:
    config = CONFIGS / "sdxl_textual_inversion.json"
    imported = import_kohya(str(config), Translator("en"), tmp_path, kind=TEXTUAL_INVERSION)
    assert imported.tab is not None, imported.message
    assert imported.tab.model_type == "sdxl" and imported.tab.command == "sdxl_train_textual_inversion"
    run = imported.tab.run_options()
    assert (run["token_string"], run["num_vectors_per_token"], run["use_style_template"]) == ("wtrclr", 8, True)
    assert Path(run["sample_prompts"]).read_text(encoding="utf-8").startswith("a watercolor painting")
    assert "Imported" in imported.message and "no_token_padding" in imported.message
    assert Translator("ja").t("ui.kohya_config_info_textual_inversion").startswith("kohya_ss GUI が保存した")
    set_language("ja")  # as build_app sets it for the GUI's language
    try:
        refused = import_kohya(str(CONFIGS / "sd15_dreambooth.json"), Translator("ja"), tmp_path,
                               kind=TEXTUAL_INVERSION)  # fmt: skip
    finally:
        set_language(None)
    assert refused.tab is None and "DreamBooth のページでインポートしてください" in refused.message


def test_the_cli_writes_a_run_toml_the_trainer_takes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "ti.toml"
    assert main([str(CONFIGS / "sd15_textual_inversion.json"), "--toml", str(out)]) == 0
    assert f"-m backend.train_textual_inversion --config_file {out}" in capsys.readouterr().out
    args = parse_args("train_textual_inversion", ["--config_file", str(out)])
    assert (args.token_string, args.init_word, args.num_vectors_per_token) == ("sksdog", "dog", 4)
    assert args.sample_prompts == str(tmp_path / "ti_prompts.txt")
