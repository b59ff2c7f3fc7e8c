"""Every tool flag is declared once (backend/tools/flags/): the tool's command line is built from the
declaration and nothing else adds a flag; a declaration that breaks its rules fails at import."""

from __future__ import annotations

import contextlib
import importlib
import io
import re
import subprocess
import sys
from pathlib import Path

import pytest

from backend.tools.cli.light_cli import InputError
from backend.tools.flags import captioning, dataset, generation, lora, metadata
from backend.tools.flags.parser import build_parser, check_ranges
from backend.tools.flags.spec import Flag, Range, ToolFlags
from tests.end_to_end.helpers import REPO

GROUPS = {"lora": lora, "metadata": metadata, "captioning": captioning, "dataset": dataset, "generation": generation}
DECLARED = {tool.name: tool for group in GROUPS.values() for tool in group.TOOLS}
# devtools/make_tiny_model has a command line of its own: it builds test fixtures and is not offered
# in the GUI, so its flags have no second place to drift to; it lives outside backend/tools.
READER = REPO / "backend" / "tools" / "flags" / "parser.py"


def tool_modules(folder: Path) -> set[str]:
    return {p.stem for p in folder.glob("*.py") if 'if __name__ == "__main__"' in p.read_text(encoding="utf-8")}


def test_every_tool_with_a_command_line_is_declared() -> None:
    assert set(DECLARED) == tool_modules(REPO / "backend" / "tools")


@pytest.mark.parametrize("group", GROUPS)
def test_each_documented_command_runs_its_packages_tool(group: str) -> None:
    # `python -m backend.tools.<tool>` (README, docs, GUI exports) runs backend/tools/<group>/<tool>.py,
    # whose flags are declared in backend/tools/flags/<group>.py.
    assert {tool.name for tool in GROUPS[group].TOOLS} == tool_modules(REPO / "backend" / "tools" / group)
    for tool in GROUPS[group].TOOLS:
        command = importlib.import_module(tool.module)
        assert command.main is importlib.import_module(f"backend.tools.{group}.{tool.name}").main


@pytest.mark.parametrize("tool", DECLARED.values(), ids=lambda tool: tool.name)
def test_the_tools_command_line_is_its_declaration(tool: ToolFlags) -> None:
    # Through the tool's real `main`: what a user gets for --help is the declaration's parser, word for word.
    module = importlib.import_module(tool.module)
    out = io.StringIO()
    with contextlib.redirect_stdout(out), pytest.raises(SystemExit) as exited:
        module.main(["--help"])
    assert exited.value.code == 0
    assert out.getvalue() == build_parser(tool).format_help()


def test_no_tool_adds_a_flag_outside_the_declaration_reader() -> None:
    adders = re.compile(r"\.add_argument\(|ArgumentParser\(|add_mutually_exclusive_group\(")
    found = {
        path.relative_to(REPO).as_posix()
        for path in (REPO / "backend" / "tools").rglob("*.py")
        if path != READER and adders.search(path.read_text(encoding="utf-8"))
    }
    assert found == set()


