"""The tools' runner (exit status 2 for bad input, 1 for failures, an `error` progress line either
way) and the check that keeps an output from replacing an input."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest
import torch

from backend.tools.cli.arg_checks import is_within, refuse_overwriting_inputs, same_file
from backend.tools.cli.light_cli import InputError, ToolFailure
from backend.tools.lora.tool_cli import ToolError, run_tool
from backend.training.progress import parse_progress_line


def raising(exc: BaseException) -> Callable[[object], None]:
    def main(argv: object) -> None:
        raise exc

    return main


@pytest.mark.parametrize(
    ("exc", "status", "traceback"),
    [
        (ToolError("--model x: LoRA file not found"), 2, False),
        (InputError("bad value"), 2, False),
        (FileNotFoundError("gone"), 2, False),
        (ToolFailure("the result has NaN"), 1, False),
        (RuntimeError("a bug"), 1, True),
    ],
)
def test_status_and_error_line(exc: BaseException, status: int, traceback: bool, capsys) -> None:
    assert run_tool(raising(exc), []) == status
    captured = capsys.readouterr()
    errors = [e for e in map(parse_progress_line, captured.out.splitlines()) if e and e["event"] == "error"]
    assert len(errors) == 1 and str(exc) in errors[0]["message"]
    assert ("Traceback" in captured.err) == traceback
    if not traceback:
        assert captured.err == f"error: {exc}\n"


def test_model_mismatch_is_bad_input_and_a_refused_save_a_failure(capsys) -> None:
    from backend.finite_weights import NonFiniteWeightsError
    from backend.models.detect import ModelMismatchError

    assert run_tool(raising(ModelMismatchError("an SDXL model")), []) == 2
    assert run_tool(raising(NonFiniteWeightsError("x.safetensors was not written")), []) == 1
    assert "Traceback" not in capsys.readouterr().err


def test_same_file_through_links_and_dots(tmp_path: Path) -> None:
    source = tmp_path / "a.safetensors"
    source.write_bytes(b"x")
    (tmp_path / "symlink").symlink_to(source)
    os.link(source, tmp_path / "hardlink")
    (tmp_path / "sub").mkdir()
    for alias in ("symlink", "hardlink", "sub/../a.safetensors", str(source)):
        assert same_file(tmp_path / alias, source), alias
    assert not same_file(tmp_path / "b.safetensors", source)
    assert same_file(tmp_path / "new" / ".." / "b", tmp_path / "b")  # neither exists: the resolved paths


def test_an_output_folder_may_not_hold_an_input(tmp_path: Path) -> None:
    folder = tmp_path / "model"
    (folder / "unet").mkdir(parents=True)
    inside = folder / "unet" / "lora.safetensors"
    assert is_within(inside, folder) and not is_within(tmp_path / "other", folder)
    refuse_overwriting_inputs(folder, "--save_to", [("--models", inside)])  # a file output would not touch it
    with pytest.raises(InputError, match="--save_to .* is the folder holding --models"):
        refuse_overwriting_inputs(folder, "--save_to", [("--models", inside)], replaces_folder=True)
    refuse_overwriting_inputs(tmp_path / "out", "--save_to", [("--models", inside), ("--base_model", None)],
                              replaces_folder=True)


def test_device_names_and_a_missing_gpu_are_bad_input() -> None:
    import torch

    from backend.tools.lora.tool_cli import check_device

    check_device("cpu")
    with pytest.raises(ToolError, match="--device 'gpu0' is not a torch device"):
        check_device("gpu0")
    if not torch.cuda.is_available():
        with pytest.raises(ToolError, match="torch sees no CUDA GPU on this machine; use --device cpu"):
            check_device("cuda")


@pytest.mark.parametrize("reader", ["load_lora", "convert_read"])
def test_a_damaged_lora_is_named_once(reader: str, tmp_path: Path) -> None:
    """The model layer's error already names the file: a reader adds no second copy of the path."""
    from safetensors.torch import save_file

    from backend.tools.lora import lora_convert, lora_files

    path = tmp_path / "cut.safetensors"
    save_file({"lora_unet_x.lora_down.weight": torch.zeros(4, 8)}, str(path))
    path.write_bytes(path.read_bytes()[:-16])
    read = lora_files.load_lora if reader == "load_lora" else lambda p: lora_convert.read_any(p, None)
    with pytest.raises(ToolError) as caught:
        read(str(path))
    assert str(caught.value).count(str(path)) == 1
    assert "cut short" in str(caught.value)
