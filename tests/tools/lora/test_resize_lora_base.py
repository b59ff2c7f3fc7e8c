"""resize_lora's base-relative recipes (fro_ckpt, spn_ckpt): ranks chosen against the base layer's
norm, checked against an independent SVD of each module's delta and the tiny model's weights."""

from __future__ import annotations

import re

import pytest
import torch

from backend.tools.lora import resize_lora
from backend.tools.lora.lora_files import load_lora, module_delta, save_lora
from backend.tools.lora.lora_layers import lora_layers
from backend.tools.lora.tool_cli import run_tool

REPORT = re.compile(
    r"^(\S+): rank (\d+) -> (\d+), Frobenius retained ([\d.]+), base norm (\S+), threshold (\S+), "
    r"discarded/base (\S+?)( \(left out\))?$", re.M,
)


def resize(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = run_tool(resize_lora.main, list(args))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def base_norms(sd15, kind: str, names: list[str]) -> dict[str, float]:
    layers = lora_layers(sd15.unet, sd15.text_encoders)
    ord_ = "fro" if kind == "fro_ckpt" else 2
    return {name: float(torch.linalg.matrix_norm(layers[name].weight.detach().float().flatten(1), ord=ord_))
            for name in names}


def delta_singular_values(params: dict[str, torch.Tensor]) -> torch.Tensor:
    """Singular values of scale * up @ down, descending: the square roots of the eigenvalues of the
    small (rank x rank) matrix (up^T up)(down down^T), which shares the nonzero spectrum of delta delta^T."""
    up = params["lora_up.weight"].double().flatten(1)
    down = params["lora_down.weight"].double().flatten(1)
    scale = float(params["alpha"]) / down.shape[0]
    eigen = torch.linalg.eigvals((up.T @ up) @ (down @ down.T)).real.clamp(min=0)
    return (eigen.sqrt() * abs(scale)).sort(descending=True).values.float()


@pytest.mark.parametrize(("method", "single_file"), [("fro_ckpt", False), ("spn_ckpt", True)])
def test_base_relative_ranks_follow_the_base_layers(tiny, sd15, make_lora, tmp_path, capsys, method, single_file) -> None:
    source = make_lora(rank=6, step=4)  # linear, 1x1 and 3x3 conv (LoCon) modules
    before = load_lora(source)
    norms = base_norms(sd15, method, list(before.modules))
    singular = {name: delta_singular_values(p) for name, p in before.modules.items()}
    scores = torch.cat([torch.log10(s / norms[name]) for name, s in singular.items()])
    threshold = float(scores.median())  # about half of all directions pass
    new_rank = 5
    base = tiny.get("sd15", single_file=single_file).path
    out = tmp_path / f"{method}.safetensors"
    code, stdout, err = resize(capsys, "--model", str(source), "--save_to", str(out), "--new_rank", str(new_rank),
                               "--dynamic_method", method, "--dynamic_param", f"{threshold!r}",
                               "--base_model", str(base), "--verbose")
    assert code == 0, err
    reported = {m.group(1): m for m in REPORT.finditer(stdout)}
    assert set(reported) == set(before.modules)
    after = load_lora(out)
    expected_ranks = {}
    for name, s in singular.items():
        limit = norms[name] * 10.0**threshold
        rank = min(int((s >= limit * (1 + 1e-3)).sum()), new_rank)  # margin: float16 base norms
        rank_hi = min(int((s >= limit * (1 - 1e-3)).sum()), new_rank)
        match = reported[name]
        got = int(match.group(3))
        assert rank <= got <= rank_hi, name
        expected_ranks[name] = got
        assert float(match.group(5)) == pytest.approx(norms[name], rel=1e-3)  # float16 storage of the base
        assert float(match.group(6)) == pytest.approx(limit, rel=1e-3)
        discarded = float(torch.linalg.vector_norm(s[got:]))
        assert float(match.group(7)) == pytest.approx(discarded / norms[name], rel=1e-2, abs=1e-9)
        if got == 0:
            assert name not in after.modules and match.group(8)
            continue
        params = after.modules[name]
        assert params["lora_down.weight"].shape[0] == got
        error = torch.linalg.norm(module_delta(name, params) - module_delta(name, before.modules[name]))
        assert float(error) == pytest.approx(discarded, rel=1e-3, abs=1e-5)
    assert len(set(expected_ranks.values())) > 2  # the threshold really chooses per module
    assert 0 < len(after.modules) < len(before.modules) or min(expected_ranks.values()) > 0
    assert after.metadata["ss_network_dim"] == "Dynamic"
    assert after.metadata["ss_training_comment"].startswith(f"Dynamic resize with {method}: ")
    assert "relative to" in after.metadata["ss_training_comment"]


def test_fro_ckpt_on_trained_locon_and_refusals(tiny, trained_lora, make_lora, tmp_path, capsys) -> None:
    out = tmp_path / "trained.safetensors"
    base = str(tiny.get("sd15").path)
    code, stdout, err = resize(capsys, "--model", str(trained_lora), "--save_to", str(out), "--new_rank", "8",
                               "--dynamic_method", "fro_ckpt", "--dynamic_param", "-2.5", "--base_model", base)
    assert code == 0, err
    assert re.search(r"resized \d+ modules: new rank min \d+ / mean [\d.]+ / max \d+", stdout)
    kept = load_lora(out)
    assert kept.modules and {p["lora_down.weight"].shape[0] for p in kept.modules.values()} <= set(range(1, 9))
    assert any(p["lora_down.weight"].dim() == 4 and p["lora_down.weight"].shape[2] == 3 for p in kept.modules.values())

    never = tmp_path / "never.safetensors"
    source = str(make_lora())
    code, _, err = resize(capsys, "--model", source, "--save_to", str(never), "--dynamic_method", "fro_ckpt",
                          "--dynamic_param", "-3")
    assert code == 2 and "needs --base_model" in err
    code, _, err = resize(capsys, "--model", source, "--save_to", str(never), "--base_model", base)
    assert code == 2 and "--base_model is used only by" in err
    code, _, err = resize(capsys, "--model", source, "--save_to", str(never), "--dynamic_method", "fro_ckpt",
                          "--dynamic_param", "-3", "--base_model", str(tiny.get("sdxl").path))
    assert code == 2 and "SD 1.x" in err and "SDXL" in err
    code, _, err = resize(capsys, "--model", source, "--save_to", str(never), "--dynamic_method", "fro_ckpt",
                          "--dynamic_param", "3", "--base_model", base)
    assert code == 2 and "nothing to save" in err
    stray = load_lora(source)
    stray.modules["lora_unet_down_blocks_0_attentions_0_transformer_blocks_0_attn1_to_qq"] = {
        "lora_down.weight": torch.ones(1, 4), "lora_up.weight": torch.ones(4, 1), "alpha": torch.tensor(1.0)}
    edited = tmp_path / "stray.safetensors"
    save_lora(edited, stray.modules, stray.metadata, None)
    code, _, err = resize(capsys, "--model", str(edited), "--save_to", str(never), "--dynamic_method", "fro_ckpt",
                          "--dynamic_param", "-3", "--base_model", base)
    assert code == 2 and "no layer in" in err and "attn1_to_qq" in err
    assert not never.exists()
