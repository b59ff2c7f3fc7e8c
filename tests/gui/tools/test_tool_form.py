"""Tool forms: argv building, every form built from its tool's flag declaration (and where it pre-sets
another value than the tool), a run through the tool runner, and complete translations of every
tool form."""

from __future__ import annotations

import re

import gradio as gr
import pytest

from backend.tools.flags import captioning, dataset, lora, metadata
from backend.tools.flags.parser import build_parser
from gui.backend_process import REPO
from gui.i18n import Translator
from gui.runs.runner import TrainingRunner
from gui.tools.tool_form import ToolArg, ToolInputError, ToolSpec, start_tool, tool_argv, tool_spec
from gui.tools.tool_specs import ALL_TOOLS

JAPANESE = re.compile(r"[\u3040-\u30ff\u3400-\u9fff]")
DECLARED = {tool.name: tool for group in (lora, metadata, captioning, dataset) for tool in group.TOOLS}
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


def test_every_tool_form_is_built_from_the_tools_flag_declaration() -> None:
    # One declaration per tool (backend/tools/flags/), read by the tool's parser and by the form:
    # no form field is written by hand (tests/tools/flags/test_tool_flags.py checks the parser side).
    assert [spec.name for spec in ALL_TOOLS] == list(DECLARED)
    assert all(spec == tool_spec(DECLARED[spec.name]) for spec in ALL_TOOLS)
    by_hand = [p.name for p in (REPO / "gui").glob("*.py") if p.name != "tool_form.py" and "ToolArg(" in p.read_text()]
    assert by_hand == []


def test_a_form_presets_the_tools_defaults_except_where_the_declaration_says_why() -> None:
    differs, left_out = set(), set()
    for tool in DECLARED.values():
        parser = build_parser(tool)
        shown = {arg.name: arg.default for arg in tool_spec(tool).args}
        for flag in tool.flags:
            default = parser.get_default(flag.name)
            if not flag.gui:
                left_out.add((tool.name, flag.name))
            elif flag.positional or shown[flag.name] in ("", None) and default in ("", None, []):
                continue  # empty: the tool's own default
            elif shown[flag.name] != default:
                assert flag.gui_why, (tool.name, flag.name)
                differs.add((tool.name, flag.name, shown[flag.name]))
    assert differs == {
        ("resize_lora", "verbose", True),  # the per-module report in the GUI's log, as kohya_ss's form does
        *((name, "caption_extension", ".txt") for name in
          ("make_captions", "make_captions_by_git", "merge_captions_to_metadata", "verify_dataset")),
        ("tag_images_by_wd14_tagger", "caption_separator", None),  # ", " cannot live in a stripped field
        ("basic_caption", "separator", None),
    }  # fmt: skip
    assert left_out == {
        ("make_captions", "no_progress"), ("make_captions_by_git", "no_progress"),
        ("tag_images_by_wd14_tagger", "no_progress"), ("prepare_dataset", "no_progress"),
        ("tag_images_by_wd14_tagger", "onnx"), ("prepare_buckets_latents", "skip_existing"),
        ("verify_dataset", "json"), ("verify_video_dataset", "json"), ("merge_captions_to_metadata", "debug"),
        ("merge_dd_tags_to_metadata", "debug"),
    }  # fmt: skip


def test_a_device_field_offers_cpu_and_cuda_and_takes_any_torch_device() -> None:
    from gui.tools.tool_form import build_tool_form
    from gui.tools.tool_specs import RESIZE_LORA

    with gr.Blocks():
        form = build_tool_form(Translator("en"), RESIZE_LORA, None, TrainingRunner())
    device = form.fields["device"]
    assert device.allow_custom_value and [value for _, value in device.choices] == ["cpu", "cuda"]
    values = {"model": "a.safetensors", "save_to": "b.safetensors", "device": "cuda:1"}
    assert tool_argv(RESIZE_LORA, values, python="py")[-2:] == ["--device", "cuda:1"]


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
    from gui.tools.tool_specs import INSPECT_LORA

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
