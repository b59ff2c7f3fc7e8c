"""Tool forms: argv building, the declared flags against each tool's real --help, a run through the
tool runner, and complete translations of every tool form."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

from gui.command_builder import REPO
from gui.i18n import Translator
from gui.runner import TrainingRunner
from gui.tool_form import ToolArg, ToolInputError, ToolSpec, start_tool, tool_argv
from gui.tool_specs import ALL_TOOLS

JAPANESE = re.compile(r"[\u3040-\u30ff\u3400-\u9fff]")
SPEC = ToolSpec("demo", (
    ToolArg("folder", "folder", positional=True, required=True),
    ToolArg("models", "list"),
    ToolArg("rank", "int", 4),
    ToolArg("ratio", "float"),
    ToolArg("method", "choice", "", ("", "a", "b")),
    ToolArg("verbose", "bool"),
))  # fmt: skip


def test_argv_has_positionals_first_then_set_flags_only() -> None:
    values = {"folder": " /data/my images ", "models": "a.safetensors 'b c.safetensors'\nd.pt", "rank": 8.0,
              "ratio": "", "method": "b", "verbose": True}  # fmt: skip
    assert tool_argv(SPEC, values, python="py") == [
        "py", "-m", "backend.tools.demo", "/data/my images",
        "--models", "a.safetensors", "b c.safetensors", "d.pt", "--rank", "8", "--method", "b", "--verbose",
    ]  # fmt: skip
    assert tool_argv(SPEC, {"folder": "x", "method": "", "verbose": False}, python="py")[3:] == ["x"]


def test_bad_values_name_their_field() -> None:
    with pytest.raises(ToolInputError, match="required: folder"):
        tool_argv(SPEC, {"folder": "  "}, python="py")
    with pytest.raises(ToolInputError, match="rank: expects a number"):
        tool_argv(SPEC, {"folder": "x", "rank": "eight"}, python="py")
    with pytest.raises(ToolInputError, match="models"):
        tool_argv(SPEC, {"folder": "x", "models": "'unclosed"}, python="py")


@pytest.mark.parametrize("spec", ALL_TOOLS, ids=lambda spec: spec.name)
def test_every_declared_flag_is_one_the_tool_takes(spec: ToolSpec) -> None:
    result = subprocess.run(
        [sys.executable, "-m", spec.module, "--help"], cwd=REPO, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    for arg in spec.args:
        if arg.positional:
            assert arg.name in result.stdout, arg.name
        else:
            assert f"--{arg.name}" in result.stdout, arg.name
        for choice in arg.choices:
            assert not choice or choice in result.stdout, (arg.name, choice)


def test_every_tool_field_is_translated() -> None:
    for language in ("en", "ja"):
        t = Translator(language)
        for spec in ALL_TOOLS:
            for key in (f"ui.tooltab.{spec.name}", f"ui.tooldesc.{spec.name}"):
                t.t(key)
            for arg in spec.args:
                t.t(f"ui.toolarg.{spec.name}.{arg.name}")
                t.t(f"ui.toolhelp.{spec.name}.{arg.name}")
        assert t.missing == set(), (language, sorted(t.missing))


def test_a_tool_runs_through_the_tool_runner(tmp_path) -> None:
    from gui.tool_specs import INSPECT_LORA

    runner = TrainingRunner()
    t = Translator("en")
    assert "required" in start_tool(INSPECT_LORA, {}, t, runner)
    message = start_tool(INSPECT_LORA, {"file": str(tmp_path / "missing.safetensors")}, t, runner)
    assert message.startswith("Started")
    assert runner.wait(120) == "failed"
    assert "missing.safetensors" in runner.log_text()
    assert not JAPANESE.search(runner.log_text())
    # From the Japanese GUI the tool speaks Japanese (KOHYA_LANGUAGE=ja in its environment; item 21).
    start_tool(INSPECT_LORA, {"file": str(tmp_path / "missing.safetensors")}, Translator("ja"), runner)
    assert runner.wait(120) == "failed"
    errors = [line for line in runner.log_text().splitlines() if "missing.safetensors" in line]
    assert errors and all(JAPANESE.search(line) for line in errors), errors


def test_the_whole_app_builds_in_japanese_without_a_missing_text(caplog: pytest.LogCaptureFixture) -> None:
    from gui.app import build_app

    with caplog.at_level("WARNING", logger="gui.i18n"):
        build_app("ja", headless=True)
    assert [record.getMessage() for record in caplog.records if "translation" in record.getMessage()] == []


def test_list_values_keep_windows_backslashes() -> None:
    values = {"folder": r"C:\data", "models": 'C:\\loras\\a.safetensors "D:\\my loras\\b.safetensors"'}
    assert tool_argv(SPEC, values, python="py")[3:] == [
        r"C:\data", "--models", r"C:\loras\a.safetensors", r"D:\my loras\b.safetensors"
    ]
