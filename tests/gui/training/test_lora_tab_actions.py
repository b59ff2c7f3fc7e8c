"""The LoRA tab's import and TensorBoard buttons, on named values (no browser)."""

from __future__ import annotations

import json
import shutil
import urllib.request
from pathlib import Path

import gradio as gr
import pytest

from backend import messages
from backend.networks.args import parse_network_args
from gui.i18n import Translator
from gui.kohya_import.importer import convert_kohya_config, write_run_files
from gui.training import lora_actions
from gui.training.command_builder import write_run_config
from gui.training.lora_actions import TabValues
from gui.training.lora_tab import LoraTab, build_lora_tab
from gui.training.network_types import NETWORK_ARGS, decompose
from gui.training.tensorboard import TensorBoardServer
from tests.end_to_end.helpers import make_images

CONFIGS = Path(__file__).parents[1] / "data" / "kohya_configs"
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
    lora_fa = {**json.loads((CONFIGS / "sd15_standard.json").read_text(encoding="utf-8")), "LoRA_type": "LoRA-FA"}
    (tmp_path / "lora_fa.json").write_text(json.dumps(lora_fa), encoding="utf-8")
    refused = lora_actions.import_kohya(str(tmp_path / "lora_fa.json"), T, prompts_dir=tmp_path)
    assert refused.tab is None and "cannot be imported" in refused.message


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


def test_the_import_report_is_in_the_gui_language(tmp_path: Path) -> None:
    messages.set_language("ja")  # as building the Japanese GUI does (gui/app.py)
    imported = lora_actions.import_kohya(str(CONFIGS / "sd15_standard.json"), Translator("ja"), prompts_dir=tmp_path)
    assert Translator("ja").t("ui.kohya_reason.secret") in imported.message
    assert "Dropped for safety" not in imported.message
    # Every line, not only the headings (issue 14, item 21); key names and values as written.
    assert "huggingface_token = <hidden>: 引き継ぎません。必要な場所で入力し直してください" in imported.message
    assert 'stop_text_encoder_training = 20: kohya_ss はこの値を無視します（"not yet supported"）' in imported.message
    assert "max_train_epochs = 10 で同じエポック数を学習します" in imported.message
    assert "ネットワークの種類 標準LoRA" in imported.message  # as the selector names it
    assert "never carried over" not in imported.message and "kohya_ss ignores" not in imported.message


# --- the import through the form: what the tab shows and runs is what the command-line import writes ---


@pytest.fixture(scope="module")
def lora_tab() -> LoraTab:
    with gr.Blocks():
        return build_lora_tab(T, browse=None)


def _kohya_locon(folder: Path) -> Path:
    """kohya_ss's own LoCon (networks.lora with conv_dim/conv_alpha), from the v26 Standard save."""
    data = json.loads((CONFIGS / "sd15_standard.json").read_text(encoding="utf-8"))
    path = folder / "sd15_kohya_locon.json"
    path.write_text(json.dumps({**data, "LoRA_type": "Kohya LoCon", "conv_dim": 8, "conv_alpha": 4}), encoding="utf-8")
    return path


IMPORTS = [
    ("sdxl_lycoris_locon.json", "LyCORIS/LoCon"), ("sd2_loha.json", "LyCORIS/LoHa"),
    ("sd15_lokr_prodigy.json", "LyCORIS/LoKr"), ("kohya_locon", "LoCon"), ("sd15_kohya_dylora.json", "DyLoRA"),
    ("sd15_standard.json", "Standard"), ("flux1_v25_lora_ranks.json", "Standard"),
]  # fmt: skip


def _through_the_form(tab: LoraTab, config: Path, tmp_path: Path) -> TabValues:
    """Import as the button does, show it in the widgets, and read the widgets back, as Start does."""
    imported = lora_actions.import_kohya(str(config), T, prompts_dir=tmp_path)
    assert imported.tab is not None, imported.message
    return tab.read(tab.update(imported.tab))


@pytest.mark.parametrize(("name", "network_type"), IMPORTS)
def test_an_imported_network_survives_the_form(name: str, network_type: str, lora_tab: LoraTab, tmp_path: Path) -> None:
    config = _kohya_locon(tmp_path) if name == "kohya_locon" else CONFIGS / name
    shown = _through_the_form(lora_tab, config, tmp_path)
    result = convert_kohya_config(json.loads(config.read_text(encoding="utf-8")))
    assert shown.network_type == result.network_type == network_type
    assert shown.command == result.command and (result.model_type in (None, shown.model_type))
    # The form's fields and free-text network_args are the split of what the command-line import writes.
    split = decompose(result.options.get("network_module"), result.options.get("network_args"), network_type)
    set_fields = {name for name, value in split.fields.items() if value is not False}
    assert set(shown.network_fields) == set_fields
    assert all(float(shown.network_fields[k]) == split.fields[k] for k in set_fields if NETWORK_ARGS[k].kind in ("int", "float"))
    assert (shown.options.get("network_args") or []) == split.extra
    run = shown.run_options()
    assert run["network_module"] == result.options.get("network_module", "networks.lora")
    assert run.get("network_args") == result.options.get("network_args")
    # And the run's TOML is the command-line import's TOML, byte for byte (prompt files land in one place).
    cli_toml = write_run_files(result, tmp_path / f"{config.stem}.toml")[-1]
    gui_toml = write_run_config(shown.command, run, tmp_path / "gui.toml")
    assert gui_toml.read_text(encoding="utf-8") == cli_toml.read_text(encoding="utf-8")


