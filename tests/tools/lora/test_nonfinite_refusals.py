"""No tool writes NaN/inf weights: a LoRA or model holding them is refused by name (exit 2), a result
that overflows or breaks is refused (exit 1), and nothing appears under the output's name."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
import safetensors.torch
import torch

from backend.families.loaded import get_spec
from backend.tools.lora import convert_lora, extract_lora_from_models, inspect_lora, merge_lora, resize_lora
from backend.tools.lora.tool_cli import run_tool
from tests.tools.lora.conftest import sd15_targets


def run(capsys: pytest.CaptureFixture[str], main: Callable, *args: object) -> tuple[int, str, str]:
    code = run_tool(main, [str(a) for a in args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def broken_copy(source: Path, out: Path, edit: Callable[[dict[str, torch.Tensor]], str]) -> tuple[Path, str]:
    """`source` with one tensor changed by `edit` (which returns its key), written without our checks."""
    tensors = safetensors.torch.load_file(str(source))
    with safetensors.safe_open(str(source), framework="pt") as handle:
        metadata = handle.metadata()
    key = edit(tensors)
    safetensors.torch.save_file(tensors, str(out), metadata)
    return out, key


def nan_in_first_up(tensors: dict[str, torch.Tensor]) -> str:
    key = sorted(k for k in tensors if k.endswith("lora_up.weight"))[0]
    tensors[key][0, 0] = float("nan")
    return key


def test_nan_lora_is_refused_by_every_lora_tool_and_shown_by_inspect(make_lora, tmp_path, capsys) -> None:
    good = make_lora(rank=4)
    bad, key = broken_copy(good, tmp_path / "diverged.safetensors", nan_in_first_up)
    out = tmp_path / "out.safetensors"
    for main, args in (
        (resize_lora.main, ["--model", bad, "--save_to", out, "--new_rank", "2"]),
        (merge_lora.main, ["--models", good, bad, "--save_to", out]),
        (merge_lora.main, ["--models", good, bad, "--save_to", out, "--concat"]),
        (convert_lora.main, ["--model", bad, "--save_to", out]),
    ):
        code, _, err = run(capsys, main, *args)
        assert code == 2, err
        assert f"{bad} holds NaN or infinite values in 1 of its" in err and f"(first: {key})" in err, err
        assert "use an earlier checkpoint" in err
        assert not out.exists()
    code, stdout, _ = run(capsys, inspect_lora.main, bad, "--json")
    assert code == 0 and json.loads(stdout)["nonfinite_tensors"] == [key]


def test_a_result_that_overflows_the_save_precision_is_not_written(make_lora, tmp_path, capsys) -> None:
    def huge(tensors: dict[str, torch.Tensor]) -> str:
        key = sorted(k for k in tensors if k.endswith("lora_up.weight"))[0]
        tensors[key] *= 1e6  # finite in float32, beyond float16's 65504 once resized
        return key

    big, key = broken_copy(make_lora(rank=4), tmp_path / "big.safetensors", huge)
    out = tmp_path / "out.safetensors"
    code, _, err = run(capsys, resize_lora.main, "--model", big, "--save_to", out, "--new_rank", "2",
                       "--save_precision", "fp16")
    assert code == 1, err
    assert f"the result was not written to {out}: 1 of" in err
    assert f"tensors hold values beyond 65504, which become infinite when saved as fp16 ({key.split('.')[0]}." in err
    assert err.rstrip().endswith("save with --save_precision float")
    assert not out.exists() and sorted(p.name for p in tmp_path.iterdir()) == ["big.safetensors", "syn.safetensors"]
    assert run(capsys, resize_lora.main, "--model", big, "--save_to", out, "--new_rank", "2")[0] == 0


def test_merge_that_breaks_the_checkpoint_is_not_written(tiny, make_lora, tmp_path, capsys) -> None:
    out = tmp_path / "merged.safetensors"
    code, _, err = run(capsys, merge_lora.main, "--sd_model", tiny.get("sd15", single_file=True).path,
                       "--models", make_lora(), "--ratios", "1e300", "--save_to", out)
    assert code == 1, err
    assert "at ratio 1e+300 gives NaN or infinite values in the layer of lora_" in err and "nothing was written" in err
    assert not out.exists()


def test_extract_names_the_model_and_layer_holding_nan(tiny, tmp_path, capsys) -> None:
    base = tiny.get("sd15", single_file=True)
    spec = get_spec("sd1")
    model = spec.load(base.path, tokenizer_cache_dir=base.tokenizer_cache_dir)
    target = [t for t in sd15_targets(model) if t.kind == "linear" and t.text_encoder_index is None][0]
    with torch.no_grad():
        target.module.weight[0, 0] = float("nan")
    tuned = tmp_path / "tuned.safetensors"
    spec.save(model, tuned)
    out = tmp_path / "extracted.safetensors"
    code, _, err = run(capsys, extract_lora_from_models.main, "--model_org", base.path, "--model_tuned", tuned,
                       "--save_to", out)
    assert code == 2, err
    assert f"{tuned} holds NaN or infinite values in the layer of {target.lora_name}" in err
    assert not out.exists()
