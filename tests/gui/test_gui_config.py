"""`kohya_gui.py --config`: launch flags and form defaults from a TOML, checked with file and line."""

from __future__ import annotations

from pathlib import Path

import pytest

import kohya_gui
from gui.gui_config import GuiConfigError, load_gui_config
from gui.i18n import Translator
from gui.training.lora_tab import tab_options
from gui.training.schema_form import SchemaForm, to_widget


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "gui.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_launch_values_apply_under_flags_given_on_the_command_line(tmp_path: Path) -> None:
    path = write(tmp_path, '[launch]\nlanguage = "ja"\nserver_port = 7999\n\n[defaults]\noutput_dir = "/loras"\n')
    args, config = kohya_gui.parse_launch_args(["--config", str(path)])
    assert (args.language, args.server_port) == ("ja", 7999)
    assert config.defaults == {"output_dir": "/loras"}
    args, _ = kohya_gui.parse_launch_args(["--config", str(path), "--server_port", "8100", "--language", "en"])
    assert (args.language, args.server_port) == ("en", 8100)


def test_every_problem_is_named_with_its_line(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "[launch]\nserver_prot = 1\nheadless = \"yes\"\n\n[defaults]\nlearning_rat = 1e-4\n"
        "network_dim = \"eight\"\nhuggingface_token = \"hf_x\"\n\n[folders]\nx = 1\n",
    )
    with pytest.raises(GuiConfigError) as raised:
        load_gui_config(path, kohya_gui.LAUNCH_KEYS)
    messages = raised.value.messages
    assert f"{path}:2: [launch] has no key 'server_prot'; did you mean 'server_port'?" in messages
    assert any(m.startswith(f"{path}:3: headless must be a bool") for m in messages)
    assert f"{path}:6: [defaults] names no training option 'learning_rat'; did you mean 'learning_rate'?" in messages
    assert any(m.startswith(f"{path}:7: network_dim expects") for m in messages)
    assert f"{path}:8: huggingface_token is a secret; the GUI never stores secrets" in messages
    assert any(m.startswith(f"{path}:10: unknown table [folders]") for m in messages)


def test_a_broken_config_stops_the_launch_with_the_problems(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write(tmp_path, "[defaults]\nlerning_rate = 1\n")
    with pytest.raises(SystemExit) as raised:
        kohya_gui.parse_launch_args(["--config", str(path), "--language", "en"])
    assert raised.value.code == 2
    assert "did you mean 'learning_rate'" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        kohya_gui.parse_launch_args(["--config", str(tmp_path / "missing.toml"), "--language", "en"])
    assert "cannot read the GUI config" in capsys.readouterr().err
    # In the GUI's language (the flag, else the OS locale's): a Japanese user reads them in Japanese.
    with pytest.raises(SystemExit):
        kohya_gui.parse_launch_args(["--config", str(path), "--language", "ja"])
    err = capsys.readouterr().err
    assert "GUI の設定ファイルに問題があります" in err
    assert f"{path}:2: [defaults] の 'lerning_rate' という学習オプションはありません。'learning_rate' のことですか？" in err


def test_form_defaults_are_the_initial_values_and_what_a_preset_falls_back_to(tmp_path: Path) -> None:
    import gradio as gr

    from gui.app import build_app

    defaults = {"output_dir": "/loras", "network_dim": 16, "mixed_precision": "bf16"}
    build_app("en", headless=True, defaults=defaults)  # builds with them
    options = tab_options()
    with gr.Blocks():
        from gui.training.schema_form import build_form

        form = build_form(options, Translator("en"), None, None, defaults)
    assert form.fields["output_dir"].value == "/loras"
    assert form.fields["network_dim"].value == to_widget(options["network_dim"], 16)
    assert form.fields["mixed_precision"].value == "bf16"
    update = form.update({"learning_rate": 0.001})  # a preset that does not name them
    assert update[form.fields["output_dir"]] == "/loras"
    assert update[form.fields["network_dim"]] == to_widget(options["network_dim"], 16)
    assert update[form.fields["learning_rate"]] == to_widget(options["learning_rate"], 0.001)
    assert isinstance(SchemaForm(options).initial, dict)
