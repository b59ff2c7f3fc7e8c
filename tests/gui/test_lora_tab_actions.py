"""The LoRA tab's import and TensorBoard buttons, on named values (no browser)."""

from __future__ import annotations

import json
import shutil
import urllib.request
from pathlib import Path

import pytest

from backend.networks.args import parse_network_args
from gui import lora_actions
from gui.i18n import Translator
from gui.kohya_import import convert_kohya_config
from gui.lora_actions import TabValues
from gui.tensorboard import TensorBoardServer

CONFIGS = Path(__file__).parent / "data" / "kohya_configs"
T = Translator("en")


def test_importing_a_kohya_sd15_config_fills_the_tab_and_writes_its_prompts(tmp_path: Path) -> None:
    imported = lora_actions.import_kohya(str(CONFIGS / "sd15_standard.json"), T, prompts_dir=tmp_path)
    assert imported.tab is not None, imported.message
    tab = imported.tab
    assert (tab.model_type, tab.network_type) == ("sd1", "Standard")
    assert tab.command == "train_network"
    prompts = Path(tab.options["sample_prompts"])
    assert prompts.parent == tmp_path and prompts.read_text(encoding="utf-8").strip()
    assert "sd15_standard.json" in imported.message and "train_network" in imported.message
    # A second import of the same config reuses the same prompt file; a different text never replaces it.
    again = lora_actions.import_kohya(str(CONFIGS / "sd15_standard.json"), T, prompts_dir=tmp_path)
    assert again.tab is not None and again.tab.options["sample_prompts"] == str(prompts)
    prompts.write_text("someone else's prompts\n", encoding="utf-8")
    third = lora_actions.import_kohya(str(CONFIGS / "sd15_standard.json"), T, prompts_dir=tmp_path)
    assert third.tab is not None and third.tab.options["sample_prompts"] != str(prompts)
    assert prompts.read_text(encoding="utf-8") == "someone else's prompts\n"


@pytest.mark.parametrize(
    ("name", "model_type", "network_type"),
    [("sdxl_lycoris_locon.json", "sdxl", "LyCORIS/LoCon"), ("sd2_loha.json", "sd2", "LyCORIS/LoHa"),
     ("sd15_kohya_dylora.json", "sd1", "DyLoRA")],
)  # fmt: skip
def test_model_and_network_types_come_through(name: str, model_type: str, network_type: str, tmp_path: Path) -> None:
    imported = lora_actions.import_kohya(str(CONFIGS / name), T, prompts_dir=tmp_path)
    assert imported.tab is not None, imported.message
    assert (imported.tab.model_type, imported.tab.network_type) == (model_type, network_type)
    assert "v2" not in imported.tab.options  # the model type stands for it
    # What the tab would run is what the command-line import writes (a False flag is the same as none).
    result = convert_kohya_config(json.loads((CONFIGS / name).read_text(encoding="utf-8")))
    run = imported.tab.run_options()
    for key in ("network_module", "learning_rate", "network_dim"):
        assert run.get(key) == result.options.get(key), key

    def args(values: dict) -> dict:
        return {k: v for k, v in parse_network_args(values.get("network_args") or []).items() if v not in (False, "False")}

    assert args(run) == args(result.options)


def test_import_errors_are_messages_not_exceptions(tmp_path: Path) -> None:
    assert lora_actions.import_kohya("  ", T).tab is None
    missing = lora_actions.import_kohya(str(tmp_path / "nope.json"), T)
    assert missing.tab is None and "nope.json" in missing.message
    (tmp_path / "bad.json").write_text("{not json", encoding="utf-8")
    assert "Cannot read" in lora_actions.import_kohya(str(tmp_path / "bad.json"), T).message
    flux = lora_actions.import_kohya(str(CONFIGS / "flux1_lora.json"), T, prompts_dir=tmp_path)
    assert flux.tab is None and "cannot be imported" in flux.message


def test_tensorboard_needs_a_logging_dir() -> None:
    assert lora_actions.open_tensorboard(TabValues(options={}), T) == T.t("ui.tensorboard_needs_logdir")


def test_tensorboard_serves_the_logging_dir_and_is_reused(tmp_path: Path) -> None:
    server = TensorBoardServer(preferred_port=0)
    try:
        logdir = tmp_path / "logs"
        message = lora_actions.open_tensorboard(TabValues(options={"logging_dir": str(logdir)}), T, server)
        assert "TensorBoard is serving" in message, message
        first = server.open(logdir)
        assert first.reused and logdir.is_dir()
        with urllib.request.urlopen(first.url, timeout=10) as response:
            assert response.status == 200
        other = server.open(tmp_path / "other")
        assert not other.reused and other.logdir == (tmp_path / "other").resolve()
    finally:
        server.stop()
    shutil.rmtree(tmp_path, ignore_errors=True)


def test_the_import_report_headings_are_in_the_gui_language(tmp_path: Path) -> None:
    imported = lora_actions.import_kohya(str(CONFIGS / "sd15_standard.json"), Translator("ja"), prompts_dir=tmp_path)
    assert Translator("ja").t("ui.kohya_reason.secret") in imported.message
    assert "huggingface_token" in imported.message  # details keep the key names
    assert "Dropped for safety" not in imported.message
