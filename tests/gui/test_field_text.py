"""Control characters in names and paths, and exported scripts that never run part of a value.

A line break in `output_name` (from a preset or an import) used to end up in the exported `.sh`'s
comment line, where the rest of the line ran as a command, and the files were written although the
`.bat` writer refused the value; the one-line field showed the value without its line breaks.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from backend.options import OptionError, parse_args
from backend.options.dataset_config import load_dataset_config
from backend.options.schema import all_options
from backend.options.values import ONE_LINE_TEXT, control_character, from_text, from_value
from gui.form_text import form_text_problems
from gui.gui_config import GuiConfigError, load_gui_config
from gui.i18n import Translator
from gui.runs.runner import TrainingRunner
from gui.training import lora_actions
from gui.training.command_builder import prepare_run
from gui.training.command_export import bash_script, batch_script, export_scripts, script_texts
from gui.training.lora_actions import TabValues
from gui.training.preset_load import preset_outcome
from gui.training.presets import load_preset, save_preset
from gui.training.training_kinds import LORA
from tests.gui.training.test_command_builder import _cmd_phases, _msvcrt_split

T = Translator("en")
OPTIONS = all_options()
# Values that would run something if a script let them out of their quotes.
NASTY = [
    "x\ntouch MARK_newline",
    "$(touch MARK_subst)",
    "`touch MARK_backtick`",
    "'$(touch MARK_quoted)'",
    "a'b\"c",
    "50% %PATH% !x! ^ & | < > ( )",
    "\\\n; touch MARK_continued #",
    "tab\there",
    "cr\r\ntouch MARK_crlf",
    "${IFS}$HOME",
    "ドラゴン \u202e",
    "--help",
    "",
]


# --- the trainer's own validation ----------------------------------------------------------------


@pytest.mark.parametrize("name", ["output_name", "output_dir", "train_data_dir", "caption_extension"])
@pytest.mark.parametrize("bad", ["x\ny", "x\ry", "a\tb", "nul\0", "del\x7f", "c1\x85", "sep\u2028", "\u202eevil"])
def test_names_and_paths_refuse_control_characters(name: str, bad: str) -> None:
    option = OPTIONS[name]
    for check in (lambda: from_value(option, bad), lambda: from_text(option, bad)):
        with pytest.raises(ValueError, match="control characters") as caught:
            check()
        assert "\n" not in str(caught.value) and "\u202e" not in str(caught.value)  # the message reads as it is


def test_free_text_and_ordinary_names_pass() -> None:
    assert from_value(OPTIONS["caption_prefix"], "two\nlines") == "two\nlines"  # free text: sd-scripts takes it
    assert from_value(OPTIONS["output_name"], "ドラゴン v2 (final) $x 50%") == "ドラゴン v2 (final) $x 50%"
    assert set(ONE_LINE_TEXT) <= set(OPTIONS) and all(OPTIONS[name].kind == "str" for name in ONE_LINE_TEXT)


def test_a_hand_written_toml_with_a_line_break_in_a_name_is_refused(tmp_path: Path) -> None:
    config = tmp_path / "run.toml"
    config.write_text(
        f'pretrained_model_name_or_path = "m.safetensors"\noutput_dir = {str(tmp_path)!r}\noutput_name = "x\\nid"\n',
        encoding="utf-8",
    )
    with pytest.raises(OptionError) as caught:
        parse_args("train_network", ["--config_file", str(config)])
    assert any(":3:" in message and "output_name" in message and "line break" in message for message in caught.value.messages)


def test_a_dataset_config_path_with_a_control_character_is_refused(tmp_path: Path) -> None:
    config = tmp_path / "dataset.toml"
    config.write_text('[[datasets]]\n[[datasets.subsets]]\nimage_dir = "img\\u0007dir"\n', encoding="utf-8")
    with pytest.raises(OptionError) as caught:
        load_dataset_config(config)
    assert any("image_dir" in m and "U+0007" in m for m in caught.value.messages), caught.value.messages


# --- exported scripts ----------------------------------------------------------------------------


@pytest.fixture
def fake_repo(tmp_path: Path) -> Path:
    """A repo whose venv python prints its arguments, NUL-separated, instead of training."""
    repo = tmp_path / "repo"
    python = repo / "venv" / "bin" / "python"
    python.parent.mkdir(parents=True)
    python.write_text("#!/bin/sh\nfor a in \"$@\"; do printf '%s\\0' \"$a\"; done\n", encoding="utf-8")
    python.chmod(0o755)
    return repo


def test_the_bash_script_passes_every_value_as_one_argument_and_runs_none(tmp_path: Path, fake_repo: Path) -> None:
    argv = ["python", "-m", "backend.train_network", *NASTY]
    script = tmp_path / "run.sh"
    script.write_text(bash_script(argv, fake_repo), encoding="utf-8")
    assert subprocess.run(["bash", "-n", str(script)], capture_output=True).returncode == 0
    comments = [line for line in script.read_text(encoding="utf-8").splitlines() if line.startswith("#")]
    assert len(comments) == 2 and not any("MARK" in line for line in comments)
    ran = subprocess.run(["bash", str(script)], cwd=tmp_path, capture_output=True, check=True)
    assert ran.stdout.decode("utf-8").split("\0")[:-1] == argv[1:]
    assert [p.name for p in tmp_path.rglob("MARK*")] == [], "part of a value ran as a command"


def test_the_batch_file_carries_what_cmd_can_and_refuses_the_rest(fake_repo: Path) -> None:
    for value in NASTY:
        argv = ["python", "-m", "backend.train_network", "--config_file", value]
        if control_character(value):
            with pytest.raises(ValueError, match="Windows command line"):
                batch_script(argv, fake_repo)
            continue
        lines = batch_script(argv, fake_repo).splitlines()
        assert lines[0] == "@echo off" and lines[-3].startswith("rem ") and (not value or value not in lines[-3])
        program, rest = lines[-1].split(" ", 1)
        assert _msvcrt_split(_cmd_phases(rest, batch=True)) == argv[1:], value


def test_a_script_that_cannot_be_written_writes_nothing(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="line break"):
        export_scripts(["python", "-m", "x", "two\nlines"], tmp_path, "run")
    with pytest.raises(ValueError, match="script name"):
        script_texts(["python"], "run\nid")
    assert list(tmp_path.iterdir()) == []


def _tab(tmp_path: Path, **options: object) -> TabValues:
    return TabValues(
        options={"pretrained_model_name_or_path": str(tmp_path / "m.safetensors"), "train_data_dir": str(tmp_path),
                 "output_dir": str(tmp_path / "out"), **options}
    )  # fmt: skip


def test_export_with_a_line_break_in_the_name_writes_nothing_and_names_the_field(tmp_path: Path) -> None:
    tab = _tab(tmp_path, output_name="x\nid\n")
    message = lora_actions.export(tab, T)
    assert "output_name" in message and "line break" in message
    runner = TrainingRunner()
    assert "output_name" in lora_actions.start(tab, T, runner=runner)
    assert not runner.running
    assert not (tmp_path / "out").exists() and list(tmp_path.rglob("*.sh")) == []


def test_an_exported_run_with_shell_characters_in_its_name_runs_as_named(tmp_path: Path) -> None:
    name = "it's $(touch MARK) `x` 50% !a! & b"
    message = lora_actions.export(_tab(tmp_path, output_name=name), T)
    scripts = list((tmp_path / "out").glob("*.sh"))
    assert len(scripts) == 1, message
    text = scripts[0].read_text(encoding="utf-8")
    assert subprocess.run(["bash", "-n", str(scripts[0])]).returncode == 0
    exec_line = text.splitlines()[-1]
    assert exec_line.startswith("exec venv/bin/python ")
    printed = subprocess.run(
        ["bash", "-c", "printf '%s\\0' " + exec_line.removeprefix("exec venv/bin/python ")],
        cwd=tmp_path, capture_output=True, check=True,
    )  # fmt: skip
    config = printed.stdout.decode("utf-8").split("\0")[-2]
    assert Path(config).name.startswith(name + "_") and Path(config).is_file()
    assert list(tmp_path.rglob("MARK")) == []


def test_accelerate_settings_with_control_characters_are_refused_before_writing(tmp_path: Path) -> None:
    values = _tab(tmp_path).run_options()
    with pytest.raises(ValueError, match="main_process_ip"):
        prepare_run("train_network", values, {"main_process_ip": "10.0.0.1\nid"})
    assert not (tmp_path / "out").exists()


# --- where values enter the form ---------------------------------------------------------------


def test_a_preset_with_a_line_break_in_a_field_is_refused_naming_it(tmp_path: Path) -> None:
    path = tmp_path / "bad.json"
    path.write_text(
        json.dumps({"learning_rate": 1e-4, "output_name": "x\ntouch /tmp/pwned", "caption_prefix": "a\nb"}, indent=1),
        encoding="utf-8",
    )
    loaded = load_preset(path, LORA)
    assert any(p.startswith("line 3:") and '"output_name"' in p for p in loaded.problems), loaded.problems
    assert any('"caption_prefix"' in p and "form field cannot show" in p for p in loaded.problems)
    assert "output_name" not in loaded.values and "caption_prefix" not in loaded.values
    outcome = preset_outcome(loaded, path, "bad", _tab(tmp_path), LORA, T)
    assert outcome.tab is None and "output_name" in outcome.message and "caption_prefix" in outcome.message


def test_a_preset_is_not_saved_with_text_its_fields_cannot_show(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="caption_prefix"):
        save_preset(tmp_path / "p.json", {"caption_prefix": "a\nb"}, {"model_type": "sd1"})
    assert not (tmp_path / "p.json").exists()


def test_a_kohya_import_leaves_out_and_reports_what_a_field_cannot_show(tmp_path: Path) -> None:
    config = json.loads((Path(__file__).parent / "data" / "kohya_configs" / "sd15_standard.json").read_text("utf-8"))
    config.update(output_name="sks\ntouch /tmp/pwned", caption_prefix="a\tb")
    path = tmp_path / "kohya.json"
    path.write_text(json.dumps(config), encoding="utf-8")
    imported = lora_actions.import_kohya(str(path), T, prompts_dir=tmp_path)
    assert imported.tab is not None, imported.message
    assert form_text_problems(imported.tab.run_options()) == []
    assert "output_name" in imported.message and "caption_prefix" in imported.message
    assert imported.tab.options.get("output_name") in (None, "")


def test_gui_config_defaults_refuse_text_their_fields_cannot_show(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_text('[defaults]\ncaption_prefix = "a\\nb"\noutput_name = "x\\ty"\n', encoding="utf-8")
    with pytest.raises(GuiConfigError) as caught:
        load_gui_config(path, {})
    assert [m.split(": ", 1)[0] for m in caught.value.messages] == [f"{path}:2", f"{path}:3"]


def test_no_value_of_the_default_form_is_flagged() -> None:
    defaults = {name: option.default for name, option in OPTIONS.items() if option.default is not None}
    assert form_text_problems(defaults) == []