def test_an_imported_lycoris_config_passes_preflight_from_the_form(lora_tab: LoraTab, tiny, tmp_path: Path) -> None:
    """The reported case: LyCORIS/LoCon (conv dims, dim 16) on SDXL, with this machine's model and images."""
    shown = _through_the_form(lora_tab, CONFIGS / "sdxl_lycoris_locon.json", tmp_path)
    make_images(tmp_path / "img" / "1_style", 2)
    shown.options.update(
        pretrained_model_name_or_path=str(tiny.get("sdxl").path), train_data_dir=str(tmp_path / "img"),
        output_dir=str(tmp_path / "out"), resolution="64,64", caption_extension=".txt",
    )  # fmt: skip
    report = lora_actions.preflight(shown, T)
    assert report.startswith(f"### {T.t('ui.preflight_ok')}"), report


def test_print_command_names_the_config_file_start_and_export_write(tmp_path: Path) -> None:
    """Item 20: Print command and Start named different files (each took its own time stamp)."""
    import re
    import time

    tab = TabValues(options={"pretrained_model_name_or_path": str(tmp_path / "m.safetensors"),
                             "output_dir": str(tmp_path / "out"), "output_name": "x"})  # fmt: skip
    when = time.time() - 3600  # printed an hour before Start
    printed = lora_actions.print_command(tab, T, when)
    config = re.search(r"(\S+\.toml)", printed.message)
    assert config is not None and config.group(1) in printed.bash
    exported = lora_actions.export(tab, T, when)
    assert config.group(1) in exported and Path(config.group(1)).is_file()
    assert "KOHYA_LANGUAGE" not in printed.bash + printed.cmd  # English: the command as it always was
    # From the Japanese GUI the command gives Japanese messages outside it too (issue 14, item 21).
    printed = lora_actions.print_command(tab, Translator("ja"), when)
    assert printed.bash.startswith("KOHYA_LANGUAGE=ja ") and printed.cmd.startswith('set "KOHYA_LANGUAGE=ja" && ')


def test_the_last_form_is_kept_on_disk_and_read_back(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Item 20: a reload (or a crashed browser, or a restarted GUI) comes back to the form as it was left."""
    from gui.training import form_state
    from gui.training.training_kinds import FINETUNE, LORA

    monkeypatch.setenv(form_state.STATE_DIR_ENV, str(tmp_path / "state"))
    assert form_state.load_form(LORA) is None
    tab = TabValues(options={"learning_rate": 0.0003, "output_dir": "/o"}, model_type="sdxl",
                    network_type="LoCon", network_fields={"conv_dim": "4"}, accelerate={"num_processes": 2})  # fmt: skip
    path = form_state.save_form(LORA, tab.form_data())
    assert path == tmp_path / "state" / "lora_form.json"
    loaded = form_state.load_form(LORA)
    assert loaded is not None and loaded.values["learning_rate"] == 0.0003
    assert loaded.values["network_args"] == ["conv_dim=4"]
    assert loaded.gui == {"model_type": "sdxl", "network_type": "LoCon", "accelerate": {"num_processes": 2}}
    assert form_state.load_form(FINETUNE) is None  # each tab its own
    # A damaged value keeps the rest (and is reported); a file that is no JSON object restores nothing.
    path.write_text(json.dumps({"learning_rate": "fast", "output_dir": "/o"}), encoding="utf-8")
    partly = form_state.load_form(LORA)
    assert partly is not None and partly.values == {"output_dir": "/o"} and partly.problems
    path.write_text("[]", encoding="utf-8")
    assert form_state.load_form(LORA) is None


def test_a_field_left_is_patched_into_the_saved_form(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The autosave sends one field (gui/training/tab_wiring.py save_field): it lands in the saved form beside
    what was saved before; with nothing saved, the page's initial values are the rest of the form."""
    import threading

    from gui.training import form_state
    from gui.training.tab_wiring import save_field
    from gui.training.training_kinds import LORA

    monkeypatch.setenv(form_state.STATE_DIR_ENV, str(tmp_path / "state"))
    with gr.Blocks():
        tab = build_lora_tab(T, None)
    fields = tab.form.fields
    lock = threading.Lock()
    save_field(tab, fields["learning_rate"], lock, "0.0003")
    saved = form_state.load_form(LORA)
    assert saved is not None and saved.values["learning_rate"] == 0.0003
    assert saved.values["max_train_epochs"] == 10 and saved.values["caption_extension"] == ".txt"  # initial values
    save_field(tab, fields["output_dir"], lock, "/o")
    save_field(tab, tab.model_type, lock, "sdxl")
    save_field(tab, tab.network_type, lock, "LoCon")
    save_field(tab, tab.net_fields["conv_dim"], lock, "4")
    saved = form_state.load_form(LORA)
    assert saved is not None and saved.values["learning_rate"] == 0.0003 and saved.values["output_dir"] == "/o"
    assert saved.gui["model_type"] == "sdxl" and saved.gui["network_type"] == "LoCon"
    assert "conv_dim=4" in saved.values["network_args"]
    save_field(tab, fields["max_train_epochs"], lock, "")  # emptied on purpose: stays empty
    saved = form_state.load_form(LORA)
    assert saved is not None and saved.values["max_train_epochs"] is None and saved.values["output_dir"] == "/o"
