"""resize_lora: truncated SVD of each module's delta, reported ranks and retained norms, metadata."""

from __future__ import annotations

import json
import math
import re

import pytest
import safetensors
import torch

from backend.networks.weights_io import precalculate_safetensors_hashes
from backend.tools.lora import resize_lora
from backend.tools.lora.lora_files import load_lora, module_delta
from backend.tools.lora.tool_cli import run_tool


def resize(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = run_tool(resize_lora.main, list(args))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_resize_to_lower_rank_keeps_delta_within_reported_error(make_lora, tmp_path, capsys) -> None:
    source = make_lora(rank=8, metadata={"ss_training_comment": "hello"})
    out = tmp_path / "r4.safetensors"
    code, stdout, _ = resize(capsys, "--model", str(source), "--save_to", str(out), "--new_rank", "4", "--verbose")
    assert code == 0
    retained = {m.group(1): float(m.group(2)) for m in re.finditer(r"^(\S+): rank 8 -> 4, Frobenius retained ([\d.]+)", stdout, re.M)}
    before, after = load_lora(source), load_lora(out)
    assert set(retained) == set(before.modules) == set(after.modules)
    for name, params in after.modules.items():
        assert params["lora_down.weight"].shape[0] == 4
        original, resized = module_delta(name, before.modules[name]), module_delta(name, params)
        error = float(torch.linalg.norm(original - resized) / torch.linalg.norm(original))
        assert error == pytest.approx(math.sqrt(max(0.0, 1 - retained[name] ** 2)), abs=2e-3)
    assert after.metadata["ss_network_dim"] == "4"
    assert after.metadata["ss_network_alpha"] == "2.0"  # 4.0 * 4 / 8
    assert after.metadata["ss_training_comment"] == "dimension is resized from 8 to 4; hello"


def test_resize_at_full_rank_is_exact_and_hashes_are_recomputed(make_lora, tmp_path, capsys) -> None:
    source = make_lora(rank=4)
    out = tmp_path / "same.safetensors"
    code, _, err = resize(capsys, "--model", str(source), "--save_to", str(out), "--new_rank", "16")
    assert code == 0
    # Capped as sd-scripts caps it, but said, and the metadata records the rank written.
    assert "warning: --new_rank 16 is above the rank of the LoRA (4): a resize never adds rank, so the file is " \
        "written at rank 4" in err
    before, after = load_lora(source), load_lora(out)
    for name, params in after.modules.items():
        assert params["lora_down.weight"].shape[0] == 4  # never above the original rank
        torch.testing.assert_close(module_delta(name, params), module_delta(name, before.modules[name]), atol=1e-4, rtol=1e-4)
    assert (after.metadata["ss_network_dim"], after.metadata["ss_network_alpha"]) == ("4", "2.0")
    tensors = safetensors.torch.load_file(str(out))
    assert (after.metadata["sshs_model_hash"], after.metadata["sshs_legacy_hash"]) == precalculate_safetensors_hashes(
        tensors, after.metadata
    )


@pytest.mark.parametrize(("method", "param"), [("sv_fro", "0.9"), ("sv_ratio", "2"), ("sv_cumulative", "0.7")])
def test_dynamic_methods_keep_the_rank_they_report(make_lora, tmp_path, capsys, method, param) -> None:
    source = make_lora(rank=8, step=5)
    out = tmp_path / f"{method}.safetensors"
    code, stdout, _ = resize(capsys, "--model", str(source), "--save_to", str(out), "--new_rank", "6",
                             "--dynamic_method", method, "--dynamic_param", param, "--verbose")
    assert code == 0
    reported = {m.group(1): (int(m.group(2)), float(m.group(3)))
                for m in re.finditer(r"^(\S+): rank 8 -> (\d+), Frobenius retained ([\d.]+)", stdout, re.M)}
    after = load_lora(out)
    assert reported and set(reported) == set(after.modules)
    for name, params in after.modules.items():
        rank, retained = reported[name]
        assert params["lora_down.weight"].shape[0] == rank <= 6
        if method == "sv_fro" and rank < 6:
            assert retained >= 0.9 - 1e-4
    assert after.metadata["ss_network_dim"] == after.metadata["ss_network_alpha"] == "Dynamic"
    assert after.metadata["ss_training_comment"].startswith(f"Dynamic resize with {method}: {float(param)} from 8")


def test_resize_trained_locon_and_cli_errors(trained_lora, make_lora, tmp_path, capsys) -> None:
    out = tmp_path / "trained-r2.safetensors"
    assert resize(capsys, "--model", str(trained_lora), "--save_to", str(out), "--new_rank", "2", "--new_conv_rank", "1")[0] == 0
    after = load_lora(out)
    assert after.algorithm == "LoCon"
    ranks = {p["lora_down.weight"].shape[0] for p in after.modules.values()}
    assert ranks == {1, 2}
    assert after.metadata["ss_base_model_version"] == "sd_v1"

    loha = make_lora("loha.safetensors", algorithm="LoHa")
    code, _, err = resize(capsys, "--model", str(loha), "--save_to", str(tmp_path / "x.safetensors"))
    assert code == 2 and "LoHa" in err and "LoRA/LoCon only" in err
    code, _, err = resize(capsys, "--model", str(tmp_path / "missing.safetensors"), "--save_to", str(tmp_path / "x.safetensors"))
    assert code == 2 and "not found" in err
    code, _, err = resize(capsys, "--model", str(loha), "--save_to", str(tmp_path / "x.safetensors"),
                          "--dynamic_method", "sv_fro")
    assert code == 2 and "--dynamic_param" in err
    assert not (tmp_path / "x.safetensors").exists()


def test_save_to_the_input_is_refused_and_the_source_kept(make_lora, tmp_path, capsys) -> None:
    source = make_lora(rank=8)
    original = source.read_bytes()
    (tmp_path / "alias.safetensors").symlink_to(source)
    for save_to in (source, tmp_path / "alias.safetensors", tmp_path / "sub" / ".." / source.name):
        code, _, err = resize(capsys, "--model", str(source), "--save_to", str(save_to), "--new_rank", "4")
        assert code == 2
        assert f"--save_to {save_to} is the same file as --model {source}" in err
        assert "a resized LoRA keeps only part of the original" in err and "give --save_to another name" in err
    assert source.read_bytes() == original


def test_conv_rank_above_the_locon_rank_is_said(trained_lora, tmp_path, capsys) -> None:
    out = tmp_path / "r.safetensors"
    code, _, err = resize(capsys, "--model", str(trained_lora), "--save_to", str(out), "--new_rank", "2",
                          "--new_conv_rank", "6")
    assert code == 0
    assert "--new_conv_rank 6 is above the rank of the LoRA's 3x3 conv modules (4): a resize never adds rank, " \
        "so they are written at rank 4" in err
    assert "--new_rank 2" not in err
    metadata = load_lora(out).metadata
    assert metadata["ss_network_dim"] == "2" and json.loads(metadata["ss_network_args"])["conv_dim"] == "4"