def test_sd_scripts_flag_names_and_defaults_stay() -> None:
    """The flags scripts written for sd-scripts pass (networks/resize_lora.py, merge_lora.py,
    extract_lora_from_models.py, finetune/*.py), with sd-scripts' defaults."""
    expected = {
        "resize_lora": {"model": None, "save_to": None, "new_rank": 4, "new_conv_rank": None, "save_precision": "float",
                        "device": "cpu", "verbose": False, "dynamic_method": None, "dynamic_param": None},
        "merge_lora": {"sd_model": None, "models": None, "ratios": None, "save_to": None, "precision": "float",
                       "save_precision": None, "concat": False, "no_metadata": False, "new_rank": None},
        "extract_lora_from_models": {"model_org": None, "model_tuned": None, "save_to": None, "dim": 4,
                                     "conv_dim": None, "clamp_quantile": 0.99, "min_diff": 0.01, "sdxl": False,
                                     "v2": False, "load_precision": "float", "save_precision": "float",
                                     "no_metadata": False},
        "make_captions": {"caption_extension": ".caption", "batch_size": 1, "max_length": 75, "min_length": 5,
                          "top_p": 0.9, "num_beams": 1, "seed": 42, "beam_search": False},
        "make_captions_by_git": {"caption_extension": ".caption", "max_length": 50, "remove_words": False},
        "tag_images_by_wd14_tagger": {"repo_id": "SmilingWolf/wd-v1-4-convnext-tagger-v2", "thresh": 0.35,
                                      "caption_extension": ".txt", "caption_separator": ", ", "onnx": False},
        "merge_captions_to_metadata": {"caption_extension": ".caption", "full_path": False, "recursive": False},
        "merge_dd_tags_to_metadata": {"caption_extension": ".txt"},
        "prepare_buckets_latents": {"max_resolution": "512,512", "batch_size": 1, "mixed_precision": "no",
                                    "min_bucket_reso": 256, "max_bucket_reso": 1024, "bucket_reso_steps": 64,
                                    "skip_existing": False},
    }  # fmt: skip
    for name, defaults in expected.items():
        parser = build_parser(DECLARED[name])
        taken = {action.dest: action.default for action in parser._actions if action.option_strings}
        assert {flag: taken[flag] for flag in defaults} == defaults, name
    # sd-scripts' misspelling of --caption_extension, still in old scripts
    for name in ("make_captions", "make_captions_by_git", "tag_images_by_wd14_tagger", "merge_captions_to_metadata"):
        positionals = ["d"] * sum(flag.positional for flag in DECLARED[name].flags)
        args = build_parser(DECLARED[name]).parse_args([*positionals, "--caption_extention", ".x"])
        assert args.caption_extension == ".x", name


def test_declared_exclusive_flags_exclude_each_other(capsys: pytest.CaptureFixture[str]) -> None:
    parser = build_parser(captioning.TAG_IMAGES)
    with pytest.raises(SystemExit):
        parser.parse_args(["d", "--overwrite", "--append_tags"])
    assert "not allowed with argument" in capsys.readouterr().err
    assert parser.parse_args(["d", "--use_rating_tags", "--overwrite"]).use_rating_tags


def test_declared_ranges_are_checked_for_every_value() -> None:
    parser = build_parser(lora.MERGE_LORA)
    check_ranges(parser.parse_args(["--models", "a", "b", "--ratios", "1", "-0.5", "--save_to", "o"]), lora.MERGE_LORA)
    with pytest.raises(InputError, match="--ratios must be a finite number, got nan"):
        check_ranges(parser.parse_args(["--models", "a", "b", "--ratios", "1", "nan", "--save_to", "o"]),
                     lora.MERGE_LORA)  # fmt: skip
    with pytest.raises(InputError, match="--top must be 0 or more, got -1"):
        check_ranges(build_parser(lora.INSPECT_LORA).parse_args(["f", "--top", "-1"]), lora.INSPECT_LORA)


@pytest.mark.parametrize(
    ("make", "problem"),
    [
        (lambda: ToolFlags("t", "", (Flag("a", "int"), Flag("a", "text"))), "flags declared twice: a"),
        (lambda: ToolFlags("t", "", (Flag("a", "text", aliases=("b",)), Flag("b", "text"))), "declared twice: b"),
        (lambda: Flag("verbose", "bool", gui_default=True), "gui_default needs gui_why"),
        (lambda: Flag("ext", "text", ".txt", gui_default=".txt", gui_why="x"), "equals the tool's default"),
        (lambda: Flag("mode", "choice", "x", ("a", "b")), "not one of the choices"),
        (lambda: Flag("rank", "text", range=Range(low=1)), "only numbers have a range"),
        (lambda: Flag("device", "choice", choices=("cpu",), suggestions=("cuda",)), "only kind 'text'"),
    ],
)
def test_a_declaration_that_breaks_a_rule_fails_when_made(make, problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        make()


def test_declarations_are_light() -> None:
    # The GUI builds its tool forms and network fields from these: they must not pull in torch.
    code = (
        "import sys, backend.tools.flags.lora, backend.tools.flags.metadata, backend.tools.flags.captioning, "
        "backend.tools.flags.dataset, backend.tools.flags.parser, backend.networks.arg_keys, gui.training.network_types; "
        "print([m for m in ('torch', 'numpy', 'PIL', 'gradio') if m in sys.modules])"
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"
