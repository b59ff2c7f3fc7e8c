"""Importing kohya_ss DreamBooth configs: train_db for SD 1.x/2.x and sdxl_train for SDXL, as kohya_ss's DreamBooth
tab starts them, the text encoder settings by model, every key ruled, each kind on its own page.

Fixtures: v26 DreamBooth saves (all 176 keys of dreambooth_gui.save_configuration but file_path).
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
from gui.kohya_import.importer import KohyaImportError, convert_kohya_config, main, write_run_files
from gui.training.lora_actions import import_kohya
from gui.training.training_kinds import DREAMBOOTH
from tests.gui.kohya_import.test_kohya_import import ruled_keys

CONFIGS = Path(__file__).parents[1] / "data" / "kohya_configs"
DREAMBOOTH_CONFIGS = ["sd15_dreambooth", "sdxl_dreambooth"]
TE_KEYS = {"learning_rate_te", "learning_rate_te1", "learning_rate_te2", "no_token_padding",
           "stop_text_encoder_training"}


def load(name: str) -> dict:
    return json.loads((CONFIGS / f"{name}.json").read_text(encoding="utf-8"))


@pytest.mark.parametrize("name", DREAMBOOTH_CONFIGS)
def test_every_key_has_a_rule_and_the_toml_passes_the_trainers_validation(name: str, tmp_path: Path) -> None:
    data = load(name)
    assert len(data) == 176
    result = convert_kohya_config(data)
    ruled = ruled_keys(result.command) | TE_KEYS | set(all_options()) | {
        flag for script in COMMAND_GROUPS for flag in sd_scripts_flags(script)
    }  # (another command's option, ours or sd-scripts': reported as such, e.g. disable_mmap_load_safetensors)
    assert set(data) - ruled == set()
    assert [e.key for e in result.unmapped if e.reason == "unknown" and not e.key.startswith("--")] == []
    assert result.network_type == "" and "network_module" not in result.options
    written = write_run_files(result, tmp_path / "run.toml")
    args = parse_args(result.command, ["--config_file", str(written[-1])])
    for option, value in result.options.items():
        if option != "sample_prompts":
            assert getattr(args, option) == value, option


def test_an_sd15_dreambooth_config_trains_with_train_db() -> None:
    result = convert_kohya_config(load("sd15_dreambooth"))
    assert result.command == "train_db"
    options = result.options
    assert (options["learning_rate"], options["learning_rate_te"]) == (1e-06, 5e-07)
    assert options["stop_text_encoder_training"] == 40 and options["no_token_padding"] is True
    assert (options["reg_data_dir"], options["prior_loss_weight"]) == ("/data/reg", 0.75)
    assert any('labels it "% of total steps" but passes the number to train_db as a step; imported as step 40' in w
               for w in result.warnings)
    unmapped = {e.key: e.reason for e in result.unmapped}
    assert "learning_rate_te1" not in unmapped  # the form's untouched SDXL rate: kohya_ss does not pass it


def test_an_sdxl_dreambooth_config_trains_its_text_encoders_as_kohya_ss_does() -> None:
    data = load("sdxl_dreambooth")
    result = convert_kohya_config(data)
    assert result.command == "sdxl_train"
    assert result.options["train_text_encoder"] is True and result.options["learning_rate_te1"] == 5e-07
    assert "stop_text_encoder_training" not in result.options
    stopped = convert_kohya_config({**data, "stop_text_encoder_training": 30, "learning_rate_te1": 0})
    assert {e.key: e.detail for e in stopped.unmapped}["stop_text_encoder_training"] == (
        "kohya_ss does not pass it to sdxl_train")
    assert "train_text_encoder" not in stopped.options  # both rates at 0 (and 0 is not passed): frozen


def test_each_kind_of_config_imports_on_its_own_page() -> None:
    lora = json.loads((CONFIGS / "sd15_standard.json").read_text(encoding="utf-8"))
    with pytest.raises(KohyaImportError, match="a kohya_ss LoRA config: import it on the LoRA page"):
        convert_kohya_config(lora, "dreambooth")
    with pytest.raises(KohyaImportError, match="a kohya_ss DreamBooth config: import it on the DreamBooth page"):
        convert_kohya_config(load("sd15_dreambooth"), "lora")
    # (a Textual Inversion config on these pages: test_kohya_textual_inversion.py)


def test_the_dreambooth_page_imports_into_its_form(tmp_path: Path) -> None:
    imported = import_kohya(str(CONFIGS / "sdxl_dreambooth.json"), Translator("en"), tmp_path, kind=DREAMBOOTH)
    assert imported.tab is not None, imported.message
    assert imported.tab.model_type == "sdxl" and imported.tab.command == "sdxl_train"
    assert imported.tab.run_options()["train_text_encoder"] is True
    assert "Imported" in imported.message and "sdxl_train" in imported.message
    set_language("ja")  # as build_app sets it for the GUI's language
    try:
        refused = import_kohya(str(CONFIGS / "sd15_standard.json"), Translator("ja"), tmp_path, kind=DREAMBOOTH)
    finally:
        set_language(None)
    assert refused.tab is None and "LoRA のページでインポートしてください" in refused.message


def test_the_cli_imports_a_dreambooth_config(tmp_path: Path, capsys) -> None:
    out = tmp_path / "db.toml"
    assert main([str(CONFIGS / "sd15_dreambooth.json"), "--toml", str(out)]) == 0
    printed = capsys.readouterr().out
    assert f"-m backend.train_db --config_file {out}" in printed
    assert parse_args("train_db", ["--config_file", str(out)]).stop_text_encoder_training == 40
